"""Grids of runs written as one command line: a flag with alternatives multiplies the runs.

    --prune_fraction=0.5,0.9,0.99      three alternatives (commas), unless the field is list-valued
    --replicate=1-5                    an int range, inclusive: 1, 2, 3, 4, 5 (int flags only)
    --replicate=1-3,7                  ranges and single values mix
    --milestone_steps=80ep,120ep --milestone_steps=60ep   repeated: two alternatives, each kept whole

The product runs in flag order (the first flag varies slowest), so one command line always gives
the same runs in the same order; `report` and `submit` enumerate a grid alike. The flags' types come
from the command's parser (int flags take ranges) and the list-valued fields from its bundles
(`foundations.hparams.list_valued_flags`), so a grid reads its flags exactly as the command does.

    expand(argv, parser, bundles=...)        -> [argv, ...], every flag written --flag=value
    parse_grid(argv, parser, bundles=...)    -> Grid: .axes, .varying(), .points(), .argv(point)
"""

from __future__ import annotations

import argparse
import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Optional, Union

from foundations.errors import UserError
from foundations.hparams import Hparams, _base_type, list_valued_flags

Bundles = Union[Mapping[str, type[Hparams]], Iterable[type[Hparams]]]

_INT = re.compile(r"^-?\d+$")
_RANGE = re.compile(r"^(\d+)-(\d+)$")
_NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)$")


@dataclass(frozen=True)
class FlagSpec:
    """What a grid needs to know about one flag."""

    takes_value: Optional[bool] = True  # True: always; False: never (a switch); None: optionally
    is_int: bool = False
    is_list: bool = False


@dataclass(frozen=True)
class Axis:
    """One flag of the grid and its alternatives in the order given (None: a bare switch)."""

    flag: str
    values: tuple[Optional[str], ...]

    def token(self, value: Optional[str]) -> str:
        return f"--{self.flag}" if value is None else f"--{self.flag}={value}"


@dataclass(frozen=True)
class Grid:
    """A command line with alternatives: positional tokens verbatim, one Axis per distinct flag
    (at the place of its first occurrence)."""

    items: tuple[Union[str, Axis], ...]

    @property
    def axes(self) -> list[Axis]:
        return [item for item in self.items if isinstance(item, Axis)]

    def varying(self) -> list[str]:
        """The flags with more than one alternative, in flag order."""
        return [axis.flag for axis in self.axes if len(axis.values) > 1]

    def points(self) -> list[dict[str, Optional[str]]]:
        """Every combination as {flag: value}, the first flag varying slowest."""
        axes = self.axes
        names = [axis.flag for axis in axes]
        return [dict(zip(names, combo)) for combo in itertools.product(*(axis.values for axis in axes))]

    def argv(self, point: Mapping[str, Optional[str]]) -> list[str]:
        """The plain command line of one combination."""
        return [item if isinstance(item, str) else item.token(point[item.flag]) for item in self.items]

    def expand(self) -> list[list[str]]:
        return [self.argv(point) for point in self.points()]

    def __len__(self) -> int:
        size = 1
        for axis in self.axes:
            size *= len(axis.values)
        return size


def flag_specs(parser: Optional[argparse.ArgumentParser] = None, bundles: Bundles = ()) -> dict[str, FlagSpec]:
    """{flag name without dashes: FlagSpec} from bundle classes' fields and a parser's actions
    (the parser wins where both know a flag: it is what the command will read)."""
    classes = list(bundles.values()) if isinstance(bundles, Mapping) else list(bundles)
    listed = list_valued_flags(classes)
    specs: dict[str, FlagSpec] = {}
    for cls in classes:
        for f in fields(cls):
            kind = _base_type(f.type)
            specs[f.name] = FlagSpec(None if kind is bool else True, kind is int, f.name in listed)
    for action in (parser._actions if parser is not None else ()):
        takes = False if action.nargs == 0 else None if action.nargs == "?" else True
        for option in action.option_strings:
            if option.startswith("--"):
                specs[option[2:]] = FlagSpec(takes, action.type is int, option[2:] in listed)
    return specs


