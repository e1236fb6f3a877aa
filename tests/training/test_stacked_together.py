"""A run's independent trainings stacked (`training.loop.train_together`), and hooks that work only
at boundaries, stopping a member early included: each against the same runs trained alone (the
tolerance of tests/training/test_stacked_training.py)."""

from __future__ import annotations

import csv
import json
import threading
from pathlib import Path

import pytest
import torch

import open_prune
from branches.chaos.train_accuracy_stop import BENCHMARK_FILE, TrainAccuracyBenchmark
from foundations import paths
from foundations.bundles import TrainingHparams
from runs.stack_plan import Coordinator
from tests.conftest import TINY
from tests.training.test_stacked_training import alone_runs, assert_close_runs, loaders, network, platform
from training.hooks import Hook
from training.loop import train, train_together
from training.losses import Loss
from training.stacked.job import TrainJob, stack_key, works_only_at_boundaries
from training.stacked.loop import train_stacked


class StopAt(Hook):
    """Asks the loop to stop at the first evaluation at or after `iteration` (None: never)."""

    def __init__(self, iteration):
        self.iteration = iteration

    def at_eval(self, state, metrics):
        if self.iteration is not None and state.iteration >= self.iteration:
            state.request_stop(f"reached iteration {self.iteration}")


def iris_jobs(tmp_path: Path, out: Path, stops) -> list[TrainJob]:
    h = TrainingHparams("sgd", 0.05, "4ep", momentum=0.9, loss="sigmoid_mse")
    loss = Loss("sigmoid_mse", "classification", 3)
    jobs = []
    for seed, stop in enumerate(stops, start=1):
        train_loader, test_loader = loaders("iris", tmp_path, seed, 4)
        hooks = (StopAt(stop), TrainAccuracyBenchmark(None, loss))  # the second only times the run
        jobs.append(TrainJob(network("iris_sigmoid_6", seed, (4,), 3), h, train_loader, test_loader,
                             out / f"run{seed}", platform(tmp_path), seed, hooks=hooks))
    return jobs


def test_a_member_that_asks_to_stop_ends_there_as_alone_and_the_others_go_on(tmp_path):
    torch.set_num_threads(1)
    stops = [30, None, 62]  # iris at batch 4: 30 steps per epoch, so epochs 1 and 3 end them
    stacked = iris_jobs(tmp_path, tmp_path / "stack", stops)
    assert all(works_only_at_boundaries(hook) for hook in stacked[0].hooks)
    assert len({stack_key(job)[0] for job in stacked}) == 1 and stack_key(stacked[0])[0] is not None
    alone = alone_runs(iris_jobs(tmp_path, tmp_path / "alone", stops), tmp_path)
    results = train_stacked(stacked, note={"stack": 1})
    assert all(isinstance(result, dict) for result in results)
    finals = []
    for a, job in zip(alone, stacked):
        assert_close_runs(a, job.out_dir)  # the same final step, weights and logged metrics
        done, alone_done = (json.loads((d / paths.DONE).read_text()) for d in (job.out_dir, a))
        assert done.get("stopped_early") == alone_done.get("stopped_early")
        assert json.loads((job.out_dir / BENCHMARK_FILE).read_text())["iteration"] == done["final_iteration"]
        finals.append(done["final_iteration"])
    assert finals == [30, 120, 90]


def test_train_together_runs_in_order_alone_and_side_by_side_in_a_stack(tmp_path):
    """Outside a stack the thunks run one after another in this thread; within one, each in a
    thread of its own, and their `train` calls reach the coordinator together (one stack)."""
    order = []
    assert train_together([lambda: order.append(1) or 1, lambda: order.append(2) or 2]) == [1, 2]
    assert order == [1, 2]

    torch.set_num_threads(1)
    h = TrainingHparams("sgd", 0.05, "1ep", loss="sigmoid_mse")

    def training(seed: int):
        def thunk():
            train_loader, test_loader = loaders("iris", tmp_path, seed, 8)
            return train(network("iris_sigmoid_6", seed, (4,), 3), h, train_loader, test_loader,
                         tmp_path / "together" / f"run{seed}", platform=platform(tmp_path), data_order_seed=seed)
        return thunk

    threads = set()

    def parent():
        threads.add(threading.get_ident())
        return train_together([training(seed) for seed in (1, 2, 3)])

    said = []
    coordinator = Coordinator(size=None, say=said.append)
    [outcome] = coordinator.run([parent])
    assert isinstance(outcome, list) and all("test_loss" in metrics for metrics in outcome)
    assert coordinator.stacks == 1 and said[0].startswith("stack 1: training 3 runs together")
    for seed in (1, 2, 3):
        done = json.loads((tmp_path / "together" / f"run{seed}" / paths.DONE).read_text())
        assert done["stacked"]["members"] == 3


