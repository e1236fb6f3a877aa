"""SpaM post hoc: prune a network trained with a learned prior by its posterior, and compare to MAP.

Dhahri et al. (2024), "Shaving Weights with Occam's Razor", main experiments:
  1. SpaM training (spam/): from the trunk's initialization and data order, train with the log
     prior precisions as hyperparameters, updated by the Laplace marginal likelihood every
     --marglik_frequency epochs; the prior's penalty replaces the weight decay.
  2. MAP, the comparison (map/): the trunk itself, with a Laplace at its final weights under the
     fixed scalar prior its weight decay stands for.
  3. For both, each --criteria (OPD and its controls: magnitude, random, ...) and each
     --sparsities: prune the final weights globally and evaluate without retraining (cells/);
     --finetune_steps also fine-tunes each pruned network under its mask (finetune/).
  4. One table: rows sparsity, columns network x criterion (table.csv; every metric in table.json).
"""

from __future__ import annotations

from branches.spam.map_laplace import final_weights, map_network
from branches.spam.prior_training import SpamHparams, likelihood_of, spam_training, train_spam
from branches.spam.sweep import Sweep, SweepHparams, Swept
from branches.spam.tables import accuracy_of, tabulate, write_table
from foundations.tables import format_metric, print_table
from runs.branch import Branch

NAME = "spam"
SUMMARY = "SpaM: learn the prior by marginal likelihood, then prune SpaM and the MAP trunk post hoc (OPD, controls)"
BUNDLES = {"spam": SpamHparams, "sweep": SweepHparams}


def sweep(branch: Branch) -> Sweep:
    h = branch.bundles["sweep"]
    ignore = branch.layers_to_ignore(h.prune_layers_to_ignore, model_default=False)
    return Sweep(branch.trunk, branch.dir, h, branch.seed(), ignore)


def check(branch: Branch) -> None:
    trunk = branch.trunk
    likelihood_of(spam_training(trunk.desc.training), trunk.info.task)
    sweep(branch).check(trunk.fresh_model())


def run(branch: Branch) -> list[list[str]]:
    trunk, h = branch.trunk, branch.bundles["spam"]
    done, _, posterior = train_spam(trunk, branch.dir / "spam", h)
    spam = Swept("spam", final_weights(trunk, branch.dir / "spam", done), posterior)
    map_ = map_network(trunk, branch.dir / "map", h.curvature, h.temperature,
                       branch.bundles["sweep"].map_prior_precision)
    records = sweep(branch).run([spam, map_])
    header, rows = tabulate(records, branch.bundles["sweep"].structure)
    print("post-hoc pruning, test accuracy without retraining (+ft: after fine-tuning):")
    print_table(header, rows)
    trunk.platform.on_primary(write_table, branch.dir, header, rows, records)
    dense = {r["model"]: r for r in records if r["criterion"] is None}
    return [["spam (dense)", "1.0000", format_metric(accuracy_of(dense["spam"])), str(branch.dir / "spam")],
            ["map (dense)", "1.0000", format_metric(accuracy_of(dense["map"])), str(trunk.dir)]]
