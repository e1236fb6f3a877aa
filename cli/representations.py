"""`open_prune.py representations A B`: how alike two runs' hidden representations are, layer by
layer on the same test examples (linear CKA and the orthogonal Procrustes distance, every layer of
A against every layer of B, as a table and heatmaps), and per class the test examples that A gets
right and B gets wrong ("pruning identified exemplars" with A dense and B pruned).

A and B are run dirs with saved weights (a trunk's replicate_<r>/main, a branch's level_<L>; a
level_0 stands for the trunk), given as paths or relative to --root. B may be a branch dir with
levels: A is then compared with each level (--levels picks them). Reads the runs, writes only
under --out (default <root>/reports/representations/<digest>/)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Optional

from foundations import paths
from foundations.errors import UserError
from foundations.tables import render, to_csv
from platforms.platform import Platform
from platforms.storage import write_text
from reports import options
from reports import representations as rep
from reports.similarity import MEASURES

SUMMARY = "compare two runs' layers on the same test examples (linear CKA, Procrustes) and what pruning forgets"
SIMILARITY_COLUMNS = ["b", "layer_a", "layer_b", *MEASURES]
EXEMPLAR_COLUMNS = ["b", "class", "examples", "accuracy_a", "accuracy_b", "a_only", "b_only", "forgotten"]


def locate(given: str, root: Optional[Path]) -> Path:
    """The path as given, else relative to --root."""
    path = Path(given).expanduser()
    if not path.exists() and root is not None and (root / given).exists():
        path = root / given
    if not path.exists():
        where = f" (nor under --root={root})" if root is not None else ""
        raise UserError(f"{given} does not exist{where}: give a run dir such as <root>/train_<hash>/replicate_<r>/main "
                        f"or a branch's level_<L>, as a path or relative to --root")
    return path


def runs_of_b(path: Path, levels: Optional[str]) -> list[tuple[str, Path]]:
    """(label, run dir) of each run to compare A with: B itself, or the chosen levels of branch dir B."""
    found = {paths.level_of(child.name): child for child in path.iterdir() if paths.level_of(child.name) is not None} \
        if path.is_dir() and paths.BRANCH_DIR.match(path.name) else {}
    if not found:
        if levels is not None:
            raise UserError(f"--levels is for a branch dir with levels as B; {path} is not one")
        return [(path.name, path)]
    wanted = sorted(n for n in found if n > 0) if levels is None else _level_list(levels)
    missing = [n for n in wanted if n not in found]
    if missing:
        raise UserError(f"{path} has no level_{missing[0]}; its levels are {', '.join(map(str, sorted(found)))}")
    return [(f"level_{n}", found[n]) for n in wanted]


def _level_list(text: str) -> list[int]:
    try:
        levels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        levels = []
    if not levels or min(levels) < 0:
        raise UserError(f"--levels={text}: give level numbers, e.g. --levels=1,5,10")
    return levels


def default_out(run: Path) -> Optional[Path]:
    """The root that holds `run` (the parent of its train_<hash> directory), if it lies in one."""
    for candidate in (run.absolute(), *run.absolute().parents):
        if paths.TRAIN_DIR.match(candidate.name):
            return candidate.parent
    return None


def shown(path: Path, root: Optional[Path]) -> str:
    try:
        return str(path.absolute().relative_to(root.absolute())) if root is not None else str(path)
    except ValueError:
        return str(path)


def compare(run_a: rep.TrainedRun, seen_a: rep.Observation, b_runs: list[tuple[str, Path]],
            layers: Optional[list[str]], loader, chosen, device) -> tuple[list[dict], list[dict], dict, list[Path]]:
    """A against each B: the similarity rows, the exemplar rows, the heatmap panels per measure, and
    where each B's weights are (a level_0's are its trunk's)."""
    similarity, exemplars, panels, b_dirs = [], [], {measure: [] for measure in MEASURES}, []
    layers_a = list(seen_a.activations)
    for label, path in b_runs:
        run_b = rep.load_run(path, device)
        b_dirs.append(run_b.path)
        if run_b.dataset.dataset_name != run_a.dataset.dataset_name:
            raise UserError(f"A was trained on {run_a.dataset.dataset_name} and {path} on "
                            f"{run_b.dataset.dataset_name}: compare runs on the same test set")
        layers_b = rep.check_layers(run_b.model, layers or rep.default_layers(run_b.model), "B")
        seen_b = rep.observe(run_b.model, layers_b, loader, chosen)
        rows = rep.similarity_rows(seen_a, seen_b)
        similarity += [{"b": label, **row} for row in rows]
        exemplars += [{"b": label, **row} for row in rep.exemplar_rows(seen_a.labels, seen_a.predictions,
                                                                         seen_b.predictions, loader.num_classes)]
        for measure in MEASURES:
            panels[measure].append((f"{label} (density {run_b.density:.3g})",
                                    rep.matrix(rows, measure, layers_a, layers_b), layers_b))
    return similarity, exemplars, panels, b_dirs


