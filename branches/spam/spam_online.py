"""SpaM online: prune during marginal-likelihood training, following a sparsity staircase.

Dhahri et al. (2024), online pruning: SpaM training from the trunk's initialization and data
order (see the spam branch) that, every --prune_interval epochs, between the Laplace fit and the
prior's update, prunes the current weights by OPD (or the posterior precision alone) to
s(e) = s0 + (s_final - s0) * min(1, floor(e / interval) / floor(E / interval)), letting them
regrow until the next event, as the authors' code (branches/spam/online_pruning.py). One run gives the
accuracy-vs-sparsity trajectory (trajectory.csv, from metrics.jsonl); it ends with the evaluation
table at its final sparsity, beside the MAP trunk pruned post hoc to the same sparsity by OPD and
by the controls (magnitude, random), none retrained.
"""

from __future__ import annotations

from branches.spam.map_laplace import final_weights, map_network
from branches.spam.online_pruning import OnlineHparams, OnlinePruningHook, OnlineSpamHparams, scheduled_sparsity
from branches.spam.prior_training import (
    check_curvature,
    check_prior_updates,
    likelihood_of,
    spam_training,
    train_spam,
    training_epochs,
)
from branches.spam.sweep import Sweep, SweepHparams, Swept, read_record
from branches.spam.tables import (
    accuracy_of,
    cell_results,
    csv_text,
    stored_records,
    tabulate,
    write_if_changed,
    write_table,
)
from branches.spam.tables import row_header as row_header  # the branch's summary header (runs/registry.py)
from foundations import paths
from foundations.tables import format_metric, print_table
from platforms.storage import write_json
from pruning.mask import Mask
from pruning.validate import considered_layers
from runs.branch import Branch
from training.metrics import read_records

NAME = "spam-online"
SUMMARY = "SpaM that prunes itself by OPD every --prune_interval epochs as it trains, up a sparsity staircase"
# 2: the SpaM authors' setup became the defaults (issue 17: parameter prior, 10 ECE bins, percentile
# ranking, structured fine-tuning; online: GGN, pruning every update interval with regrowth).
DEFAULTS_VERSION = "2"
BUNDLES = {"spam": OnlineSpamHparams, "online": OnlineHparams}
CONTROLS = ("opd", "magnitude", "random")
TRAJECTORY_HEADER = ["epoch", "sparsity", "test accuracy"]


def ignored(branch: Branch) -> list[str]:
    return branch.layers_to_ignore(branch.bundles["online"].prune_layers_to_ignore, model_default=False)


def total_epochs(branch: Branch) -> int:
    return training_epochs(branch.trunk)


def check(branch: Branch) -> None:
    trunk, h = branch.trunk, branch.bundles["online"]
    likelihood_of(spam_training(trunk.desc.training), trunk.info.task)
    check_curvature(branch.bundles["spam"], trunk.info.task)
    ignored(branch)
    scheduled_sparsity(0, total_epochs(branch), h.initial_sparsity, h.final_sparsity, h.prune_interval)


def control_sweep(branch: Branch) -> Sweep:
    """The post-hoc evaluation at the final sparsity (the MAP trunk's columns)."""
    h = branch.bundles["online"]
    sweep_h = SweepHparams(criteria=",".join(CONTROLS), prune_layers_to_ignore=h.prune_layers_to_ignore,
                           ece_bins=h.ece_bins, map_prior_precision=h.map_prior_precision,
                           ranking="exact")  # the weights, as the online pruning ranks them
    percent = float(f"{100 * h.final_sparsity:g}")  # as the cells were always named: 29, not 28.999999999999996
    return Sweep(branch.trunk, branch.dir, sweep_h, branch.seed(), ignored(branch), sparsities=[percent])


def trajectory(branch: Branch) -> list[list[str]]:
    """(epoch, sparsity, test accuracy) at every evaluation, from metrics.jsonl."""
    ipe = branch.trunk.iterations_per_epoch
    by_iteration: dict[int, dict[str, float]] = {}
    for record in read_records(branch.dir / paths.METRICS):
        by_iteration.setdefault(record["iteration"], {})[record["name"]] = record["value"]
    return [[f"{iteration / ipe:g}", format_metric(values["sparsity"]), format_metric(values.get("test_accuracy"))]
            for iteration, values in sorted(by_iteration.items()) if "sparsity" in values]


def own_cell(branch: Branch, sweep: Sweep, network: Swept) -> dict:
    """The online network itself, under the mask it ended with, on the row of the final sparsity."""
    criterion, sparsity = branch.bundles["online"].criterion, sweep.sparsities()[0]
    path = sweep.cell_path(network.label, criterion, sparsity)
    record = read_record(path)
    if record is None:
        record = {"model": network.label, "criterion": criterion, "sparsity": sparsity,
                  **sweep.evaluate(network.model, Mask.load(branch.dir))}
        branch.trunk.platform.on_primary(write_json, record, path)
    return record


def summary(branch: Branch) -> dict:
    """The headline the reading commands show: the sparsity the online network ended at, its test
    accuracy there, and the MAP trunk's pruned post hoc by OPD to the same sparsity."""
    cells = stored_records(branch.dir)
    own = next((c for c in cells if c["model"] == NAME), None)
    if own is None:
        return {}
    headline = [["sparsity %", own["sparsity"]], [f"{NAME} accuracy", accuracy_of(own)]]
    map_opd = [c for c in cells if c["model"] == "map" and c.get("criterion") == "opd"
               and c.get("sparsity") == own["sparsity"]]
    return {"headline": headline + [["map opd accuracy", accuracy_of(c)] for c in map_opd],
            "results": cell_results(cells)}


def check_run(branch: Branch) -> None:
    """Refuse, before anything is written, training that ends before the first prior update: no
    prior would be learned and spam-online would never prune (the run can still be located:
    --display_output_location)."""
    check_prior_updates(branch.bundles["spam"], total_epochs(branch))


def run(branch: Branch) -> list[list[str]]:
    trunk, h, online = branch.trunk, branch.bundles["spam"], branch.bundles["online"]
    names = considered_layers(trunk.prunable_layer_names, ignored(branch))

    def make_hook(spam_h, model, likelihood, posterior):
        return OnlinePruningHook(spam_h, model, likelihood, online, names, total_epochs(branch), posterior)

    done, _, posterior = train_spam(trunk, branch.dir, h, make_hook=make_hook)
    pruned = Swept(NAME, final_weights(trunk, branch.dir, done), posterior)
    map_ = map_network(trunk, branch.dir / "map", h.curvature, h.temperature, online.map_prior_precision)
    sweep = control_sweep(branch)
    own = own_cell(branch, sweep, pruned)
    records = sweep.run([map_])
    records.insert(1, own)

    steps = trajectory(branch)
    print("online pruning: sparsity and test accuracy at each evaluation (trajectory.csv):")
    print_table(TRAJECTORY_HEADER, steps)
    header, rows = tabulate(records, "unstructured")
    print("\nat the final sparsity, beside the MAP trunk pruned post hoc (no retraining):")
    print_table(header, rows)
    trunk.platform.on_primary(write_if_changed, csv_text(TRAJECTORY_HEADER, steps), branch.dir / "trajectory.csv")
    trunk.platform.on_primary(write_table, branch.dir, header, rows, records)
    return [[NAME, f"{own['density']:.4f}", format_metric(accuracy_of(own)), str(branch.dir)]]
