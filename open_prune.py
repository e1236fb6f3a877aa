"""open_prune: an experiment runner for the science of neural-network pruning.

    python open_prune.py <command> [flags]      (also installed as `open-prune`)
"""

from __future__ import annotations

import sys
from typing import Callable, Optional

from foundations.errors import UserError
from training.interrupts import Interrupted


def _commands() -> dict[str, tuple[Callable[[list[str]], int], str]]:
    from training import branch_command, submit_command, train_command
    from reports import masks_command, report_command, runs_command, tree_command, weights_command
    return {
        "train": (train_command.main, train_command.SUMMARY),
        "branch": (branch_command.main, branch_command.SUMMARY),
        "submit": (submit_command.main, submit_command.SUMMARY),
        "runs": (runs_command.main, runs_command.SUMMARY),
        "tree": (tree_command.main, tree_command.SUMMARY),
        "report": (report_command.main, report_command.SUMMARY),
        "compare-masks": (masks_command.main, masks_command.SUMMARY),
        "plot-weights": (weights_command.main, weights_command.SUMMARY),
    }


def _usage(commands: dict) -> str:
    lines = ["usage: python open_prune.py <command> [flags]   (`<command> --help` lists its flags)", "", "commands:"]
    lines += [f"  {name:<8} {summary}" for name, (_, summary) in commands.items()]
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        commands = _commands()
        if not argv or argv[0] in ("-h", "--help", "help"):
            print(_usage(commands))
            return 0
        if argv[0] not in commands:
            raise UserError(f"unknown command {argv[0]!r}; the commands are: {', '.join(commands)}")
        return commands[argv[0]][0](argv[1:])
    except UserError as error:
        print(f"open_prune: error: {error}", file=sys.stderr)
        return 2
    except Interrupted as interrupted:  # a signal during training: checkpointed where it stood
        print(f"open_prune: {interrupted}", file=sys.stderr)
        return interrupted.exit_code
    except KeyboardInterrupt:
        print("open_prune: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except OSError as error:  # the environment, not a bug: a full disk, a vanished mount, no permission
        where = f" ({error.filename})" if error.filename else ""
        print(f"open_prune: error: {error.strerror or error}{where}; fix that and rerun the same command",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
