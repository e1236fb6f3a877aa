"""Argument parsing shared by every command: one-line errors and --default_hparams."""

from __future__ import annotations

import argparse
from typing import NoReturn, Optional

from foundations.errors import UserError


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are UserErrors (one line, no usage dump, no traceback)."""

    def error(self, message: str) -> NoReturn:
        raise UserError(f"{message} (see `{self.prog} --help`)")


def peek_flag(argv: list[str], flag: str) -> Optional[str]:
    """The value of `--flag=value` or `--flag value` in argv, without parsing the rest."""
    for i, arg in enumerate(argv):
        if arg.startswith(f"--{flag}="):
            return arg.split("=", 1)[1]
        if arg == f"--{flag}" and i + 1 < len(argv):
            return argv[i + 1]
    return None


def add_job_args(parser: argparse.ArgumentParser) -> None:
    """Flags that say how to run a job, not what it is (never hashed)."""
    group = parser.add_argument_group("Job", "How to run this job (not hashed).")
    group.add_argument("--default_hparams", metavar="MODEL",
                       help="fill every hparam with the published recipe for this model (any flag overrides)")
    group.add_argument("--replicate", type=int, default=1, metavar="R",
                       help="replicate number: derives the seeds and names replicate_<R> (default: 1)")
    group.add_argument("--quiet", action="store_true", help="no progress bar")
    group.add_argument("--display_output_location", action="store_true",
                       help="print the run directory and exit")
    group.add_argument("--wait_for_lock", action="store_true",
                       help="if another process is training this run, wait for it instead of exiting")