def test_train_together_raises_the_first_failure_after_every_thunk_ended(tmp_path):
    ended = []

    def fails():
        raise ValueError("no")

    def parent():
        return train_together([fails, lambda: ended.append("second")])

    [outcome] = Coordinator(size=None, say=lambda line: None).run([parent])
    assert isinstance(outcome, ValueError) and ended == ["second"]


def table(root: Path, replicate: int) -> list[dict]:
    [path] = root.glob(f"train_*/replicate_{replicate}/branch_chaos-causality_*/table.csv")
    return list(csv.DictReader(path.read_text().splitlines()))


def test_chaos_causality_retrainings_stack_like_one_after_another(tmp_path, capsys):
    """Each replicate's four retrainings (one init, four masks: dense, LEGCNet, random,
    magnitude, to the benchmark accuracy) train as one stack, with the same table as without
    --stack but for the seconds, which a stacked network does not have."""
    torch.set_num_threads(1)
    grid = ["branch", "chaos-causality", "--default_hparams=iris_sigmoid_6", "--training_steps=12ep", "--lr=0.5",
            "--window=100", "--lag_rule=cap", "--maxlag=2", "--accuracy=argmax", "--stop_at_train_accuracy=0.9",
            "--quiet"]
    roots = {"stacked": tmp_path / "stacked", "plain": tmp_path / "plain"}
    for kind, root in roots.items():
        stack = ["--stack"] if kind == "stacked" else []
        assert open_prune.main(["submit", "--local", *stack, "--", *grid, f"--root={root}"]) == 0
    out = capsys.readouterr().out
    assert "training 4 runs together" in out and "seconds: '-' where a network trained stacked" in out
    stacked, plain = table(roots["stacked"], 1), table(roots["plain"], 1)
    assert [row["network"] for row in stacked] == ["dense", "LEGCNet", "random (equal counts)",
                                                   "magnitude (equal counts)"]
    assert len({row["% pruned (all)"] for row in stacked}) == 2  # LEGCNet prunes; its controls prune as many
    assert len({row["epochs"] for row in stacked}) > 2  # the benchmark ends them at different epochs
    for ours, theirs in zip(stacked, plain):
        assert ours["seconds"] == "-" and theirs["seconds"] != "-"
        assert {k: v for k, v in ours.items() if k != "seconds"} == {k: v for k, v in theirs.items() if k != "seconds"}
    for relative in (p.parent.relative_to(roots["plain"]) for p in roots["plain"].rglob(paths.DONE)):
        assert_close_runs(roots["plain"] / relative, roots["stacked"] / relative)


class ThreadCount(Hook):
    """Records torch's thread count where the run's evaluations happen."""

    def __init__(self):
        self.seen = set()

    def at_eval(self, state, metrics):
        self.seen.add(torch.get_num_threads())


