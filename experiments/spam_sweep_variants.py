"""Re-sweep the networks of a finished `branch spam` under other sweep settings, without retraining.

The sweep's settings are hashed, so `--ranking=exact` or `--ece_bins=15` names another branch
directory and would train SpaM again. This script instead reads the SpaM and MAP networks (and
their posterior precisions) of the branch the given flags name, and evaluates the cells of each
variant in a scratch directory beside it (`variants/<name>/cells/`), printing one table per metric:

    python experiments/spam_sweep_variants.py --default_hparams=fashionmnist_lenet5

Variants: `authors` (the branch's own settings), `exact` (--ranking=exact), `bins15` (15 ECE bins).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from branches.spam import spam  # noqa: E402
from branches.spam.map_laplace import final_weights, map_network  # noqa: E402
from branches.spam.prior_training import read_precisions  # noqa: E402
from branches.spam.sweep import Sweep, Swept  # noqa: E402
from foundations.errors import UserError  # noqa: E402
from foundations.tables import print_table  # noqa: E402
from runs import run_files  # noqa: E402
from runs.target import branch_target  # noqa: E402

VARIANTS = {"authors": {}, "exact": {"ranking": "exact"}, "bins15": {"ece_bins": 15}}


def main(argv: list[str]) -> int:
    branch, _ = branch_target("spam").parse(argv)
    trunk, h = branch.trunk, branch.bundles["spam"]
    done = run_files.finished(branch.dir / "spam", trunk.end_step)
    stored = read_precisions(branch.dir / "spam")
    if done is None or stored is None or not trunk.is_done:
        raise UserError(f"{branch.dir} has no finished SpaM and MAP networks yet: run the branch first")
    networks = [Swept("spam", final_weights(trunk, branch.dir / "spam", done), stored[1]),
                map_network(trunk, branch.dir / "map", h.curvature, h.temperature,
                            branch.bundles["sweep"].map_prior_precision)]
    base = spam.sweep(branch)
    for name, change in VARIANTS.items():
        settings = dataclasses.replace(branch.bundles["sweep"], **change)
        sweep = Sweep(trunk, branch.dir / "variants" / name, settings, base.seed, base.ignore)
        records = sweep.run(networks)
        for metric in ("accuracy", "ece", "density"):
            print(f"\n{name} ({change or 'the branch settings'}), {metric}:")
            print_table(*table_of(records, metric))
    return 0


def table_of(records: list[dict], metric: str) -> tuple[list[str], list[list[str]]]:
    """Rows network/criterion, columns sparsity (dense first)."""
    sparsities = sorted({r["sparsity"] for r in records if r["criterion"] is not None})
    by_row: dict[str, dict[float, float]] = {}
    dense = {r["model"]: r[metric] for r in records if r["criterion"] is None}
    for r in records:
        if r["criterion"] is not None:
            by_row.setdefault(f"{r['model']}/{r['criterion']}", {"model": r["model"]})[r["sparsity"]] = r[metric]
    header = ["network/criterion", "dense", *[f"{s:g}" for s in sparsities]]
    rows = [[label, f"{dense[cells['model']]:.4f}", *[f"{cells[s]:.4f}" for s in sparsities]]
            for label, cells in by_row.items()]
    return header, rows


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