def _resolve(name: str, aliases: Mapping[str, str]) -> str:
    """The flag a name means: itself or the flag it is an alias of. Never a flag it is a prefix of:
    the commands' parsers refuse abbreviations, and a grid expands what they will parse."""
    return aliases.get(name, name)


def _takes_next(token: Optional[str], spec: FlagSpec) -> bool:
    """Whether `--flag token` gives token as the flag's value (argparse's rule)."""
    if token is None or spec.takes_value is False:
        return False
    return not token.startswith("-") or bool(_NEGATIVE_NUMBER.match(token))


def _alternatives(flag: str, value: Optional[str], spec: FlagSpec, written: Optional[str] = None
                  ) -> list[Optional[str]]:
    """The alternatives that one occurrence of a flag writes (`written`: the name as the user typed
    it, an alias such as --replicates, for the errors)."""
    written = written or flag
    if value is None or spec.is_list:
        return [value]
    parts = [part.strip() for part in value.split(",")]
    if len(parts) > 1 and not all(parts):
        raise UserError(f"--{written}={value} has an empty alternative: separate the values by single commas")
    if not spec.is_int:
        return list(parts)
    values: list[Optional[str]] = []
    for part in parts:
        if _INT.match(part):
            values.append(part)
            continue
        match = _RANGE.match(part)
        if not match or int(match[1]) > int(match[2]):
            raise UserError(f"--{written}={value}: {part!r} is neither an integer nor a range a-b with a <= b "
                            f"(e.g. --{written}=1-5)")
        values += [str(i) for i in range(int(match[1]), int(match[2]) + 1)]
    return values


def parse_grid(argv: Sequence[str], parser: Optional[argparse.ArgumentParser] = None, *,
               bundles: Bundles = (), list_valued: Iterable[str] = (),
               aliases: Optional[Mapping[str, str]] = None) -> Grid:
    """Read argv as a grid.

    `parser` and `bundles` (the command's) say which flags are switches, which are ints (ranges
    allowed) and which are list-valued (never split at commas: repeat the flag to give
    alternatives); `list_valued` names more list-valued flags; `aliases` maps a flag name to the
    one it stands for, e.g. {"replicates": "replicate"}. Repeated flags add alternatives; an
    alternative given twice counts once. Malformed ranges (5-1, 1-x) are UserErrors."""
    specs = flag_specs(parser, bundles)
    for name in list_valued:
        old = specs.get(name, FlagSpec())
        specs[name] = FlagSpec(old.takes_value, old.is_int, True)
    aliases = dict(aliases or {})
    order: list[tuple[bool, str]] = []  # (is a flag, the positional token or the flag name)
    values: dict[str, list[Optional[str]]] = {}
    tokens = list(argv)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token == "--":  # everything after it is positional, as in argparse
            order += [(False, rest) for rest in tokens[i:]]
            break
        i += 1
        if not token.startswith("--"):
            order.append((False, token))
            continue
        name, has_equals, value = token[2:].partition("=")
        flag = _resolve(name, aliases)
        spec = specs.get(flag, FlagSpec(takes_value=None))
        if not has_equals:
            following = tokens[i] if i < len(tokens) else None
            value = following if _takes_next(following, spec) else None
            i += value is not None
        if flag not in values:
            values[flag] = []
            order.append((True, flag))
        for alternative in _alternatives(flag, value, spec, written=name):
            if alternative not in values[flag]:
                values[flag].append(alternative)
    return Grid(tuple(Axis(text, tuple(values[text])) if is_flag else text for is_flag, text in order))


def expand(argv: Sequence[str], parser: Optional[argparse.ArgumentParser] = None, *,
           bundles: Bundles = (), list_valued: Iterable[str] = (),
           aliases: Optional[Mapping[str, str]] = None) -> list[list[str]]:
    """Every command line of the grid that argv writes, in flag order (see `parse_grid`)."""
    return parse_grid(argv, parser, bundles=bundles, list_valued=list_valued, aliases=aliases).expand()
