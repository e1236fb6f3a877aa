"""Registries: a folder of modules, one entry each, found without a list anywhere.

Every registry of open_prune (models, datasets, scores, per-step rules, branches) follows one
convention. An entry is a module in the registry's folder (or a folder below it) that assigns, at
its top level,

    NAME = "magnitude"                     what a user types (a flag value, a command word)
    SUMMARY = "|w| of the weights ..."     one line for listings and errors

as plain string literals, plus what its registry asks of it (a model family's `FAMILY`, a dataset's
`SPEC`, a score's `SCORE`, a rule's `RULE`, a branch's `BUNDLES` and `run`). Modules whose names
start with `_` and modules without a NAME are helpers, not entries. NAME and SUMMARY are read from
the source without importing it, so listing a registry costs no import, and asking for one entry
imports that module alone: adding an entry is adding one file.
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Optional

from foundations.errors import UserError


@dataclass(frozen=True)
class Entry:
    name: str
    summary: str
    module: str  # dotted module path

    def load(self) -> ModuleType:
        return importlib.import_module(self.module)


def declared_strings(path: Path) -> dict[str, str]:
    """The module-level assignments of string literals to upper-case names in the source at
    `path` (NAME, SUMMARY, ...), read without importing it."""
    values = {}
    for node in ast.parse(Path(path).read_text(), str(path)).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            key = node.targets[0].id
            if key.isupper() and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                values[key] = node.value.value
    return values


def module_path(module: str) -> Path:
    """The source file of a module, found without importing it."""
    return Path(importlib.util.find_spec(module).origin)


class Registry:
    """The entries of one package folder; `attribute` is what `get` returns (None: the module),
    and `expected(object)` says whether it is of the registry's kind (`expected_as` names it)."""

    def __init__(self, package: str, kind: str, attribute: Optional[str] = None, plural: Optional[str] = None,
                 expected: Callable[[Any], bool] = lambda entry: True, expected_as: str = ""):
        self.package, self.kind, self.attribute = package, kind, attribute
        self.plural = plural or f"{kind}s"
        self.expected, self.expected_as = expected, expected_as

    def folders(self) -> list[Path]:
        """The package's folders (a package may span several, e.g. one a test adds to __path__)."""
        package = sys.modules.get(self.package)
        if package is not None:
            locations = package.__path__
        else:
            locations = importlib.util.find_spec(self.package).submodule_search_locations
        return [Path(folder) for folder in locations]

    @functools.cached_property
    def entries(self) -> dict[str, Entry]:
        """Every entry by name, in name order (reads sources, imports nothing)."""
        found: dict[str, Entry] = {}
        sources = [(folder, path) for folder in self.folders() for path in sorted(folder.rglob("*.py"))]
        for folder, path in sources:
            relative = path.relative_to(folder).with_suffix("")
            if any(part.startswith("_") for part in relative.parts):
                continue
            declared = declared_strings(path)
            if "NAME" not in declared or "SUMMARY" not in declared:
                continue
            name, summary = declared["NAME"], declared["SUMMARY"]
            module = ".".join((self.package, *relative.parts))
            if name in found:
                raise RuntimeError(f"two {self.kind}s are named {name!r}: {found[name].module} and {module}")
            found[name] = Entry(name, summary, module)
        return dict(sorted(found.items()))

    def refresh(self) -> None:
        """Look at the folders again on the next call (after a module was added or removed)."""
        self.__dict__.pop("entries", None)

    def names(self) -> list[str]:
        return list(self.entries)

    def entry(self, name: str) -> Entry:
        """The entry called `name`; a UserError naming every valid one otherwise."""
        if name not in self.entries:
            known = ", ".join(self.entries) or "(none)"
            raise UserError(f"unknown {self.kind} {name!r}; the {self.plural} are: {known}")
        return self.entries[name]

    def get(self, name: str) -> Any:
        """The entry's object (or module), importing its module alone; a TypeError (a developer's
        mistake) when it is not of the registry's kind."""
        module = self.entry(name).load()
        found = module if self.attribute is None else getattr(module, self.attribute, None)
        if not self.expected(found):
            raise TypeError(f"{module.__name__} declares the {self.kind} {name!r}, but its {self.attribute} is "
                            f"{found!r}, not {self.expected_as}")
        return found

    def all(self) -> dict[str, Any]:
        """Every entry's object, by name (imports every entry)."""
        return {name: self.get(name) for name in self.entries}
