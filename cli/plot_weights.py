"""`open_prune.py plot-weights <run dir> [--step=end]`: histograms of the kept weights, weight
matrices and conv filters as heatmaps, and the mask as an image, from one saved model file."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import torch

from foundations import paths
from foundations.errors import UserError
from foundations.step import check_step_syntax
from platforms.storage import load_torch
from pruning.mask import Mask
from reports import options
from reports.readers import read_json, read_metrics

SUMMARY = "plot a run's weights at a saved step: per-layer histograms, weight and mask heatmaps"
STEP = re.compile(r"^(?:(\d+)ep)?(?:(\d+)it)?$")


def saved_steps(run_dir: Path) -> dict[tuple[int, int], Path]:
    """{(epoch, iteration in epoch): file} of every saved model in the run dir."""
    found = {}
    for child in run_dir.iterdir():
        match = paths.MODEL_FILE.match(child.name)
        if match:
            found[(int(match[1]), int(match[2]))] = child
    return dict(sorted(found.items()))


def iterations_per_epoch(run_dir: Path) -> Optional[int]:
    """From any logged step written 'XepYit' with X > 0 next to its absolute iteration."""
    done = read_json(run_dir / paths.DONE)
    records = read_metrics(run_dir / paths.METRICS)
    pairs = [(r.get("step"), r["iteration"]) for r in records]
    if isinstance(done, dict):
        pairs.append((done.get("final_step"), done.get("final_iteration")))
    for text, iteration in pairs:
        match = STEP.match(str(text or ""))
        if match and match[1] and int(match[1]) > 0 and isinstance(iteration, int):
            return (iteration - int(match[2] or 0)) // int(match[1])
    return None


def pick(run_dir: Path, step: str) -> tuple[tuple[int, int], Path]:
    """The saved model that `--step` names: end, start, or a step string."""
    steps = saved_steps(run_dir)
    listed = ", ".join(f"{ep}ep{it}it" for ep, it in steps)
    if step in ("end", "start"):
        key = max(steps) if step == "end" else min(steps)
        return key, steps[key]
    check_step_syntax(step, "step")
    epochs, iterations = (int(g or 0) for g in STEP.match(step.strip()).groups())
    ipe = iterations_per_epoch(run_dir)
    if ipe:
        epochs, iterations = divmod(epochs * ipe + iterations, ipe)
    if (epochs, iterations) not in steps:
        raise UserError(f"--step={step}: no model was saved at that step in {run_dir}; the saved steps are {listed}")
    return (epochs, iterations), steps[(epochs, iterations)]


def run_dir_of(path: Path) -> Path:
    """The argument as a run (or level) directory with saved weights, or a UserError."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise UserError(f"{path} is not a run directory (it does not exist or is a file)")
    if not saved_steps(path):
        if paths.level_of(path.name) == 0:
            raise UserError(f"{path} is level 0, the trunk itself: plot the trunk's run dir (replicate_<r>/main)")
        inside = runs_inside(path)
        if inside:
            shown = ", ".join(str(run.relative_to(path)) for run in inside[:SHOWN_RUNS])
            more = f" and {len(inside) - SHOWN_RUNS} more" if len(inside) > SHOWN_RUNS else ""
            what = "a branch dir: its levels or sub-runs hold the weights" if paths.BRANCH_DIR.match(path.name) \
                else "not a run dir itself"
            raise UserError(f"{path} holds no model_ep*_it*.pt: it is {what}; give one of {shown}{more} "
                            f"(e.g. plot-weights {inside[-1 if len(inside) <= SHOWN_RUNS else 0]})")
        if paths.BRANCH_DIR.match(path.name):
            raise UserError(f"{path} holds no model_ep*_it*.pt: it is a branch dir whose levels or sub-runs have "
                            f"saved no weights yet (is the branch still running?)")
        raise UserError(f"{path} holds no model_ep*_it*.pt: give a run dir that does, such as a trunk's "
                        f"replicate_<r>/main or a branch's level_<n>")
    return path


SHOWN_RUNS = 6
SEARCH_DEPTH = 3


