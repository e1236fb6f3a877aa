"""`open_prune.py branch <name>`: prune and retrain a trunk."""

from __future__ import annotations

from foundations.errors import UserError
from training.branches import registry

SUMMARY = "prune and retrain a trunk (`branch` alone lists the branches)"


def main(argv: list[str]) -> int:
    branches = registry.all_branches()
    if not argv or argv[0].startswith("-"):  # no branch named: list them
        print("usage: python open_prune.py branch <name> [flags]   (`branch <name> --help` lists its flags)\n")
        print("branches:")
        width = max(map(len, branches))
        for name, branch in branches.items():
            print(f"  {name:<{width}}  {branch.SUMMARY}")
        return 0
    name = argv[0]
    if name not in branches:
        raise UserError(f"unknown branch {name!r}; the branches are: {', '.join(branches) or '(none yet)'}")
    return branches[name].main(argv[1:])
