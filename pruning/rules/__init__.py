"""Per-step pruning rules: rewrite a weight in place after every optimizer step.

    rule = rules.get("dyn_topk", keep=0.3)
    for epoch in range(epochs):
        for batch in ...:
            optimizer.step()
            rule.apply(model.weight, progress=epoch / epochs)
    checkpoint["rule"] = rule.state_dict()       # plain tensors: a drawn mask, a frozen tau

A rule is an entry of the registry convention (foundations/registry.py): a module in
pruning/rules/ that assigns, at its top level,

    NAME = "topk"                    what --rule takes
    SUMMARY = "keep the floor(...)"  one line for listings
    RULE = TopK                      a `Rule` subclass

Nothing here lists them, so adding a rule is adding one file (base.py, a helper, declares no
NAME). `names()` imports none of them, `get` the one it names; RULES ({name: Rule subclass}) and
`constraint_names()` import them all.

The settings a rule takes are its constructor's parameters (those without a default are
required); `get` refuses a missing one and one the rule does not take (`seed` is passed to every
rule and used by those that draw). A new kind of setting is a new entry in `base.SETTINGS` and a
new keyword of `get`.
"""

from __future__ import annotations

import inspect
from typing import Optional

from foundations.errors import UserError
from foundations.registry import Registry
from pruning.rules.base import SETTINGS, Rule, sin4

STEP_RULES = Registry("pruning.rules", kind="pruning rule", attribute="RULE",
                      expected=lambda rule: isinstance(rule, type) and issubclass(rule, Rule),
                      expected_as="a Rule subclass")

__all__ = ["RULES", "STEP_RULES", "Rule", "constraint_names", "get", "names", "settings_of", "sin4"]


def __getattr__(attribute: str):
    """RULES ({name: Rule subclass}, in name order), built when asked for: it imports every rule."""
    if attribute == "RULES":
        return {name: STEP_RULES.get(name) for name in names()}
    raise AttributeError(f"module {__name__!r} has no attribute {attribute!r}")


def names() -> list[str]:
    """Every rule, in name order."""
    return STEP_RULES.names()


def constraint_names() -> list[str]:
    """The rules that optimize the orderedness metric directly (never pool them with the rest)."""
    return [name for name in names() if STEP_RULES.get(name).constraint]


def settings_of(name: str) -> dict[str, bool]:
    """The settings rule `name` takes, each mapped to whether it is required."""
    parameters = inspect.signature(_rule(name).__init__).parameters
    return {key: parameter.default is inspect.Parameter.empty for key, parameter in parameters.items()
            if key in SETTINGS}


def _rule(name: str) -> type[Rule]:
    if not isinstance(name, str) or name.strip().lower() not in STEP_RULES.entries:
        constraints = ", ".join(constraint_names())
        raise UserError(f"unknown pruning rule {name!r}: use one of {', '.join(names())} "
                        f"({constraints} are constraints on the orderedness metric)")
    return STEP_RULES.get(name.strip().lower())


def _describe(name: str) -> str:
    taken = settings_of(name)
    return ", ".join(f"{key} ({SETTINGS[key]})" for key in taken) or "no settings"


def get(name: str, *, keep: Optional[float] = None, prune_fraction: Optional[float] = None,
        threshold: Optional[float] = None, damping: Optional[float] = None,
        seed: Optional[int] = None) -> Rule:
    """The rule `name` with its settings; None means "not given"."""
    rule = _rule(name)
    name = name.strip().lower()
    given = {"keep": keep, "prune_fraction": prune_fraction, "threshold": threshold,
             "damping": damping, "seed": seed}
    taken = settings_of(name)
    for key, required in taken.items():
        if required and given[key] is None:
            raise UserError(f"pruning rule {name} needs {key}: give {SETTINGS[key]}")
    extra = [key for key, value in given.items() if value is not None and key not in taken and key != "seed"]
    if extra:
        raise UserError(f"pruning rule {name} takes no {', '.join(extra)}: it takes {_describe(name)}")
    return rule(**{key: given[key] for key in taken if given[key] is not None})
