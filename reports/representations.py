"""What a trained run computes on the test set: the outputs of chosen layers on a seeded subset of
the examples, and its prediction for every example; compared between two runs layer by layer
(reports/similarity.py) and example by example ("pruning identified exemplars").

A run is any directory with saved weights: a trunk (replicate_<r>/main), a branch level
(level_<L>) or a branch that trained in its own directory; `level_0` of a branch is the trunk
itself and stands for it. Its model is rebuilt from the nearest hparams.json at or above it,
loaded at its final step (done.json's, else the last saved) and its mask applied. Nothing is
written to the run.

The layers observed by default are the modules whose weights can be pruned, in the model's order:
for a LeNet the linear layers' outputs before their activation, the last being the logits.

Pruning identified exemplars (Hooker et al. 2019, "What do compressed deep neural networks
forget?") are, there, the examples on which a population of pruned models' modal label differs
from the dense population's. Between two runs, `exemplar_rows` counts per class the test examples
that the first gets right and the second gets wrong (and the reverse), so that over replicates a
class that pruning forgets stands out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

import datasets.registry as datasets_registry
import models.registry as models_registry
from foundations import paths
from foundations.bundles import DatasetHparams, ModelHparams
from foundations.errors import UserError
from foundations.step import written_parts
from pruning.mask import Mask
from pruning.masked import MaskedTraining
from reports.readers import read_json
from reports.similarity import MEASURES
from training.checkpoint import DamagedFile, load_model_state

EVAL_BATCH = 1000  # examples per forward pass (evaluation only: the batch size changes nothing)


@dataclass
class TrainedRun:
    """A finished run's network at its final step, masked, in eval mode, and its dataset."""

    path: Path
    model: torch.nn.Module
    dataset: DatasetHparams
    step: str
    density: float


def weights_dir(path: Path) -> Path:
    """The directory that holds the run's weights: `path`, or for a branch's level_0 the trunk."""
    path = Path(path).expanduser()
    if paths.level_of(path.name) == 0 and not _saved(path):
        trunk = path.parent.parent / paths.TRUNK_DIR
        if _saved(trunk):
            return trunk
    return path


def _saved(directory: Path) -> list[tuple[int, int]]:
    try:
        names = [child.name for child in directory.iterdir()]
    except OSError:
        return []
    return sorted((int(m[1]), int(m[2])) for m in map(paths.MODEL_FILE.match, names) if m)


def _hparams_of(directory: Path) -> dict:
    for candidate in (directory, *directory.parents):
        stored = read_json(candidate / paths.HPARAMS)
        if isinstance(stored, dict) and isinstance(stored.get("hparams"), dict):
            return stored["hparams"]
        if paths.TRAIN_DIR.match(candidate.name):  # the top of a run tree
            break
    raise UserError(f"{directory} is not inside a run: no readable {paths.HPARAMS} in it or above it")


def final_step(directory: Path) -> tuple[int, int]:
    """(epoch, iteration in epoch) of the weights at the end of training: done.json's final step when
    those weights are saved, else the last saved step."""
    saved = _saved(directory)
    if not saved:
        raise UserError(f"{directory} holds no saved weights (model_ep*_it*.pt): give a trunk's replicate_<r>/main, "
                        f"a branch's level_<L>, or a branch dir that trained in itself")
    done = read_json(directory / paths.DONE)
    try:
        key = written_parts(done["final_step"])
    except (TypeError, KeyError, UserError):  # no done.json (still training) or a damaged one
        return saved[-1]
    return key if key in saved else saved[-1]


