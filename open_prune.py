"""open_prune: an experiment runner for the science of neural-network pruning.

    python open_prune.py <command> [flags]      (also installed as `open-prune`)
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Optional

from foundations.errors import UserError
from foundations.registry import declared_strings, module_path
from training.interrupts import Interrupted

# Each command is a module of cli/ with a SUMMARY literal and main(argv); the listing reads the
# summaries from the sources, and only the command that runs is imported.
COMMANDS = {
    "train": "cli.train",
    "branch": "cli.branch",
    "submit": "cli.submit",
    "runs": "cli.runs",
    "tree": "cli.tree",
    "report": "cli.report",
    "compare-masks": "cli.compare_masks",
    "plot-weights": "cli.plot_weights",
    "representations": "cli.representations",
}


def _command(name: str):
    return importlib.import_module(COMMANDS[name])


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: python open_prune.py <command> [flags]   (`<command> --help` lists its flags)", "", "commands:"]
    lines += [f"  {name:<{width}}  {declared_strings(module_path(module))['SUMMARY']}"
              for name, module in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        if not argv or argv[0] in ("-h", "--help", "help"):
            print(_usage())
            return 0
        if argv[0] not in COMMANDS:
            raise UserError(f"unknown command {argv[0]!r}; the commands are: {', '.join(COMMANDS)}")
        return _command(argv[0]).main(argv[1:])
    except UserError as error:
        print(f"open_prune: error: {error}", file=sys.stderr)
        return 2
    except Interrupted as interrupted:  # a signal during training: checkpointed where it stood
        print(f"open_prune: {interrupted}", file=sys.stderr)
        return interrupted.exit_code
    except KeyboardInterrupt:
        print("open_prune: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`open_prune.py runs | head`): nothing more to say
        sys.stdout = open(os.devnull, "w")
        return 0
    except OSError as error:  # the environment, not a bug: a full disk, a vanished mount, no permission
        where = f" ({error.filename})" if error.filename else ""
        print(f"open_prune: error: {error.strerror or error}{where}; fix that and rerun the same command",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
