"""Hyperparameter bundles: dataclasses whose fields become command-line flags.

A bundle is a dataclass deriving from `Hparams`. Every field carries its help text (`hparam(...)`),
becomes `--<prefix><field>` on the command line, serializes to JSON, and contributes to the run's
hash only when it differs from its default: adding a field whose default means "off" changes no
existing hash.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar, Optional, TypeVar

from foundations.errors import UserError

H = TypeVar("H", bound="Hparams")


def hparam(default: Any = MISSING, help: str = "", choices: Optional[tuple] = None, *,
           is_list: bool = False, hashed: bool = True) -> Any:
    """A dataclass field with help text (and optional choices) for its command-line flag.

    `is_list` marks a string field whose value is itself a comma-separated list (e.g. milestone
    steps), so a grid of runs never splits it at its commas (see foundations/grid.py).
    `hashed=False` marks a field that says how far to run rather than what the run is (the
    number of IMP levels): it is left out of the hash and of hparams.json, so changing it
    continues the same run directory."""
    metadata = {"help": help, "choices": choices, "is_list": is_list, "hashed": hashed}
    return field(default=default, metadata=metadata)


INT64_MAX = 2**63 - 1


def list_valued_flags(bundles: "dict[str, type[Hparams]] | list[type[Hparams]]", prefix: str = "") -> set[str]:
    """The flag names (without dashes) of every field marked `is_list` in these bundle classes."""
    classes = bundles.values() if isinstance(bundles, dict) else bundles
    return {prefix + f.name for cls in classes for f in fields(cls) if f.metadata.get("is_list")}


def _base_type(annotation: Any) -> type:
    """int for `int`, `Optional[int]` and `int | None`."""
    if isinstance(annotation, str):
        annotation = eval(annotation, vars(typing), {})  # resolve postponed annotations
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0]
    return annotation


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


@dataclass
class Hparams:
    """Base of every bundle. Subclasses set `_name` (group title) and `_description`."""

    _name: ClassVar[str] = "Hparams"
    _description: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            kind = _base_type(f.type)
            if value is None or kind is Any:
                continue
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
                setattr(self, f.name, value)
            elif not isinstance(value, kind):
                raise UserError(f"--{f.name} must be a {kind.__name__}, got {value!r}")
            if kind is float and not math.isfinite(value):
                raise UserError(f"--{f.name}={value} is not a finite number: give an ordinary decimal such as 0.1")
            if kind is int and not isinstance(value, bool):
                low = 0 if f.name.endswith("seed") else -INT64_MAX
                if not low <= value <= INT64_MAX:
                    what = "a seed" if low == 0 else "an integer"
                    raise UserError(f"--{f.name}={value} is out of range for {what}: give a whole number in "
                                    f"[{low}, 2**63 - 1]")
            choices = f.metadata.get("choices")
            if choices and value not in choices:
                raise UserError(f"--{f.name}={value} is not one of: {', '.join(map(str, choices))}")
        self.validate()

    def validate(self) -> None:
        """Checks that need more than a type; raise UserError. Override in bundles."""

    # ---- command line -------------------------------------------------------------------------
    @classmethod
    def add_args(cls, parser: argparse.ArgumentParser, prefix: str = "",
                 defaults: Optional[dict] = None) -> None:
        """Add one flag per field, in a group titled by the bundle. `defaults` (from
        --default_hparams) replace the dataclass defaults and make required fields optional."""
        defaults = defaults or {}
        group = parser.add_argument_group(cls._name, cls._description)
        for f in fields(cls):
            kind = _base_type(f.type)
            flag = f"--{prefix}{f.name}"
            has_default = f.name in defaults or f.default is not MISSING
            default = defaults.get(f.name, f.default if f.default is not MISSING else None)
            help_text = f.metadata.get("help", "")
            if not has_default:
                help_text += " (required)"
            elif f.name in defaults or "(default" not in help_text:  # a help text may explain its own default
                help_text += f" (default: {'off' if default is None else repr(default)})"
            kwargs: dict = dict(default=default, help=help_text, dest=prefix + f.name)
            if kind is bool:
                # `--flag` turns it on; `--flag=false` is accepted too.
                kwargs.update(nargs="?", const=True, type=_parse_bool, metavar="BOOL")
            else:
                kwargs.update(type=kind, metavar=kind.__name__.upper())
                if f.metadata.get("choices"):
                    kwargs["choices"] = f.metadata["choices"]
            if not has_default:
                kwargs["required"] = True
            group.add_argument(flag, **kwargs)

    @classmethod
    def from_args(cls: type[H], args: argparse.Namespace, prefix: str = "") -> H:
        return cls(**{f.name: getattr(args, prefix + f.name) for f in fields(cls)})

    # ---- serialization ------------------------------------------------------------------------
    def to_dict(self, hashed_only: bool = False) -> dict:
        """Every field (or, with `hashed_only`, those that define the run: what hparams.json holds)."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if not hashed_only or f.metadata.get("hashed", True)}

    @classmethod
    def from_dict(cls: type[H], values: dict) -> H:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UserError(f"{cls._name}: unknown fields {unknown}; this open_prune does not know them "
                            f"(written by a newer version?)")
        return cls(**values)

    def unhashed_values(self) -> dict:
        """The fields left out of the hash (see `hparam(hashed=False)`)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.metadata.get("hashed", True)}

    def non_default_items(self) -> list[tuple[str, Any]]:
        """(field, value) for every hashed field whose value is not its default, in declaration order."""
        items = []
        for f in fields(self):
            if not f.metadata.get("hashed", True):
                continue
            value = getattr(self, f.name)
            if f.default is MISSING or value != f.default:
                items.append((f.name, value))
        return items

    def canonical(self) -> str:
        """A stable string of the non-default fields: the input of the run hash."""
        inner = ", ".join(f"{name}={value!r}" for name, value in self.non_default_items())
        return f"{type(self).__name__}({inner})"

    def display(self) -> str:
        """Human-readable block for hparams.log: every field, non-defaults marked."""
        lines = [f"{self._name}:"]
        changed = {name for name, _ in self.non_default_items()}
        for f in fields(self):
            if f.metadata.get("hashed", True):
                mark = "*" if f.name in changed else " "
                lines.append(f"  {mark} {f.name} = {getattr(self, f.name)!r}")
        return "\n".join(lines)

    def replace(self: H, **changes: Any) -> H:
        return dataclasses.replace(self, **changes)
