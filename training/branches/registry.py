"""The branch registry: every module in training/branches/ with a SUMMARY and a main(argv) is a branch.

Adding a branch is adding one file.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

import training.branches as package


def all_branches() -> dict[str, ModuleType]:
    found = {}
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if info.name.startswith("_") or info.name in ("registry", "base"):
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        if hasattr(module, "main") and hasattr(module, "SUMMARY"):
            found[getattr(module, "NAME", info.name)] = module
    return found
