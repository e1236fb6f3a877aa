"""The layout is the architecture: imports point downwards only, and listing costs no import.

The folders, top to bottom (a folder may import those below it, never one above or beside it):
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = [
    ["cli", "api"],  # the entrypoints: the command line, and Python's (notebooks); neither knows the other
    ["reports"],
    ["branches"],
    ["runs"],
    ["training"],
    ["pruning"],
    ["bayes", "lyapunov", "orderedness"],  # pure math, none knowing the others
    ["models"],
    ["datasets"],
    ["platforms"],
    ["foundations"],
]
LEVEL = {package: level for level, packages in enumerate(LAYERS) for package in packages}
__doc__ += "\n".join("    " + ", ".join(packages) for packages in LAYERS)


def imported_packages(path: Path) -> set[str]:
    """The project packages a source file imports (statically, anywhere in the file)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found |= {name.split(".")[0] for name in names} & set(LEVEL)
    return found


@pytest.mark.parametrize("package", list(LEVEL))
def test_imports_point_downwards_only(package):
    upward = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for other in imported_packages(path) - {package}:
            if LEVEL[other] <= LEVEL[package]:
                upward.append(f"{path.relative_to(ROOT)} imports {other}")
    assert not upward, "imports that do not point downwards:\n" + "\n".join(upward)


def test_every_package_has_its_place():
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "benchmarks", "experiments", "docs"}
    assert packages == set(LEVEL), f"place these in LAYERS: {sorted(packages - set(LEVEL))}"


def modules_loaded_by(*commands: list[str]) -> set[str]:
    """The modules a fresh Python has imported after running these open_prune command lines."""
    probe = ("import contextlib, io, sys, open_prune\n"
             f"for argv in {list(commands)!r}:\n"
             "    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
             "        open_prune.main(argv)\n"
             "print(' '.join(sorted(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    return set(result.stdout.split())


def test_listing_the_commands_and_the_branches_imports_no_torch_and_no_branch():
    loaded = modules_loaded_by([], ["branch"])
    assert "torch" not in loaded
    assert not [name for name in loaded if name.startswith("branches")]


def test_a_branch_command_imports_that_branch_alone():
    loaded = modules_loaded_by(["branch", "iterative", "--help"])
    branch_modules = {name for name in loaded if name.split(".")[0] == "branches"}
    assert branch_modules == {"branches", "branches.lottery", "branches.lottery.iterative", "branches.lottery.imp"}