def test_a_stack_trains_with_its_runs_thread_count_not_the_main_threads(tmp_path):
    """torch's thread count is per thread (OpenMP's): each run sets its --num_threads in its own
    thread, and the coordinator trains the stack in the main thread with that count."""
    h = TrainingHparams("sgd", 0.05, "1ep", loss="sigmoid_mse")
    hooks = [ThreadCount(), ThreadCount()]

    def run(seed: int):
        def thunk():
            torch.set_num_threads(1)  # what the run's Platform.from_args does in its thread
            train_loader, test_loader = loaders("iris", tmp_path, seed, 8)
            return train(network("iris_sigmoid_6", seed, (4,), 3), h, train_loader, test_loader,
                         tmp_path / f"run{seed}", platform=platform(tmp_path, num_threads=1), data_order_seed=seed,
                         hooks=[hooks[seed]])
        return thunk

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        outcomes = Coordinator(size=None, say=lambda line: None).run([run(0), run(1)])
        assert all(isinstance(outcome, dict) for outcome in outcomes)
        assert hooks[0].seen == hooks[1].seen == {1} and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_a_branch_with_stack_trains_its_levels_as_one_stack(dataset_root, tmp_path, capsys):
    """`branch reinitialize --stack`: the control's levels (one command, no grid) train as one
    stack, with the same files and results as without --stack; a bad --stack is one line."""
    torch.set_num_threads(1)
    roots = {"stacked": tmp_path / "stacked", "plain": tmp_path / "plain"}
    for kind, root in roots.items():
        argv = ["branch", "reinitialize", *TINY, "--levels=2", "--control=reinit", f"--root={root}",
                f"--dataset_root={dataset_root}", "--device=cpu", *(["--stack"] if kind == "stacked" else [])]
        assert open_prune.main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("training 2 runs together") == 1  # the two levels; the tickets' levels depend on each other
    listing = {kind: sorted(str(p.relative_to(root)) for p in root.rglob("*")) for kind, root in roots.items()}
    assert listing["stacked"] == listing["plain"]
    for relative in (p.parent.relative_to(roots["plain"]) for p in roots["plain"].rglob(paths.DONE)):
        assert_close_runs(roots["plain"] / relative, roots["stacked"] / relative)
    assert open_prune.main(["branch", "reinitialize", *TINY, "--levels=2", "--control=reinit", "--stack=0",
                            f"--root={tmp_path}"]) != 0
    assert "--stack=0 must be a positive number of runs per stack, or auto" in capsys.readouterr().err


@pytest.mark.parametrize("name, shape, outputs", [("mnist_lenet_16_8", (1, 28, 28), 10), ("xor_complete_5", (2,), 1),
                                                  ("xor_complete_4_t2_bias", (2,), 1)])
def test_a_models_stacked_forward_is_each_members_forward(name, shape, outputs):
    """`forward_stacked` (the LeNets, the complete layer) against each member's own forward."""
    from torch.func import stack_module_state
    members = [network(name, seed, shape, outputs) for seed in (1, 2, 3)]
    params, _ = stack_module_state(members)
    x = torch.randn(3, 5, *shape, generator=torch.Generator().manual_seed(0))
    expected = torch.stack([member(x[i]) for i, member in enumerate(members)])
    torch.testing.assert_close(members[0].forward_stacked(params, x), expected, rtol=1e-5, atol=1e-6)


def test_a_killed_stack_with_a_member_that_ended_early_resumes_the_others(tmp_path):
    """Member 1 stops at step 30; a signal at step 40 checkpoints the other two. Rerun as a branch
    reruns (the finished member is skipped), they end as the stack never killed: bitwise where the
    rerun stacks the same members, to float tolerance in a smaller stack (docs/stacking.md)."""
    from tests.training.test_stacked_training import SignalAfter, final_weights
    from training.interrupts import Interrupted
    torch.set_num_threads(1)
    stops = [30, None, None]
    whole = iris_jobs(tmp_path, tmp_path / "whole", stops)
    train_stacked(whole)
    killed = iris_jobs(tmp_path, tmp_path / "killed", stops)
    for job in killed:
        job.train_loader = SignalAfter(job.train_loader, 10)  # epoch 1, batch 10: step 40
    with pytest.raises(Interrupted):
        train_stacked(killed)
    assert (killed[0].out_dir / paths.DONE).exists() and not (killed[0].out_dir / paths.CHECKPOINT).exists()
    assert all((job.out_dir / paths.CHECKPOINT).exists() for job in killed[1:])
    train_stacked(iris_jobs(tmp_path, tmp_path / "killed", stops)[1:])
    x, y = final_weights(whole[0].out_dir), final_weights(killed[0].out_dir)  # ended before the signal
    assert all(torch.equal(x[name], y[name]) for name in x)
    for a, b in zip(whole[1:], killed[1:]):
        assert_close_runs(a.out_dir, b.out_dir)


def test_the_same_members_in_a_smaller_stack_agree_to_float_tolerance(tmp_path):
    """Why the resume above is not bitwise: a member's last bits may depend on its place in the
    stack (an element-wise exp or log rounds an element in the vectorized body of its kernel
    otherwise than in the scalar tail), so the same members in a stack of another size agree to
    float tolerance."""
    torch.set_num_threads(1)
    three, two = iris_jobs(tmp_path, tmp_path / "three", [None] * 3), iris_jobs(tmp_path, tmp_path / "two", [None] * 3)
    train_stacked(three)
    train_stacked(two[1:])
    for a, b in zip(three[1:], two[1:]):
        assert_close_runs(a.out_dir, b.out_dir)
