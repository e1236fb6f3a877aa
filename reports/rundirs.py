"""The runs under a root and the state of each, from their small files alone (no tensors).

    <root>/train_<hash>/replicate_<r>/main/                          a trunk
    <root>/train_<hash>/replicate_<r>/branch_<name>_<hash>/          a branch (hparams.json here)
    <root>/train_<hash>/replicate_<r>/branch_<name>_<hash>/level_<L>/   its levels, if it has any

A directory's status is `done` (a readable done.json), `corrupt` (done.json or hparams.json
unreadable), `running` (a live process holds its lock), `failed` (failed.json) or `partial`.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from foundations import paths
from foundations.bundles import TRUNK_BUNDLES
from foundations.errors import UserError
from reports.readers import number, read_json, read_metrics

STATUSES = ("done", "partial", "running", "failed", "corrupt")


@dataclass
class State:
    """What one directory's files say."""

    status: str
    test_accuracy: Optional[float] = None
    density: Optional[float] = None
    step: Optional[str] = None
    note: str = ""
    headline: dict[str, float] = field(default_factory=dict)  # a branch's own result, from its marker
    results: dict[str, dict[str, float]] = field(default_factory=dict)  # its table: {row: {metric: value}}
    compute: dict[str, Any] = field(default_factory=dict)  # done.json's parameters and FLOPs (training/compute.py)
    test_perplexity: Optional[float] = None  # a language model's (its test_accuracy is next-token accuracy)

    def headline_text(self) -> Optional[str]:
        """'barrier 0.0123, above chord 0.0100': the branch's headline numbers, or None."""
        shown = [f"{label} {value:.4g}" for label, value in self.headline.items() if isinstance(value, (int, float))]
        return ", ".join(shown) or None


@dataclass
class Level:
    number: int
    path: Path
    state: State


@dataclass
class Run:
    """A directory with its own hparams.json: a trunk or a branch (whose levels it lists)."""

    path: Path
    root: Path
    kind: str
    replicate: Optional[int]
    hash: Optional[str]
    parent_hash: Optional[str]
    hparams: dict[str, dict]
    state: State
    levels: list[Level] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)  # where it ran: python, torch, device, git_commit, ...
    _fields: Optional[dict[str, Any]] = field(default=None, repr=False, compare=False)

    @property
    def rel(self) -> str:
        return str(self.path.relative_to(self.root))

    @property
    def is_trunk(self) -> bool:
        return self.kind == "train"

    def fields(self) -> dict[str, Any]:
        """Every hparam by field name (trunk bundles first), and by `bundle.field` (a fresh dict)."""
        if self._fields is None:
            flat: dict[str, Any] = {}
            for bundle in ordered_bundles(self.hparams):
                values = self.hparams[bundle]
                for name, value in values.items():
                    flat.setdefault(name, value)
                flat.update({f"{bundle}.{name}": value for name, value in values.items()})
            self._fields = flat
        return dict(self._fields)


def ordered_bundles(hparams: dict) -> list[str]:
    """Bundle names, the trunk's first in their usual order, then the branch's."""
    return [b for b in TRUNK_BUNDLES if b in hparams] + sorted(b for b in hparams if b not in TRUNK_BUNDLES)


