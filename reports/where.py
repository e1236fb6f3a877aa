"""`--where key=value` filters over runs: the key is any hparam field name (or bundle.field), or
kind, status, replicate, level. Different keys must all match; a key repeated matches any of its
values. Values compare as their field's type: 0.5 matches 0.50, true matches a switched-on flag,
none matches an unset optional field."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import fields
from typing import Any, Optional

from foundations.bundles import TRUNK_BUNDLES
from foundations.errors import UserError
from foundations.hparams import Hparams

SPECIAL = ("kind", "status", "replicate", "level")
_MISSING = object()


def conditions(items: list[str], runs: list) -> dict[str, list[str]]:
    """The --where conditions over `runs`: a key may be a field of the listed runs or of the
    trunk's bundles, or (looked up, importing every branch, only when it is neither) of a branch's."""
    from runs.registry import BRANCHES

    def branch_keys() -> set[str]:
        return known_keys(cls for module in BRANCHES.all().values() for cls in module.BUNDLES.values())

    seen = {key for run in runs for key in [*run.fields(), *run.environment]}
    return parse(items, known_keys(TRUNK_BUNDLES.values(), seen), branch_keys)


def known_keys(bundle_classes: Iterable[type[Hparams]], seen: Iterable[str] = ()) -> set[str]:
    """The keys a --where may use: the special ones, every field of these bundle classes, and the
    field names seen in the runs (written by other versions, perhaps)."""
    keys = set(SPECIAL) | set(seen)
    for cls in bundle_classes:
        keys |= {f.name for f in fields(cls)}
    return keys


def parse(items: list[str], known: set[str], more: Optional[Callable[[], set[str]]] = None) -> dict[str, list[str]]:
    """{key: accepted values} from `key=value` strings, or a UserError naming the bad one. `more`
    gives further known keys, asked for only when a key is not among `known` (it may be costly)."""
    conditions: dict[str, list[str]] = {}
    known = set(known)
    for item in items:
        key, equals, value = item.partition("=")
        key = key.strip()
        if not equals or not key:
            raise UserError(f"--where {item!r} is not key=value (e.g. --where strategy=snip10)")
        base = key.split(".", 1)[-1]
        if key not in known and base not in known and more is not None:
            known |= more()
            more = None
        if key not in known and base not in known:
            suggestions = sorted(k for k in known if base[:4] in k)[:5] or sorted(SPECIAL)
            raise UserError(f"--where key {key!r} is not an hparam field nor one of {', '.join(SPECIAL)} "
                            f"(did you mean {', '.join(suggestions)}?)")
        conditions.setdefault(key, []).append(value.strip())
    return conditions


def value_matches(stored: Any, text: str) -> bool:
    """Whether a stored value equals the text as the user would write it on the command line."""
    lowered = text.lower()
    if stored is None:
        return lowered in ("none", "null", "-", "")
    if isinstance(stored, bool):
        return lowered in (("true", "1", "yes", "on") if stored else ("false", "0", "no", "off"))
    if isinstance(stored, (int, float)):
        try:
            return float(text) == float(stored)
        except ValueError:
            return False
    return str(stored) == text


def matches(values: dict[str, Any], conditions: dict[str, list[str]]) -> bool:
    for key, accepted in conditions.items():
        stored = values.get(key, _MISSING)
        if stored is _MISSING:
            return False
        if key == "kind" and any(str(stored) in (text, f"branch_{text}") for text in accepted):
            continue
        if not any(value_matches(stored, text) for text in accepted):
            return False
    return True