def main(argv: list[str]) -> int:
    p = options.parser("representations", SUMMARY)
    p.add_argument("run_a", metavar="A", help="a run dir with saved weights (e.g. a trunk's replicate_<r>/main)")
    p.add_argument("run_b", metavar="B", help="another run dir, or a branch dir with levels (each is compared with A)")
    p.add_argument("--layers", help="modules to observe, comma-separated, e.g. fc_layers.0,fc_layers.1 "
                                    "(default: every module with prunable weights: its output)")
    p.add_argument("--levels", help="with a branch dir as B: the levels to compare, e.g. 1,5,10 (default: all but 0)")
    p.add_argument("--examples", type=int, default=2000, metavar="N",
                   help="test examples whose representations are compared, a seeded subset (default 2000; 0: all). "
                        "The predictions cover the whole test set")
    p.add_argument("--seed", type=int, default=0, help="seed of the subset of examples (default 0)")
    options.add_out(p, "similarity.csv, exemplars.csv and the heatmaps")
    options.add_format(p)
    Platform.add_args(p)
    args = p.parse_args(argv)
    platform = Platform.from_args(args)
    if args.out is not None:
        options.check_outside_runs(Path(args.out))  # refused before any model is loaded
    root = platform.root if args.root is not None else None
    a_path = locate(args.run_a, root)
    b_path = locate(args.run_b, root)
    b_runs = runs_of_b(b_path, args.levels)
    run_a = rep.load_run(a_path, platform.device)
    layers = [name.strip() for name in args.layers.split(",") if name.strip()] if args.layers else None
    layers_a = rep.check_layers(run_a.model, layers or rep.default_layers(run_a.model), "A")
    loader = rep.test_loader(run_a.dataset, platform.dataset_root, platform.device)
    chosen = rep.chosen_examples(loader.num_examples, args.examples, args.seed)
    seen_a = rep.observe(run_a.model, layers_a, loader, chosen)
    place = root or default_out(a_path)
    similarity, exemplars, panels, b_dirs = compare(run_a, seen_a, b_runs, layers, loader, chosen, platform.device)
    key = json.dumps([str(a_path.absolute()), [str(p.absolute()) for _, p in b_runs], layers, args.examples, args.seed])
    out = options.output_dir(args.out, place, "representations", hashlib.sha256(key.encode()).hexdigest()[:8])
    labels = ", ".join(label for label, _ in b_runs)
    header = (f"a: {shown(run_a.path, place)} at {run_a.step} (density {run_a.density:.3g})\n"
              f"b: {shown(b_dirs[0], place) if len(b_dirs) == 1 else shown(b_path, place) + ': ' + labels}\n"
              f"{len(chosen)} test examples (seed {args.seed}); cka in [0, 1], 1 = the same up to rotation and scale; "
              f"procrustes in [0, 2], 0 = the same")
    write_text(header + "\n", out / "about.txt")
    write_text(to_csv(SIMILARITY_COLUMNS, similarity), out / "similarity.csv")
    write_text(to_csv(EXEMPLAR_COLUMNS, exemplars), out / "exemplars.csv")
    written = [out / "similarity.csv", out / "exemplars.csv"]
    for measure, shown_panels in panels.items():
        written += rep.heatmaps(shown_panels, layers_a, measure, out / measure, f"{measure}: {header.splitlines()[0]}")
    if args.format == "json":
        print(json.dumps({"a": str(run_a.path), "b": [str(path) for path in b_dirs], "examples": len(chosen),
                          "similarity": similarity, "exemplars": exemplars}, indent=1))
    elif args.format == "csv":
        print(to_csv(SIMILARITY_COLUMNS, similarity) + "\n" + to_csv(EXEMPLAR_COLUMNS, exemplars), end="")
    else:
        print(header + "\n")
        print(render(SIMILARITY_COLUMNS, similarity, "table"))
        print("\nper class: a_only = right in A, wrong in B; forgotten = a_only / examples (the whole test set)\n")
        print(render(EXEMPLAR_COLUMNS, exemplars, "table"))
        print("\nwrote " + ", ".join(str(path) for path in written))
    return 0
