"""Argument parsing shared by every command: one-line errors and --default_hparams."""

from __future__ import annotations

import argparse
import difflib
import sys
from typing import Any, NoReturn, Optional, Sequence

from foundations.errors import UserError


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are UserErrors (one line, no usage dump, no traceback).

    A flag must be spelled out: argparse would take `--training_step` for `--training_steps` (a
    prefix), and a later flag beginning the same way would silently change what an old command
    line means. An unknown flag gets the closest known one as a suggestion."""

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UserError(f"{message} (see `{self.prog} --help`)")

    def parse_args(self, args: Optional[Sequence[str]] = None,  # type: ignore[override]
                   namespace: Optional[argparse.Namespace] = None) -> argparse.Namespace:
        tokens = list(sys.argv[1:] if args is None else args)
        self._refuse_misspelled(tokens)  # before argparse would complain of a required flag instead
        parsed, extras = self.parse_known_args(tokens, namespace)
        if extras:
            self.error(self.unknown_message(extras))
        return parsed

    def _refuse_misspelled(self, tokens: Sequence[str]) -> None:
        known = set(self.flags())
        for token in tokens:
            if token == "--":
                return
            flag = token.split("=", 1)[0]
            if token.startswith("--") and flag not in known:
                close = self.suggestion(flag)
                if close is not None:
                    self.error(f"unknown flag {flag}; did you mean {close}?")

    def flags(self) -> list[str]:
        """Every long flag of this parser (`--name`)."""
        return [option for option in self._option_string_actions if option.startswith("--")]

    def suggestion(self, flag: str) -> Optional[str]:
        """The known flag closest to `flag` (a typo, a prefix), or None when none is close."""
        close = difflib.get_close_matches(flag, self.flags(), n=1, cutoff=0.75)
        return close[0] if close else None

    def unknown_message(self, extras: Sequence[str]) -> str:
        """`unknown flag --x; did you mean --y?` for the first unknown flag that resembles a known
        one, else argparse's own `unrecognized arguments: ...`."""
        for token in extras:
            if token.startswith("--") and len(token) > 2:
                flag = token.split("=", 1)[0]
                close = self.suggestion(flag)
                if close is not None:
                    return f"unknown flag {flag}; did you mean {close}?"
        return f"unrecognized arguments: {' '.join(extras)}"


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
