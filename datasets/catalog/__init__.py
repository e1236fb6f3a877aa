"""The datasets open_prune knows, one module each.

Every module here with a module-level `SPEC` (a `datasets.spec.DatasetSpec`) is a dataset; nothing
else lists them, so adding a dataset is adding one file. Its name is `SPEC.name`, not the module's.
"""