def is_locked(directory: Path) -> bool:
    """Whether a live process holds `<directory>/.lock`: a non-blocking shared flock on the file
    opened read-only, released at once (a lock dies with its process, so no stale locks)."""
    try:
        fd = os.open(Path(directory) / ".lock", os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # closing the descriptor releases the probe's lock
    return False


def _last_step(directory: Path) -> Optional[str]:
    records = read_metrics(directory / paths.METRICS)
    return str(records[-1].get("step", records[-1]["iteration"])) if records else None


def state_of(directory: Path, names: Optional[set[str]] = None, *, dense: bool = False,
             lock_holders: tuple[Path, ...] = ()) -> State:
    """The state of one run or level directory. `names` is its listing (if already read);
    `dense` runs have no mask (density 1); `lock_holders` are other directories whose lock means
    this one is being trained (a branch holds its own lock while it trains its levels)."""
    directory = Path(directory)
    if names is None:
        names = _listing(directory)
    sparsity = read_json(directory / paths.SPARSITY) if paths.SPARSITY in names else None
    density = number(sparsity.get("density")) if isinstance(sparsity, dict) else None
    if dense and density is None and paths.MASK not in names:
        density = 1.0
    marker = read_json(directory / paths.BRANCH_DONE) if paths.BRANCH_DONE in names else None
    pairs = marker.get("headline") if isinstance(marker, dict) else None  # [[label, value], ...] in its order
    headline = {str(pair[0]): pair[1] for pair in pairs if isinstance(pair, list) and len(pair) == 2
                and number(pair[1]) is not None} if isinstance(pairs, list) else {}
    table = marker.get("results") if isinstance(marker, dict) else None  # [[row, {metric: value}], ...]
    results = {str(row[0]): {str(k): v for k, v in row[1].items() if number(v) is not None}
               for row in table if isinstance(row, list) and len(row) == 2 and isinstance(row[1], dict)
               } if isinstance(table, list) else {}
    for name in (paths.DONE, paths.BRANCH_DONE):  # the training run's result, else the branch's marker
        if name not in names:
            continue
        done = read_json(directory / name)
        if isinstance(done, dict) and (name == paths.BRANCH_DONE or isinstance(done.get("metrics"), dict)):
            metrics = done.get("metrics") if isinstance(done.get("metrics"), dict) else {}
            return State("done", number(metrics.get("test_accuracy")), density, done.get("final_step"),
                         headline=headline, results=results, compute=compute_of(done, table),
                         test_perplexity=number(metrics.get("test_perplexity")))
        if done is not None:  # None: removed between the listing and the read
            return State("corrupt", None, density, None, f"{name} is unreadable")
    if any(is_locked(d) for d in (directory, *lock_holders)):
        return State("running", None, density, _last_step(directory))
    if paths.FAILED in names:
        failed = read_json(directory / paths.FAILED)
        failed = failed if isinstance(failed, dict) else {}
        return State("failed", None, density, failed.get("step") or _last_step(directory),
                     str(failed.get("reason", paths.FAILED)))
    return State("partial", None, density, _last_step(directory))


def compute_of(done: dict, table: Any = None) -> dict[str, Any]:
    """done.json's `compute` (parameters, forward FLOPs, speedup, training FLOPs: training/compute.py),
    {} for a run written before it was counted. A branch that counts its own training FLOPs (the
    sparse-training branches: `train GFLOPs` in the first row of its results table, its own; the
    others are its controls) gives them in place of the plain 3 x forward x examples estimate."""
    compute = done.get("compute")
    found = {str(k): v for k, v in compute.items() if number(v) is not None or isinstance(v, str)
             } if isinstance(compute, dict) else {}
    first = table[0] if isinstance(table, list) and table else None
    own = first[1] if isinstance(first, list) and len(first) == 2 and isinstance(first[1], dict) else {}
    if number(own.get("train GFLOPs")) is not None:
        found.update(training_flops=number(own["train GFLOPs"]) * 1e9, training_flops_rule="counted by the branch")
    return found


def _listing(directory: Path) -> set[str]:
    try:
        return {entry.name for entry in os.scandir(directory)}
    except OSError:
        return set()


def _subdirs(directory: Path) -> list[os.DirEntry]:
    try:
        return sorted((e for e in os.scandir(directory) if e.is_dir(follow_symlinks=False)), key=lambda e: e.name)
    except OSError:
        return []


def _finished_levels(path: Path, names: set[str]) -> Optional[int]:
    """The number of levels the branch's finished marker says it ran to (--levels is not hashed,
    so only the marker knows it); None while the branch has not finished."""
    marker = read_json(path / paths.BRANCH_DONE) if paths.BRANCH_DONE in names else None
    levels = marker.get("options", {}).get("imp", {}).get("levels") if isinstance(marker, dict) else None
    return levels if isinstance(levels, int) else None


def _aggregate(levels: list[Level], expected: Optional[int], own: State) -> State:
    """A level branch's state: the worst of its levels' (running, failed, corrupt before partial);
    done when its marker says it finished `expected` levels and each is done. Accuracy (or
    perplexity) and density are its deepest done level's."""
    statuses = [level.state.status for level in levels]
    done = [level for level in levels if level.state.status == "done"]
    last = done[-1].state if done else State("partial")
    for status in ("running", "failed", "corrupt"):
        if status in statuses or own.status == status:
            return State(status, last.test_accuracy, last.density, last.step, own.note, compute=last.compute,
                         test_perplexity=last.test_perplexity)
    complete = expected is not None and set(range(expected + 1)) <= {level.number for level in done}
    return State("done" if complete else "partial", last.test_accuracy, last.density, last.step,
                 compute=last.compute, test_perplexity=last.test_perplexity)


def read_run(path: Path, root: Path) -> Run:
    """One trunk or branch directory, and its levels if it has any."""
    path = Path(path)
    names = _listing(path)
    raw = read_json(path / paths.HPARAMS) if paths.HPARAMS in names else None
    readable = isinstance(raw, dict) and isinstance(raw.get("hparams"), dict)
    stored = raw if readable else {}
    branch = paths.BRANCH_DIR.match(path.name)
    replicate = paths.REPLICATE_DIR.match(path.parent.name)
    kind = str(stored.get("kind") or (f"branch_{branch[1]}" if branch else "train"))
    run = Run(path=path, root=Path(root), kind=kind,
              replicate=stored.get("replicate", int(replicate[1]) if replicate else None),
              hash=stored.get("hash") or (branch[2] if branch else path.parent.parent.name[len("train_"):]),
              parent_hash=stored.get("parent_hash"),
              hparams={k: v for k, v in stored.get("hparams", {}).items() if isinstance(v, dict)},
              state=State("corrupt"),
              environment=stored["environment"] if isinstance(stored.get("environment"), dict) else {})
    level_dirs = [(level, Path(e.path)) for e in _subdirs(path) if (level := paths.level_of(e.name)) is not None]
    if level_dirs or "imp" in run.hparams:
        locked = (path,)
        run.levels = [Level(n, d, state_of(d, lock_holders=locked)) for n, d in sorted(level_dirs)]
        own = state_of(path, names - {paths.DONE, paths.BRANCH_DONE})
        run.state = _aggregate(run.levels, _finished_levels(path, names), own)
    else:
        run.state = state_of(path, names, dense=run.is_trunk)
    if raw is not None and not readable:
        run.state.status, run.state.note = "corrupt", "hparams.json is unreadable"
    elif raw is None and run.state.status == "done":
        run.state.status, run.state.note = "corrupt", "hparams.json is missing"
    return run


def find_runs(root: Path) -> list[Run]:
    """Every trunk and branch under `root`: by trunk and replicate, the trunk before its branches."""
    runs = []
    for train in _subdirs(root):
        if not paths.TRAIN_DIR.match(train.name):
            continue
        for replicate in _subdirs(Path(train.path)):
            if not paths.REPLICATE_DIR.match(replicate.name):
                continue
            children = sorted(_subdirs(Path(replicate.path)), key=lambda e: (e.name != paths.TRUNK_DIR, e.name))
            for child in children:
                if child.name == paths.TRUNK_DIR or paths.BRANCH_DIR.match(child.name):
                    runs.append(read_run(Path(child.path), root))
    return runs


def run_tree_ancestor(path: Path) -> Optional[Path]:
    """The innermost directory at or above `path` that belongs to a run tree (a train_<hash>
    directory or one holding hparams.json), or None."""
    path = Path(path).expanduser().absolute()
    for candidate in (path, *path.parents):
        if paths.TRAIN_DIR.match(candidate.name) or (candidate / paths.HPARAMS).is_file():
            return candidate
    return None


def check_root(root: Path, source: str = "--root") -> Path:
    """`root` if it is a root of runs (an existing directory holding train_<hash> directories,
    or an empty one), else a UserError that says what was given instead. `source` is how the user
    named it: `--root`, or `$OPEN_PRUNE_ROOT` when it came from the environment."""
    root = Path(root).expanduser()
    if not root.exists():
        raise UserError(f"{source}={root} does not exist: give the directory that holds the train_<hash> run "
                        f"directories")
    if not root.is_dir():
        raise UserError(f"{source}={root} is a file, not a directory of runs")
    inside = run_tree_ancestor(root)
    if inside is not None:
        top = next((p for p in (inside, *inside.parents) if paths.TRAIN_DIR.match(p.name)), inside)
        raise UserError(f"{source}={root} is inside a run tree; the root is the directory above "
                        f"{top.name}: {source}={top.parent}")
    entries = [e for e in _listing(root) if not e.startswith(".") and e != "reports"]
    if entries and not any(paths.TRAIN_DIR.match(e) for e in entries):
        raise UserError(f"{source}={root} holds no train_<hash> run directories: it is not a root of open_prune "
                        f"runs")
    return root