def runs_inside(directory: Path, depth: int = SEARCH_DEPTH) -> list[Path]:
    """The directories below `directory` (at most `depth` levels down) that hold saved weights,
    nearest first, in name order (levels in level order)."""
    found: list[Path] = []
    layer = [directory]
    for _ in range(depth):
        layer = sorted((child for parent in layer for child in _subdirectories(parent)), key=_order)
        found += [child for child in layer if saved_steps(child)]
    return found


def _subdirectories(directory: Path) -> list[Path]:
    try:
        return [child for child in directory.iterdir() if child.is_dir()]
    except OSError:
        return []


def _order(path: Path) -> tuple:
    level = paths.level_of(path.name)
    return (str(path.parent), level is None, level if level is not None else 0, path.name)


def input_shape_of(run_dir: Path) -> Optional[tuple[int, ...]]:
    """The shape of one input example of the run's dataset (from the hparams.json of the run or of
    the branch a level belongs to), or None when it cannot be told."""
    for directory in (run_dir, run_dir.parent):
        stored = read_json(directory / paths.HPARAMS)
        hparams = stored.get("hparams") if isinstance(stored, dict) else None
        dataset = hparams.get("dataset") if isinstance(hparams, dict) else None
        name = dataset.get("dataset_name") if isinstance(dataset, dict) else None
        if isinstance(name, str):
            from datasets import registry  # facts only: reads no data

            try:
                return tuple(registry.info(name).input_shape)
            except UserError:  # a dataset this version does not know
                return None
    return None


def default_out(run_dir: Path) -> Optional[tuple[Path, Path]]:
    """(root, path of the run relative to it) when the run lies in a root of runs."""
    absolute = run_dir.absolute()
    for candidate in (absolute, *absolute.parents):
        if paths.TRAIN_DIR.match(candidate.name):
            return candidate.parent, absolute.relative_to(candidate.parent)
    return None


def main(argv: list[str]) -> int:
    p = options.parser("plot-weights", SUMMARY)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory with saved weights: a trunk's "
                   "(replicate_<r>/main), a branch level's (level_<n>), or a branch's own where it trained in it")
    p.add_argument("--step", default="end", help="end (default), start, or a saved step such as 2ep or 1ep20it")
    options.add_out(p, "the figures")
    args = p.parse_args(argv)
    from reports import weight_figures  # matplotlib: loaded only when plotting

    run_dir = run_dir_of(Path(args.run_dir))
    (epoch, iteration), path = pick(run_dir, args.step)
    try:
        state = load_torch(path)
    except Exception as error:
        raise UserError(f"{path} cannot be read ({type(error).__name__}); is it a half-written file?")
    mask = Mask.read(run_dir / paths.MASK) if (run_dir / paths.MASK).is_file() else None
    names = list(mask) if mask is not None else [
        n for n, t in state.items() if isinstance(t, torch.Tensor) and t.ndim >= 2 and t.is_floating_point()]
    wrong = [name for name in names if name not in state or (mask is not None and
                                                          tuple(state[name].shape) != tuple(mask[name].shape))]
    if wrong:
        raise UserError(f"{path} and {run_dir / paths.MASK} are of different models ({wrong[0]} differs)")
    weights = {name: state[name] for name in names}
    place = default_out(run_dir)
    out = options.output_dir(args.out, place[0] if place else None,
                             "plot-weights", "__".join(place[1].parts) if place else "")
    tag = f"ep{epoch}_it{iteration}"
    title = f"{run_dir} at {epoch}ep{iteration}it"
    written = weight_figures.histograms(weights, mask, out / f"histograms_{tag}", title)
    written += weight_figures.heatmaps(weights, out / f"weights_{tag}", title)
    if mask is not None:
        written += weight_figures.heatmaps(mask, out / "mask", f"{run_dir}: mask (dark = kept)", binary=True)
    shape = input_shape_of(run_dir)
    first = next((name for name in names if weight_figures.reads_images(weights[name], shape)), None)
    if first is not None:  # a first layer over images: its units as pictures, its mask per pixel
        written += weight_figures.input_space(first, weights[first], None if mask is None else mask[first], shape,
                                              out / f"input_space_{tag}", title)
    print("wrote " + ", ".join(str(p) for p in written))
    return 0
