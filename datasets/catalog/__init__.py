"""The datasets open_prune knows, one module each.

Every module here that assigns `NAME` and `SUMMARY` (string literals) and `SPEC`, a
`datasets.spec.DatasetSpec` built with `name=NAME`, at its top level is a dataset (the convention of
foundations/registry.py); nothing else lists them, so adding a dataset is adding one file. Modules
whose names start with `_` (e.g. `_sklearn.py`) and modules without a NAME are helpers.
"""
