"""The reading commands on one root that holds a finished run of every branch kind: `runs` lists
each as done with its result, `tree` draws each, and `report` aggregates each, never an empty table."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

import datasets.registry
import open_prune
from runs.registry import BRANCHES
from tests.conftest import TINY

COMMANDS = {  # the smallest command line of each branch (the flags of its own tests)
    "oneshot": [*TINY, "--strategy=magnitude", "--prune_fraction=0.5"],
    "iterative": [*TINY, "--levels=1"],
    "transfer": [*TINY, "--mask_run=branch_iterative_ddc504bdc44e66e6c89e/level_1"],
    "rewinding": [*TINY, "--levels=1", "--rewind_step=1ep"],
    "reinitialize": [*TINY, "--levels=1", "--control=reinit"],
    "instability": [*TINY, "--from_step=0ep"],
    "orderedness": ["--default_hparams=xor_complete_5", "--quiet", "--rule=topk", "--keep=0.5",
                    "--training_steps=12ep", "--null_samples=5"],
    "chaos-causality": ["--default_hparams=iris_sigmoid_6", "--training_steps=6ep", "--window=40", "--maxlag=3",
                        "--quiet"],
    "spam": [*TINY, "--marglik_frequency=1", "--hyper_steps=10", "--criteria=opd,random", "--sparsities=50"],
    "spam-online": [*TINY, "--marglik_frequency=1", "--hyper_steps=10", "--prune_interval=1",
                    "--initial_sparsity=0.2", "--final_sparsity=0.8"],
    "static-sparse": [*TINY, "--train_density=0.3"],
    "set": [*TINY, "--train_density=0.3", "--update_every=2it"],
    "rigl": [*TINY, "--train_density=0.3", "--update_every=2it"],
    "gmp": [*TINY, "--final_density=0.3", "--prune_every=2it"],
}
COUNTS_ITS_OWN_TRAINING_FLOPS = {"static-sparse", "set", "rigl", "gmp"}  # branches/sparse/cost.py
WITHOUT_ACCURACY_OF_THEIR_OWN = {"instability", "orderedness", "chaos-causality", "spam"}


def run(*argv: str) -> tuple[int, str, str]:
    datasets.registry.clear_cache()
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = open_prune.main(list(argv))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def root(tmp_path_factory, dataset_root) -> Path:
    root = tmp_path_factory.mktemp("every_branch")
    for name, flags in COMMANDS.items():
        code, _, err = run("branch", name, *flags, f"--root={root}", f"--dataset_root={dataset_root}",
                           "--device=cpu")
        assert code == 0, f"{name}: {err}"
    return root


def test_every_branch_has_a_command_here():
    assert set(COMMANDS) == set(BRANCHES.names())


def test_runs_lists_every_branch_done_with_its_result(root):
    code, out, err = run("runs", f"--root={root}", "--format=json")
    assert code == 0, err
    rows = json.loads(out)
    kinds = {row["kind"] for row in rows}
    assert {f"branch_{name}" for name in COMMANDS} <= kinds
    for row in rows:
        assert row["status"] == "done", row
        assert row["torch"] and row["hostname"] and row["processes"] == 1  # where each ran, from its hparams.json
        if row["kind"][len("branch_"):] in WITHOUT_ACCURACY_OF_THEIR_OWN:
            assert row["result"], row  # its headline, not "-"
        if row["kind"][len("branch_"):] in COUNTS_ITS_OWN_TRAINING_FLOPS:  # its own count, from its marker
            marker = json.loads((root / row["run"] / "branch_done.json").read_text())
            assert row["training_flops"] == pytest.approx(marker["results"][0][1]["train GFLOPs"] * 1e9)
            assert 0 < row["flops"] < row["flops_dense"] and row["speedup"] > 1, row  # its final mask's
        elif row["kind"] == "train" or row["kind"][len("branch_"):] not in WITHOUT_ACCURACY_OF_THEIR_OWN:
            assert row["flops"] > 0 and row["training_flops"] > 0, row  # counted once when it finished


def test_tree_draws_every_branch(root):
    code, out, err = run("tree", f"--root={root}")
    assert code == 0, err
    for name in COMMANDS:
        assert f"branch_{name}_" in out


@pytest.mark.parametrize("name", list(COMMANDS))
def test_report_aggregates_every_branch(root, dataset_root, tmp_path, name):
    out = tmp_path / "report"
    code, _, err = run("report", "branch", name, *COMMANDS[name], f"--root={root}", f"--dataset_root={dataset_root}",
                       f"--out={out}")
    assert code == 0, err
    lines = (out / "report.md").read_text().splitlines()
    assert not [line for line in lines if line.startswith("| ") and set(line.strip("| ").split(" | ")[1:]) == {"-"}]
    if name in WITHOUT_ACCURACY_OF_THEIR_OWN:  # its own results, summarized
        start = lines.index("| result | over replicates |")
        assert lines[start + 2].split(" | ")[1][0].isdigit()
    else:  # the accuracy table, with a number under test accuracy
        header = next(line for line in lines if "test accuracy" in line).split(" | ")
        first = lines[lines.index(" | ".join(header)) + 2].split(" | ")
        assert first[header.index("test accuracy")][0].isdigit()
