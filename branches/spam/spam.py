"""SpaM post hoc: prune a network trained with a learned prior by its posterior, and compare to MAP.

Dhahri et al. (2024), "Shaving Weights with Occam's Razor", main experiments:
  1. SpaM training (spam/): from the trunk's initialization and data order, train with the log
     prior precisions as hyperparameters, updated by the Laplace marginal likelihood every
     --marglik_frequency epochs; the prior's penalty replaces the weight decay.
  2. MAP, the comparison (map/): the trunk itself, with a Laplace at its final weights under the
     fixed scalar prior its weight decay stands for.
  3. For both, each --criteria (OPD and its controls: magnitude, random, ...) and each
     --sparsities: prune the final weights globally (unstructured: the authors' percentile over
     every parameter, or --ranking=exact) and evaluate without retraining (cells/); neurons and
     filters are then fine-tuned under their mask, as the authors' code always does, and any
     structure with --finetune_steps (finetune/).
  4. One table: rows sparsity, columns network x criterion (table.csv; every metric in table.json).
     --sparsities and --criteria are not hashed and only ever add: table.csv, table.json and the
     finished marker keep every cell evaluated so far; a rerun prints the cells it asks for.
"""

from __future__ import annotations

from branches.spam.map_laplace import final_weights, map_network
from branches.spam.prior_training import (
    SpamHparams,
    check_curvature,
    check_prior_updates,
    likelihood_of,
    spam_training,
    train_spam,
    training_epochs,
)
from branches.spam.sweep import Sweep, SweepHparams, Swept, criterion_names, nm_sparsity, percentages
from branches.spam.tables import accuracy_of, cell_results, merged_records, stored_records, tabulate, write_table
from branches.spam.tables import row_header as row_header  # the branch's summary header (runs/registry.py)
from foundations.tables import format_metric, print_table
from runs.branch import Branch

NAME = "spam"
SUMMARY = "SpaM: learn the prior by marginal likelihood, then prune SpaM and the MAP trunk post hoc (OPD, controls)"
# 2: the SpaM authors' setup became the defaults (issue 17: parameter prior, 10 ECE bins, percentile
# ranking, structured fine-tuning; online: GGN, pruning every update interval with regrowth).
DEFAULTS_VERSION = "2"
BUNDLES = {"spam": SpamHparams, "sweep": SweepHparams}


def sweep(branch: Branch) -> Sweep:
    h = branch.bundles["sweep"]
    ignore = branch.layers_to_ignore(h.prune_layers_to_ignore, model_default=False)
    return Sweep(branch.trunk, branch.dir, h, branch.seed(), ignore)


def check(branch: Branch) -> None:
    trunk = branch.trunk
    likelihood_of(spam_training(trunk.desc.training), trunk.info.task)
    check_curvature(branch.bundles["spam"], trunk.info.task)
    sweep(branch).check(trunk.fresh_model())


def check_run(branch: Branch) -> None:
    """Refuse, before anything is written, training that ends before the first prior update: no
    prior would be learned (the run can still be located: --display_output_location)."""
    check_prior_updates(branch.bundles["spam"], training_epochs(branch.trunk))


def run(branch: Branch) -> list[list[str]]:
    trunk, h = branch.trunk, branch.bundles["spam"]
    done, _, posterior = train_spam(trunk, branch.dir / "spam", h)
    spam = Swept("spam", final_weights(trunk, branch.dir / "spam", done), posterior)
    map_ = map_network(trunk, branch.dir / "map", h.curvature, h.temperature,
                       branch.bundles["sweep"].map_prior_precision)
    records = sweep(branch).run([spam, map_])
    structure = branch.bundles["sweep"].structure
    header, rows = tabulate(records, structure)
    tuned = " (+ft: after fine-tuning)" if any("finetuned" in r for r in records) else ""
    metric = "perplexity (lower is better)" if trunk.info.task == "language_modeling" else "accuracy"
    print(f"post-hoc pruning, test {metric} without retraining{tuned}:")
    print_table(header, rows)
    trunk.platform.on_primary(write_whole_table, branch.dir, structure, records)
    dense = {r["model"]: r for r in records if r["criterion"] is None}
    return [["spam (dense)", "1.0000", format_metric(accuracy_of(dense["spam"])), str(branch.dir / "spam")],
            ["map (dense)", "1.0000", format_metric(accuracy_of(dense["map"])), str(trunk.dir)]]


def summary(branch: Branch) -> dict:
    """The headline the reading commands show: at the highest sparsity swept, SpaM's and MAP's test
    accuracy pruned by OPD (or the first criterion swept), without retraining."""
    cells = [c for c in stored_records(branch.dir) if c.get("criterion") is not None and c.get("sparsity") is not None]
    if not cells:
        return {}
    criteria = list(dict.fromkeys(c["criterion"] for c in cells))
    criterion = "opd" if "opd" in criteria else criteria[0]
    top = max(c["sparsity"] for c in cells if c["criterion"] == criterion)
    accuracy = {c["model"]: accuracy_of(c) for c in cells if c["criterion"] == criterion and c["sparsity"] == top}
    return {"headline": [["sparsity %", top], *[[f"{model} {criterion}", accuracy[model]]
                                                 for model in ("spam", "map") if model in accuracy]],
            "results": cell_results(stored_records(branch.dir))}



def write_whole_table(directory, structure: str, records: list[dict]) -> None:
    """table.csv and table.json of every cell finished so far: these records and the stored ones."""
    everything = merged_records(records, stored_records(directory))
    header, rows = tabulate(everything, structure)
    write_table(directory, header, rows, everything)


def _number(value: float) -> str:
    short = f"{value:g}"
    return short if float(short) == value else repr(value)


def cells(branch: Branch, options: dict) -> list[str]:
    """The cells a request evaluates, criterion@sparsity (runs/branch.py: a marker that holds them
    all covers it). An N:M structure has its one sparsity whatever --sparsities says."""
    sweep_options = options["sweep"]
    h = branch.bundles["sweep"]
    if h.is_nm:
        sparsities = [nm_sparsity(h.structure)]
    else:
        sparsities = percentages(sweep_options["sparsities"])
    return [f"{criterion}@{sparsity:g}" for sparsity in sparsities
            for criterion in criterion_names(sweep_options["criteria"])]


def merge_options(branch: Branch, stored: dict, requested: dict) -> dict:
    """Both requests' sparsities (ascending) and criteria (the stored ones first); the marker's
    `cells` say which pairs were evaluated."""
    old, new = stored.get("sweep", {}), requested["sweep"]
    try:
        old_sparsities, old_criteria = percentages(old["sparsities"]), criterion_names(old["criteria"])
    except Exception:  # a marker of another version: the request alone
        return requested
    sparsities = sorted(set(old_sparsities) | set(percentages(new["sparsities"])))
    criteria = list(dict.fromkeys([*old_criteria, *criterion_names(new["criteria"])]))
    return {**requested, "sweep": {**new, "sparsities": ",".join(map(_number, sparsities)),
                                   "criteria": ",".join(criteria)}}
