"""The experiment graph as a picture: graphviz's `dot` when it is on PATH, else matplotlib.

Each node shows its name, status, final test accuracy (a language model's: its test perplexity,
"ppl") and density, coloured by status; edges go
from a trunk to its branches and from a branch to its levels; a dashed edge goes from a control
branch to the branch whose tickets it uses.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from foundations.errors import UserError
from reports.metric import of_state
from reports.tree import Node

COLOURS = {"done": "#a6dba0", "partial": "#fdd49e", "running": "#9ecae1", "failed": "#f4a582",
           "corrupt": "#bababa", "group": "#ffffff"}
FORMATS = ("png", "pdf", "svg")
ENGINES = ("auto", "dot", "matplotlib")


def short(text: str) -> str:
    """Run hashes cut to 8 characters: enough to tell runs apart in a picture."""
    return re.sub(r"([0-9a-f]{8})[0-9a-f]{12,}", r"\1", text)


def label(node: Node) -> str:
    lines = [short(node.title)]
    state = node.state
    if state is not None:
        lines.append(state.status)
        numbers = []
        metric = of_state(state)  # test accuracy, or a language model's test perplexity
        if metric.of(state) is not None:
            numbers.append(f"{metric.tag} {metric.of(state):.4f}")
        if state.density is not None:
            numbers.append(f"density {state.density:.4f}")
        if numbers:
            lines.append("  ".join(numbers))
    return "\n".join(lines + [short(note) for note in node.notes[:3]])


def dot_source(forest: list[Node]) -> str:
    """The graph in graphviz's language, left to right."""
    ids: dict[str, str] = {}
    lines = ["digraph runs {", "  rankdir=LR;",
             '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10];']
    edges = []
    for tree in forest:
        for _, node in tree.walk():
            ids[node.id] = f"n{len(ids)}"
            text = label(node).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
            lines.append(f'  {ids[node.id]} [label="{text}", fillcolor="{COLOURS.get(node.status, "#ffffff")}"];')
            edges += [(node.id, child.id, "") for child in node.children]
            edges += [(node.id, target, name) for target, name in node.links]
    for source, target, name in edges:
        if target in ids:
            style = f' [style=dashed, label="{name}"]' if name else ""
            lines.append(f"  {ids[source]} -> {ids[target]}{style};")
    return "\n".join(lines + ["}"]) + "\n"


def _with_dot(forest: list[Node], path: Path) -> None:
    result = subprocess.run(["dot", f"-T{path.suffix[1:]}", "-o", str(path)], input=dot_source(forest),
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise UserError(f"dot failed ({result.stderr.strip()[:200]}); try --engine=matplotlib")


FONT = 7  # points
CHAR, LINE = 0.62 * FONT / 72, 1.25 * FONT / 72  # a monospace character's width and a line's height, inches


def _layout(forest: list[Node]) -> tuple[dict[str, tuple[float, float]], float, float]:
    """Each node's (left, centre) in inches, and the picture's width and height. A subtree gets
    the height of its own label or of its children, whichever is taller; a parent sits centred
    on its children; each depth is a column as wide as its widest label."""
    labels = {node.id: label(node).split("\n") for tree in forest for _, node in tree.walk()}
    widths: dict[int, float] = {}
    for tree in forest:
        for depth, node in tree.walk():
            widths[depth] = max(widths.get(depth, 0.0), CHAR * max(map(len, labels[node.id])) + 0.15)
    lefts = [sum(widths[d] + 0.35 for d in range(depth)) for depth in range(len(widths))]
    places: dict[str, tuple[float, float]] = {}
    heights: dict[str, float] = {}

    def height(node: Node) -> float:
        if node.id not in heights:
            own = LINE * (len(labels[node.id]) + 1.2)
            heights[node.id] = max(own, sum(height(child) for child in node.children))
        return heights[node.id]

    def place(node: Node, depth: int, top: float) -> None:
        span = height(node)
        places[node.id] = (lefts[depth], top + span / 2)
        inner = sum(height(child) for child in node.children)
        y = top + (span - inner) / 2
        for child in node.children:
            place(child, depth + 1, y)
            y += height(child)

    top = 0.0
    for tree in forest:
        place(tree, 0, top)
        top += height(tree) + LINE
    return places, lefts[-1] + widths[len(widths) - 1], top


def _with_matplotlib(forest: list[Node], path: Path) -> None:
    from reports.figures import plt

    places, width, height = _layout(forest)
    scale = min(1.0, 300 / max(width, height))  # matplotlib refuses pictures of more than 2^16 pixels
    fig = plt.figure(figsize=(width * scale + 0.2, height * scale + 0.6), dpi=120)
    ax = fig.add_axes((0, 0, 1, 1))
    nodes = {node.id: node for tree in forest for _, node in tree.walk()}
    for node in nodes.values():
        x, y = places[node.id]
        for child in node.children:
            cx, cy = places[child.id]
            elbow = cx - 0.18
            ax.plot([x, elbow, elbow, cx], [y, y, cy, cy], color="#777777", lw=0.8, zorder=1)
        for target, _ in node.links:
            if target in places:
                tx, ty = places[target]
                ax.annotate("", xy=(tx, ty), xytext=(x, y), zorder=1,
                            arrowprops=dict(arrowstyle="->", ls="--", color="#2166ac", lw=0.9,
                                            connectionstyle="arc3,rad=-0.35"))
    for node in nodes.values():
        x, y = places[node.id]
        ax.text(x, y, label(node), ha="left", va="center", fontsize=FONT * scale, zorder=2, family="monospace",
                bbox=dict(boxstyle="round,pad=0.3", fc=COLOURS.get(node.status, "#ffffff"), ec="#555555", lw=0.6))
    ax.set_xlim(-0.1, width + 0.1)
    ax.set_ylim(height + 0.5, -0.1)
    ax.axis("off")
    statuses = [status for status in COLOURS if status != "group"]
    handles = [plt.Rectangle((0, 0), 1, 1, fc=COLOURS[s], ec="#555555") for s in statuses]
    ax.legend(handles, statuses, loc="lower right", fontsize=FONT, frameon=False, ncol=len(statuses))
    fig.savefig(path)
    plt.close(fig)


def check_format(path: Path) -> None:
    """A UserError unless the picture's suffix is a format it can be drawn in."""
    if Path(path).suffix[1:].lower() not in FORMATS:
        raise UserError(f"--plot={path}: give a file name ending in .{', .'.join(FORMATS)}")


def draw(forest: list[Node], path: Path, engine: str = "auto") -> str:
    """Write the picture to `path` (its suffix is the format); returns the engine used."""
    path = Path(path)
    check_format(path)
    if not forest:
        raise UserError("there are no runs to draw")
    if engine == "dot" and shutil.which("dot") is None:
        raise UserError("--engine=dot but graphviz's dot is not on PATH: install graphviz or use --engine=matplotlib")
    use_dot = engine == "dot" or (engine == "auto" and shutil.which("dot") is not None)
    path.parent.mkdir(parents=True, exist_ok=True)
    (_with_dot if use_dot else _with_matplotlib)(forest, path)
    return "dot" if use_dot else "matplotlib"
