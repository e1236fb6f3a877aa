"""The experiment graph: trunks (grouped by their hash) -> replicates -> branches -> levels.

Parents come from hparams.json (a branch's parent_hash and replicate), not from where a directory
happens to sit, so a branch whose trunk is missing shows up under a placeholder. A trunk that
several branches grow from says so, and a reinitialize branch points at the iterative branch whose
tickets it controls (same trunk, same replicate, same IMP hparams apart from the level count).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from foundations.tables import cell, hparam_text
from reports.listing import branch_defaults, own_hparams
from reports.metric import of_state
from reports.rundirs import Run, State


@dataclass
class Node:
    id: str
    title: str
    state: Optional[State] = None  # None for a group (the experiment) or a placeholder
    notes: list[str] = field(default_factory=list)
    children: list["Node"] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)  # (target node id, label)

    @property
    def status(self) -> str:
        return self.state.status if self.state else "group"

    def detail(self) -> str:
        """'done  acc 0.9123  density 0.8000' (a language model: 'ppl 6.0812', its test perplexity),
        as far as known."""
        if self.state is None:
            return ""
        parts = [self.state.status]
        metric = of_state(self.state)
        if metric.of(self.state) is not None:
            parts.append(f"{metric.tag} {cell(metric.of(self.state))}")
        if self.state.density is not None:
            parts.append(f"density {cell(self.state.density)}")
        if self.state.headline_text():  # a branch's own result: a barrier, an orderedness, ...
            parts.append(self.state.headline_text())
        return "  ".join(parts)

    def walk(self, depth: int = 0):
        yield depth, self
        for child in self.children:
            yield from child.walk(depth + 1)


def trunk_summary(run: Run, varying: list[str]) -> list[str]:
    model = run.hparams.get("model", {}).get("model_name", "?")
    dataset = run.hparams.get("dataset", {}).get("dataset_name", "?")
    fields_ = run.fields()
    return [f"{model} on {dataset}"] + [f"{name}={hparam_text(fields_.get(name))}" for name in varying]


def _trunk_varying(trunks: list[Run]) -> list[str]:
    """The trunk hparams that differ between the trunks (model and dataset are always shown)."""
    values = [run.fields() for run in trunks]
    names = dict.fromkeys(name for fields_ in values for name in fields_ if "." not in name)
    return [n for n in names if n not in ("model_name", "dataset_name")
            and len({hparam_text(fields_.get(n)) for fields_ in values}) > 1]


def _tickets_of(control: Run, siblings: list[Run]) -> Optional[Run]:
    """The iterative branch whose tickets a reinitialize branch controls."""
    imp = {k: v for k, v in control.hparams.get("imp", {}).items() if k != "levels"}
    for run in siblings:
        if run.kind == "branch_iterative" and {k: v for k, v in run.hparams.get("imp", {}).items()
                                                if k != "levels"} == imp:
            return run
    return None


def build(runs: list[Run]) -> list[Node]:
    """The forest of experiments, one root per trunk hash, in the order the runs were found."""
    defaults = branch_defaults({run.kind for run in runs if not run.is_trunk})
    trunks = [run for run in runs if run.is_trunk]
    varying = _trunk_varying(trunks)
    experiments: dict[str, Node] = {}
    trunk_nodes: dict[tuple[Optional[str], Optional[int]], Node] = {}
    for run in trunks:
        group = experiments.setdefault(run.hash or run.rel, Node(f"train_{run.hash}", f"train_{run.hash}",
                                                                  notes=trunk_summary(run, varying)))
        node = Node(run.rel, f"replicate_{run.replicate}/main", run.state)
        group.children.append(node)
        trunk_nodes[(run.hash, run.replicate)] = node
    branch_nodes: dict[str, Node] = {}
    for run in runs:
        if run.is_trunk:
            continue
        parent_hash = run.parent_hash or run.path.parent.parent.name[len("train_"):]
        parent = trunk_nodes.get((parent_hash, run.replicate))
        if parent is None:  # its trunk is gone (or was never written): a placeholder keeps it visible
            group = experiments.setdefault(parent_hash, Node(f"train_{parent_hash}", f"train_{parent_hash}",
                                                              notes=["trunk not found"]))
            parent = Node(f"{parent_hash}/{run.replicate}", f"replicate_{run.replicate}/main (missing)")
            group.children.append(parent)
            trunk_nodes[(parent_hash, run.replicate)] = parent
        name = run.path.name
        node = Node(run.rel, name, run.state, notes=own_hparams(run, defaults.get(run.kind, {})))
        node.children = [Node(str(level.path.relative_to(run.root)), f"level_{level.number}", level.state)
                         for level in run.levels]
        parent.children.append(node)
        branch_nodes[run.rel] = node
    by_parent: dict[tuple, list[Run]] = {}
    for run in runs:
        if not run.is_trunk:
            by_parent.setdefault((run.parent_hash, run.replicate), []).append(run)
    for siblings in by_parent.values():
        for run in siblings:
            if run.kind == "branch_reinitialize" and (tickets := _tickets_of(run, siblings)) is not None:
                branch_nodes[run.rel].links.append((tickets.rel, "tickets"))
                branch_nodes[run.rel].notes.append(f"tickets: {tickets.path.name}")
    for node in trunk_nodes.values():
        if len(node.children) > 1:
            node.notes.append(f"shared by {len(node.children)} branches")
    for group in experiments.values():
        group.notes.append(f"{len(group.children)} replicate{'s' * (len(group.children) != 1)}")
    return list(experiments.values())


def render(forest: list[Node]) -> str:
    """The forest as indented text with box-drawing branches."""
    lines: list[str] = []

    def draw(node: Node, prefix: str, last: bool, top: bool) -> None:
        head = "" if top else prefix + ("└─ " if last else "├─ ")
        text = "  ".join(part for part in (node.title, node.detail(), *node.notes) if part)
        lines.append(head + text)
        inner = "" if top else prefix + ("   " if last else "│  ")
        for i, child in enumerate(node.children):
            draw(child, inner, i == len(node.children) - 1, False)

    for tree in forest:
        draw(tree, "", True, True)
    return "\n".join(lines)
