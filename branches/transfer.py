"""Transfer a ticket (OpenLTH's `lottery_branch retrain`): train a source run's mask on this
command's trunk, i.e. on another dataset, another recipe or another initialization than the one
that found it (Morcos et al. 2019, "One ticket to win them all"; Frankle et al.'s retrain branch).

--mask_run addresses the source (runs/parent_run.py): a level of an iterative or rewinding
branch, oneshot's network, any run dir with a mask.pt, in this replicate or anywhere under the root
(train_<hash>/replicate_<r>/...). Its mask is kept bit for bit; the network trains under it for
this trunk's whole recipe, from
    --weights=trunk   this trunk's initialization (a ticket from one replicate or dataset on
                      another's init), or
    --weights=source  the source's own weights at --source_step (default: where its training
                      started, e.g. a lottery level's rewound weights: OpenLTH's retrain).
Beside it, the usual controls at the same per-layer counts: random_pruning (the mask shuffled
within each layer, on the same weights) and reinit (the mask on a fresh draw of the init).
The source's address is hashed, and it names every hashed directory on the way to the source, so
the source's hash is in the transfer's. The mask's layers must have the trunk's shapes: a mask of
another architecture, or an output layer for another number of classes, is refused in one line.

    branch_transfer_<hash>/ticket, random_pruning, reinit     one resumable run dir each
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from foundations import paths
from foundations.errors import UserError
from foundations.hparams import Hparams, hparam
from foundations.seeds import digest_seed
from foundations.step import Step
from platforms.storage import read_json
from pruning.mask import Mask
from runs import parent_run
from runs.branch import Branch, row, train_masked

NAME = "transfer"
SUMMARY = "train a source run's mask (a ticket) on this trunk's data, recipe or init, beside its controls"
CONTROLS = ("random_pruning", "reinit")
WEIGHTS = ("trunk", "source")
ROW_HEADER = ["network", "density", "test accuracy", "run"]


@dataclass
class TransferHparams(Hparams):
    _name = "Transfer Hyperparameters"
    _description = "Which mask is transferred, and the weights it trains from."

    mask_run: str = hparam(help="the source run dir whose mask.pt is trained here: relative to this trunk's "
                                "replicate directory (branch_iterative_<hash>/level_3) or to the root "
                                "(train_<hash>/replicate_1/branch_iterative_<hash>/level_3)")
    weights: str = hparam("trunk", "trunk (this trunk's initialization) | source (the source's weights at "
                                    "--source_step)", choices=WEIGHTS)
    source_step: Optional[str] = hparam(
        None, "with --weights=source: the step of the source's weights, in the source's own epochs, or end "
              "(default: the first step it saved, where its training started: a lottery level's rewound weights)")
    seed: Optional[int] = hparam(None, "seed of the controls' shuffle and fresh init (default: from the replicate)")
    controls: Optional[str] = hparam(
        None, "random_pruning, reinit, both comma-separated, or none (default: both); not hashed", is_list=True,
        hashed=False)

    def validate(self) -> None:
        if self.mask_run is not None:
            self.mask_run = parent_run.normalized_address(self.mask_run, "mask_run")
        if self.source_step is not None and self.weights != "source":
            raise UserError(f"--source_step={self.source_step} chooses the source's weights: add --weights=source "
                            f"or drop it")
        chosen_controls(self)


BUNDLES = {"transfer": TransferHparams}


def chosen_controls(h: TransferHparams) -> list[str]:
    if h.controls is None:
        return list(CONTROLS)
    names = [name.strip() for name in h.controls.split(",") if name.strip()]
    if not names or any(name not in (*CONTROLS, "none") for name in names) or ("none" in names and len(names) > 1):
        raise UserError(f"--controls={h.controls} is not a choice: give random_pruning, reinit, both "
                        f"comma-separated, or none")
    return [name for name in CONTROLS if name in names]


def seeds(branch: Branch) -> dict[str, int]:
    base = branch.seed()
    return {"random_pruning_mask": digest_seed(base, "transfer", "random_pruning"),
            "reinit_init": digest_seed(base, "transfer", "reinit")}


def source_mask(branch: Branch) -> Mask:
    return parent_run.load_mask(branch.trunk, branch.bundles["transfer"].mask_run, "mask_run")


def start_weights(branch: Branch) -> torch.nn.Module:
    """What the ticket trains from: this trunk's init, or the source's weights at --source_step."""
    h, trunk = branch.bundles["transfer"], branch.trunk
    if h.weights == "trunk":
        return trunk.initial_model()
    step = first_saved_step(branch) if h.source_step is None else \
        parent_run.parent_step(trunk, h.mask_run, h.source_step, "source_step")
    return parent_run.load_weights(trunk, h.mask_run, step, "source_step")


def first_saved_step(branch: Branch) -> Step:
    """The earliest step whose weights the source saved: where its training started."""
    h, trunk = branch.bundles["transfer"], branch.trunk
    owner = parent_run.parent_trunk(trunk, h.mask_run)
    directory = parent_run.parent_dir(trunk, h.mask_run)
    steps = []
    for path in directory.iterdir() if directory.is_dir() else ():
        match = paths.MODEL_FILE.match(path.name)
        if match:
            steps.append(int(match[1]) * owner.iterations_per_epoch + int(match[2]))
    if not steps:
        raise UserError(f"--weights=source: {directory} saved no weights; give a run that trained, or --weights=trunk")
    return parent_run.parent_step(trunk, h.mask_run, f"{min(steps)}it", "source_step")


def check(branch: Branch) -> None:
    """Refuse a missing or foreign mask and unreadable source weights before anything trains."""
    source_mask(branch)
    if branch.bundles["transfer"].weights == "source":
        start_weights(branch)


def summary(branch: Branch) -> dict:
    """What the finished marker shows the reading commands: the ticket's result as the branch's,
    each network's metrics as a results row, and the controls' accuracies as the headline."""
    found = {}
    for name in ("ticket", *CONTROLS):
        try:
            found[name] = read_json(branch.dir / name / paths.DONE)
        except (OSError, ValueError):
            continue
    if "ticket" not in found:
        return {}
    controls = [[f"{name} acc", done["metrics"].get("test_accuracy")] for name, done in found.items()
                if name != "ticket" and done["metrics"].get("test_accuracy") is not None]
    return {"final_step": found["ticket"]["final_step"], "metrics": found["ticket"]["metrics"],
            "headline": controls, "results": [[name, done["metrics"]] for name, done in found.items()],
            "compute": found["ticket"].get("compute", {}), "source": f"ticket/{paths.DONE}"}


def run(branch: Branch) -> list[list[str]]:
    trunk, used = branch.trunk, seeds(branch)
    mask = source_mask(branch)
    networks = [("ticket", mask, start_weights)]
    for control in chosen_controls(branch.bundles["transfer"]):
        if control == "random_pruning":
            networks.append((control, mask.shuffled("layerwise", used["random_pruning_mask"]), start_weights))
        else:
            networks.append((control, mask, lambda _: trunk.fresh_model(seed=used["reinit_init"])))
    rows = []
    for name, network_mask, weights in networks:
        directory = branch.dir / name
        done = train_masked(trunk, directory, weights(branch), network_mask)
        rows.append(row(name, network_mask, done, directory))
    return rows