def load_run(path: Path, device: torch.device | str = "cpu") -> TrainedRun:
    """The network a run ended with, its mask applied, on `device`, in eval mode."""
    directory = weights_dir(path)
    if not directory.is_dir():
        raise UserError(f"{directory} is not a run directory (it does not exist or is a file)")
    epoch, iteration = final_step(directory)
    stored = _hparams_of(directory)
    try:
        model_hparams = ModelHparams.from_dict(stored["model"])
        dataset = DatasetHparams.from_dict(stored["dataset"])
    except (KeyError, TypeError):
        raise UserError(f"the {paths.HPARAMS} above {directory} has no model and dataset hparams: not a training run")
    info = datasets_registry.info(dataset.dataset_name)
    if info.task != "classification":
        raise UserError(f"{directory} was trained on {dataset.dataset_name}, a {info.task} task: representations "
                        f"compares classifiers (the predictions are class labels)")
    model = models_registry.get(model_hparams, info.input_shape, info.num_classes, seed=0)
    weights = directory / paths.model_file(epoch, iteration)
    try:
        model.load_state_dict(load_model_state(weights))
    except DamagedFile as error:
        raise UserError(str(error))
    except RuntimeError:
        raise UserError(f"{weights} does not fit the model its {paths.HPARAMS} describes ({model_hparams.model_name})")
    density = 1.0
    if (directory / paths.MASK).is_file():
        mask = Mask.read(directory / paths.MASK)
        MaskedTraining(model, mask).zero_weights()
        density = mask.density
    return TrainedRun(directory, model.to(device).eval(), dataset, f"{epoch}ep{iteration}it", density)


def default_layers(model: torch.nn.Module) -> list[str]:
    """The modules whose weights can be pruned, in the model's order."""
    owners = {name.rpartition(".")[0] for name in model.prunable_layer_names}
    return [name for name, _ in model.named_modules() if name in owners]


def check_layers(model: torch.nn.Module, layers: list[str], which: str) -> list[str]:
    """`layers` if every one is a module of `model`, else a UserError naming the ones it has."""
    modules = dict(model.named_modules())
    unknown = [name for name in layers if name not in modules]
    if unknown:
        known = ", ".join(name for name in modules if name)
        raise UserError(f"run {which} has no module {unknown[0]!r}; its modules are: {known}")
    return layers


def test_loader(dataset: DatasetHparams, dataset_root: Path, device: torch.device | str):
    return datasets_registry.get(dataset.replace(batch_size=EVAL_BATCH), "test", root=dataset_root, device=device)


def chosen_examples(num_examples: int, count: int, seed: int) -> torch.Tensor:
    """`count` distinct indices of the test set (all of them when count is 0 or more than there
    are), drawn from `seed`, sorted."""
    if count <= 0 or count >= num_examples:
        return torch.arange(num_examples)
    order = torch.randperm(num_examples, generator=torch.Generator().manual_seed(seed))
    return order[:count].sort().values


@dataclass
class Observation:
    """One run on the test set: each layer's outputs on the chosen examples (rows in index order),
    and its predicted class and the label of every example."""

    activations: dict[str, torch.Tensor]
    predictions: torch.Tensor
    labels: torch.Tensor


@torch.no_grad()
def observe(model: torch.nn.Module, layers: list[str], loader, chosen: torch.Tensor) -> Observation:
    """Run `model` over the test set in order, keeping `layers`' outputs (flattened, on the CPU)
    for the `chosen` examples and the argmax prediction for all."""
    modules = dict(model.named_modules())
    keep = torch.zeros(loader.num_examples, dtype=torch.bool)
    keep[chosen] = True
    kept: dict[str, list[torch.Tensor]] = {name: [] for name in layers}
    rows = torch.zeros(0, dtype=torch.bool)

    def hook(name):
        def record(_module, _inputs, output):
            kept[name].append(output.detach().reshape(output.shape[0], -1)[rows.to(output.device)].float().cpu())
        return record

    handles = [modules[name].register_forward_hook(hook(name)) for name in layers]
    predictions, labels, start = [], [], 0
    try:
        for x, y in loader.batches(0):
            rows = keep[start:start + x.shape[0]]
            start += x.shape[0]
            predictions.append(model(x).argmax(-1).cpu())
            labels.append(y.cpu())
    finally:
        for handle in handles:
            handle.remove()
    return Observation({name: torch.cat(parts) for name, parts in kept.items()},
                       torch.cat(predictions), torch.cat(labels))


def similarity_rows(a: Observation, b: Observation) -> list[dict]:
    """Every layer of `a` against every layer of `b`: linear CKA and the Procrustes distance."""
    return [{"layer_a": name_a, "layer_b": name_b,
             **{measure: compare(x, y) for measure, compare in MEASURES.items()}}
            for name_a, x in a.activations.items() for name_b, y in b.activations.items()]


