"""The runs a report covers: a grid of one command's runs over replicates, plus the controls of
that experiment, each found by computing its directory (nothing is trained or written).

Controls, each its own role next to the main runs (`main`), when any of their runs exist:
  iterative: the reinitialize branch with the same flags, one role per --control;
  oneshot (and any branch with --prune_fraction): --strategy=random at the same fraction, and the
  --randomize_layerwise and --reinitialize variants.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Optional

from foundations import paths
from foundations.errors import UserError
from foundations.grid import parse_grid
from reports.readers import read_metrics, series
from reports.rundirs import State, check_root, state_of
from runs.target import Located, Target, branch_target

ALIASES = {"replicates": "replicate"}
X_FLAG = "prune_fraction"


@dataclass(frozen=True)
class Control:
    role: str
    target: Target
    extra: tuple[str, ...]


@dataclass
class Result:
    """One run's result (one level of a level branch), found or missing."""

    role: str
    series: str
    config: dict[str, Optional[str]]
    replicate: int
    level: Optional[int]
    x: Optional[float]
    path: Path
    command: list[str]
    state: State
    best: Optional[float] = None
    curve: list[tuple[int, float]] = field(default_factory=list)


@dataclass
class Experiment:
    target: Target
    varying: list[str]          # the grid's flags with alternatives, but the replicate
    x_label: str                # "level", "prune_fraction" or ""
    roles: list[str]            # "main", then each control that has runs
    results: list[Result]
    root: Path
    trunks: list[Result] = field(default_factory=list)  # the dense reference of a one-shot branch, per point

    def trunks_of(self, series_label: str) -> list[Result]:
        """The trunks a series' runs grew from, each once (their dense accuracy is the reference)."""
        return list({r.path: r for r in self.trunks if r.series == series_label}.values())

    def of(self, role: str, series_label: Optional[str] = None, x: object = ...) -> list[Result]:
        return [r for r in self.results if r.role == role and (series_label is None or r.series == series_label)
                and (x is ... or r.x == x)]

    def series(self) -> list[str]:
        return list(dict.fromkeys(r.series for r in self.results if r.role == "main"))

    def xs(self, series_label: str) -> list[Optional[float]]:
        values = {r.x for r in self.of("main", series_label)}
        return sorted(values, key=lambda v: (v is None, v))


def x_flag(target: Target) -> Optional[str]:
    """The flag whose value places a run on the density axis, for branches without levels."""
    if target.has_levels:
        return None
    return X_FLAG if any(f.name == X_FLAG for cls in target.bundles.values() for f in fields(cls)) else None


def controls(target: Target, located: Located) -> list[Control]:
    if target.name == "iterative" and target.words[0] == "branch":
        reinitialize = branch_target("reinitialize")
        control = next(f for f in fields(reinitialize.bundles["control"]) if f.name == "control")
        choices = control.metadata.get("choices")
        return [Control(f"control={c}", reinitialize, (f"--control={c}",)) for c in choices or ()]
    if x_flag(target) is None:
        return []
    values = {f.name: getattr(bundle, f.name) for bundle in located.bundles.values() for f in fields(bundle)}
    found = []
    if values.get("strategy") not in (None, "random"):
        found.append(Control("strategy=random", target, ("--strategy=random",)))
    for switch in ("randomize_layerwise", "reinitialize"):
        if switch in values and not values[switch]:
            found.append(Control(switch, target, (f"--{switch}=true",)))
    return found


def with_flags(argv: list[str], tokens: tuple[str, ...]) -> list[str]:
    """argv with each `--flag=value` of `tokens` in place of that flag's token (else appended): the
    command line a user would write for the control."""
    argv = list(argv)
    for token in tokens:
        prefix = token.split("=", 1)[0]
        places = [i for i, a in enumerate(argv) if a == prefix or a.startswith(prefix + "=")]
        if places:
            argv[places[0]] = token
            argv = [a for i, a in enumerate(argv) if i not in places[1:]]
        else:
            argv.append(token)
    return argv


def _result(role: str, label: str, config: dict, located: Located, level: Optional[int], path: Path,
            x: Optional[float], command: list[str], dense: bool) -> Result:
    if level == 0 and not path.is_dir():  # level 0 is the trunk itself, whether or not the branch ran
        path, dense = located.trunk_dir, True
    if not path.is_dir():
        return Result(role, label, config, located.replicate, level, x, path, command, State("missing"))
    holders = (located.run_dir,) if located.levels is not None else ()
    state = state_of(path, dense=dense, lock_holders=holders)
    metrics = (located.trunk_dir if level == 0 and not (path / paths.METRICS).exists() else path) / paths.METRICS
    curve = series(read_metrics(metrics), "test_accuracy")
    return Result(role, label, config, located.replicate, level, x, path, command, state,
                  max((v for _, v in curve), default=None), curve)


def _results(role: str, target: Target, argv: list[str], label: str, config: dict,
             flag: Optional[str]) -> tuple[Located, list[Result]]:
    located = target.locate(argv)
    fraction = next((getattr(b, flag) for b in located.bundles.values() if flag and hasattr(b, flag)), None)
    command = [*target.words, *argv]
    return located, [_result(role, label, config, located, level, path,
                             float(level) if level is not None else fraction, command, dense=target.module is None)
                     for level, path in located.result_dirs()]


def build(target: Target, argv: list[str]) -> Experiment:
    """Every run of the grid that argv writes (and its controls), with its state."""
    grid = parse_grid(argv, target.parser(), bundles=target.all_bundles(), aliases=ALIASES)
    varying = [flag for flag in grid.varying() if flag != "replicate"]
    flag = x_flag(target)
    main: list[Result] = []
    trunks: list[Result] = []
    by_role: dict[str, list[Result]] = {}
    root: Optional[Path] = None
    for point in grid.points():
        config = {name: point[name] for name in varying}
        label = ", ".join(f"{k}={v}" for k, v in config.items() if k != flag) or " ".join(target.words)
        run_argv = grid.argv(point)
        located, found = _results("main", target, run_argv, label, config, flag)
        root = root or located.root
        main += found
        if target.module is not None and not target.has_levels:  # levels hold the trunk as level 0 already
            trunks.append(_result("trunk", label, config, located, None, located.trunk_dir, None, [], dense=True))
        for control in controls(target, located):
            _, extra = _results(control.role, control.target, with_flags(run_argv, control.extra), label, config,
                                flag)
            by_role.setdefault(control.role, []).extend(extra)
    check_root(root)
    if not any(result.state.status != "missing" for result in main):
        commands = list(dict.fromkeys(shlex.join(result.command) for result in main))
        raise UserError(f"no runs of this grid exist under {root} ({len(commands)} looked for); "
                        f"make them with e.g.: python open_prune.py {commands[0]}")
    present = {role: results for role, results in by_role.items()  # a control that ran (its level 0 is the trunk's)
               if any(result.state.status != "missing" and result.level != 0 for result in results)}
    return Experiment(target, varying, "level" if target.has_levels else (flag or ""), ["main", *present],
                      main + [r for results in present.values() for r in results], root, trunks)
