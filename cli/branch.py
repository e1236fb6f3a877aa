"""`open_prune.py branch <name>`: prune and retrain a trunk (`branch` alone lists the branches)."""

from __future__ import annotations

from runs.registry import BRANCHES

SUMMARY = "prune and retrain a trunk (`branch` alone lists the branches)"


def main(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):  # no branch named: list them (from the registry's data alone)
        print("usage: python open_prune.py branch <name> [flags]   (`branch <name> --help` lists its flags)\n")
        print("branches:")
        width = max(map(len, BRANCHES.names()))
        for entry in BRANCHES.entries.values():
            print(f"  {entry.name:<{width}}  {entry.summary}")
        return 0
    from runs.target import branch_target
    return branch_target(argv[0]).run(argv[1:])