def matrix(rows: list[dict], measure: str, layers_a: list[str], layers_b: list[str]) -> list[list[float]]:
    """The rows' `measure` as a (layers of a) × (layers of b) grid."""
    value = {(row["layer_a"], row["layer_b"]): row[measure] for row in rows}
    return [[value.get((la, lb), math.nan) for lb in layers_b] for la in layers_a]


def exemplar_rows(labels: torch.Tensor, predictions_a: torch.Tensor, predictions_b: torch.Tensor,
                  num_classes: Optional[int] = None) -> list[dict]:
    """Per class and over all: examples, accuracy of a and of b, how many a gets right and b wrong
    (`a_only`) and the reverse (`b_only`), and a_only as a share of the class's examples
    (`forgotten`: with a dense and b pruned, the share of the class that pruning costs)."""
    num_classes = num_classes or int(labels.max()) + 1
    right_a, right_b = predictions_a == labels, predictions_b == labels
    rows = []
    for label in [*range(num_classes), None]:
        members = torch.ones_like(labels, dtype=torch.bool) if label is None else labels == label
        n = int(members.sum())
        a_only = int((members & right_a & ~right_b).sum())
        b_only = int((members & right_b & ~right_a).sum())
        rows.append({"class": "all" if label is None else label, "examples": n,
                     "accuracy_a": int((members & right_a).sum()) / n if n else None,
                     "accuracy_b": int((members & right_b).sum()) / n if n else None,
                     "a_only": a_only, "b_only": b_only, "forgotten": a_only / n if n else None})
    return rows


MEASURE_RANGE = {"cka": (0.0, 1.0), "procrustes": (0.0, None)}  # None: the largest value shown
ANNOTATED = 12  # cells are labelled with their value up to this many layers a side


def heatmaps(panels: list[tuple[str, list[list[float]], list[str]]], layers_a: list[str], measure: str,
             stem: Path, title: str) -> list[Path]:
    """One heatmap per compared run (title, grid, its layers): layer of A (rows) × layer of B
    (columns), on one colour scale for all panels."""
    import numpy as np

    from reports.figures import plt, save

    low, high = MEASURE_RANGE.get(measure, (None, None))
    values = np.array([v for _, grid, _ in panels for row in grid for v in row], dtype=float)
    if high is None:
        high = float(np.nanmax(values)) if np.isfinite(values).any() else 1.0
    columns = min(4, len(panels))
    rows = -(-len(panels) // columns)
    side = max(2.6, 0.45 * max(len(layers_a), *(len(names) for _, _, names in panels)) + 1.6)
    fig, axes = plt.subplots(rows, columns, figsize=(side * columns + 0.8, side * rows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    image = None
    for index, (ax, (label, grid, layers_b)) in enumerate(zip(axes.flat, panels)):
        data = np.array(grid, dtype=float)
        image = ax.imshow(data, cmap="viridis" if measure == "cka" else "magma_r", vmin=low, vmax=high)
        ax.set_xticks(range(len(layers_b)), layers_b, rotation=45, ha="right", fontsize=7)
        ax.set_xlabel("layer of B", fontsize=7)
        ax.set_yticks(range(len(layers_a)), layers_a if index % columns == 0 else [], fontsize=7)
        if index % columns == 0:  # the rows are A's layers in every panel: named once per row of panels
            ax.set_ylabel("layer of A", fontsize=7)
        ax.set_title(label, fontsize=8)
        if max(data.shape) <= ANNOTATED:
            for (i, j), value in np.ndenumerate(data):
                light = (value - low) / ((high - low) or 1) < 0.5 if measure == "cka" else \
                    (value - low) / ((high - low) or 1) > 0.5
                ax.text(j, i, "-" if not np.isfinite(value) else f"{value:.2f}", ha="center", va="center",
                        fontsize=6, color="white" if light else "black")
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), fraction=0.03, pad=0.02).ax.tick_params(labelsize=7)
    fig.suptitle(title, fontsize=8)
    return save(fig, stem)
