"""The orderedness branch's runs (a per-step pruning rule and the orderedness tracker as hooks,
branches/orderedness/step_rules.py) train stacked under `submit --stack`, and each member equals
the same run trained alone to the stacked tolerance (tests/training/test_stacked_training.py:
rtol 1e-4 on the final weights, the logged series and the final metrics; not bitwise, since the
stack's batched products sum in another order)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

import open_prune
from branches.orderedness import orderedness
from branches.orderedness.step_rules import OrderednessTracker, RuleHook
from foundations import paths
from platforms.storage import read_json
from pruning import rules
from runs.target import branch_target
from tests.training.test_stacked_training import SignalAfter, assert_close_runs, final_weights
from training.hooks import Hook
from training.interrupts import Interrupted
from training.stacked.job import TrainJob, stack_key, stacks, steps_each_member
from training.stacked.loop import train_stacked

XOR = ["branch", "orderedness", "--default_hparams=xor_complete_5", "--training_steps=4ep", "--null_samples=5",
       "--replicate=1-2", "--quiet"]
GRIDS = (["--rule=topk,dyn_topk", "--keep=0.5"], ["--rule=threshold"], ["--rule=random", "--prune_fraction=0.5"])


def test_the_orderedness_hooks_have_a_stacked_form_and_a_plain_hook_has_not():
    rule = RuleHook(rules.get("topk", keep=0.5, seed=0), "weight")
    tracker = OrderednessTracker("weight", 6, 1, measure=lambda blocks: None)
    assert steps_each_member(rule) and steps_each_member(tracker)

    class PerStep(Hook):
        def after_optimizer_step(self, state):
            pass

    assert not stacks(PerStep())


def test_orderedness_grid_stacked_equals_one_after_another(tmp_path, capsys):
    torch.set_num_threads(1)
    roots = {"stacked": tmp_path / "stacked", "plain": tmp_path / "plain"}
    for kind, root in roots.items():
        for grid in GRIDS:
            stack = ["--stack"] if kind == "stacked" else []
            argv = ["submit", "--local", *stack, "--", *XOR, *grid, f"--root={root}", "--device=cpu"]
            assert open_prune.main(argv) == 0
    out = capsys.readouterr().out
    assert "training 4 runs together" in out  # topk, dyn_topk x 2 replicates
    assert out.count("training 2 runs together") == 3  # the trunks; threshold's and random's replicates
    assert "trains alone" not in out
    listing = {kind: sorted(str(p.relative_to(root)) for p in root.rglob("*")) for kind, root in roots.items()}
    assert listing["stacked"] == listing["plain"]
    branches = [p.parent.relative_to(roots["plain"]) for p in roots["plain"].rglob(paths.DONE)]
    assert len(branches) == 2 + 8
    for relative in branches:
        assert_close_runs(roots["plain"] / relative, roots["stacked"] / relative)
        results = roots["plain"] / relative / "orderedness.json"
        if results.exists():  # the branch runs: the analysis of the final weights agrees too
            alone, stacked = read_json(results), read_json(roots["stacked"] / relative / "orderedness.json")
            assert stacked["final"]["orderedness"] == pytest.approx(alone["final"]["orderedness"], rel=1e-4)
            assert stacked["final"]["density"] == alone["final"]["density"]


def rule_jobs(root, rule: list[str], replicates=(1, 2), wrap=None) -> list[TrainJob]:
    """The branch's `train` calls (orderedness.train_under_rule) as jobs, xor with batch 1."""
    jobs = []
    for replicate in replicates:
        argv = [*XOR[2:-2], "--batch_size=1", "--training_steps=3ep", *rule, f"--replicate={replicate}", "--quiet",
                f"--root={root}", "--device=cpu"]
        branch, _ = branch_target(orderedness.NAME).parse(argv)
        trunk, h = branch.trunk, branch.bundles["orderedness"]
        model = trunk.initial_model()
        hooks = (RuleHook(orderedness.rule_factory(branch)(), orderedness.LAYER, h.progress),
                 OrderednessTracker(orderedness.LAYER, model.num_units, orderedness.track_every(branch),
                                    orderedness.measure(branch, model.num_outputs)))
        loader = trunk.loader(True)
        jobs.append(TrainJob(model, trunk.desc.training, wrap(loader) if wrap else loader, trunk.loader(False),
                             branch.dir, trunk.platform, trunk.seeds["data_order"], hooks=hooks))
    return jobs


@pytest.mark.parametrize("rule", [["--rule=threshold"], ["--rule=random", "--prune_fraction=0.5"]])
def test_killed_orderedness_stack_resumes_bitwise(tmp_path, rule):
    """The rule's state (a frozen threshold, a drawn mask) and the tracker's waiting copies are
    each member's own, checkpointed in its checkpoint.pt: a killed stack resumes bitwise."""
    torch.set_num_threads(1)
    whole = rule_jobs(tmp_path / "whole", rule)
    assert len({stack_key(job)[0] for job in whole}) == 1 and stack_key(whole[0])[0] is not None
    train_stacked(whole)
    killed = rule_jobs(tmp_path / "killed", rule, wrap=lambda loader: SignalAfter(loader, 1))
    with pytest.raises(Interrupted):
        train_stacked(killed)
    assert all((job.out_dir / paths.CHECKPOINT).exists() for job in killed)
    resumed = rule_jobs(tmp_path / "killed", rule)
    train_stacked(resumed)
    for a, b in zip(whole, resumed):
        x, y = final_weights(a.out_dir), final_weights(b.out_dir)
        assert all(torch.equal(x[name], y[name]) for name in x) and bool((x["weight"] == 0).any())
        assert (a.out_dir / paths.METRICS).read_text() == (b.out_dir / paths.METRICS).read_text()
        assert '"name": "orderedness"' in (b.out_dir / paths.METRICS).read_text()


def load_table():
    path = Path(__file__).resolve().parents[2] / "experiments" / "orderedness_table.py"
    spec = importlib.util.spec_from_file_location("orderedness_table_stacked", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_table_stacked_reads_like_the_table_one_after_another(tmp_path, monkeypatch):
    """experiments/orderedness_table.py --stack: the records each row reads agree with the
    unstacked script's (two rules, two replicates, a few epochs)."""
    table = load_table()
    short = table.argv
    monkeypatch.setattr(table, "argv", lambda *args: [*short(*args), "--training_steps=4ep", "--null_samples=5"])
    monkeypatch.setattr(table, "RULES", ("threshold", "topk"))
    roots = {"stacked": str(tmp_path / "stacked"), "plain": str(tmp_path / "plain")}
    table.run_task_stacked(("xor", 2, roots["stacked"], "authors"))
    for replicate in (1, 2):
        table.run_replicate(("xor", replicate, roots["plain"], "authors"))
    done = [read_json(path) for path in Path(roots["stacked"]).rglob(paths.DONE)]
    assert len(done) == 2 + 4 and all(record["stacked"]["members"] == 2 for record in done)
    for rule in table.RULES:
        plain, stacked = (table.records("xor", rule, 2, roots[kind]) for kind in ("plain", "stacked"))
        for a, b in zip(plain, stacked):
            assert b["final"]["orderedness"] == pytest.approx(a["final"]["orderedness"], rel=1e-4)
            assert b["final"]["density"] == a["final"]["density"]
            assert b["train_mse"] == pytest.approx(a["train_mse"], rel=1e-4, abs=1e-6)
