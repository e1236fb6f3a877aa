"""Stacked training (training/stacked/, runs/stack_plan.py) against the same runs trained alone.

Tolerance: a stacked member equals its run trained alone to rtol 1e-4 / atol 1e-5 on the final
weights and 1e-4 on the logged losses, not bitwise: the stack's batched matrix products (bmm,
vmap) sum in another order than one run's addmm, and the per-member loss mean is not
cross_entropy's own reduction, so each step may differ in the last bits, and a few steps of SGD
carry that along. A killed stack resumes bitwise (its members' own checkpoints are the state)."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import datasets.registry as datasets_registry
import models.registry as models_registry
import open_prune
from foundations import paths
from foundations.bundles import TrainingHparams
from platforms.platform import Platform
from pruning.mask import Mask
from tests.conftest import TINY
from training import checkpoint
from training.hooks import Hook
from training.interrupts import Interrupted
from training.loop import DECLINED, Boundaries, dispatching_to, train
from training.masking import MaskHook
from training.stacked.boundary import stack_checkpoint_spacing
from training.stacked.job import TrainJob, keeps_a_fixed_mask, stack_key, stacks
from training.stacked.loop import train_stacked
from training.stacked.optim import StackedOptimizer

RTOL, ATOL = 1e-4, 1e-5


def loaders(name: str, root: Path, seed: int, batch: int):
    h = SimpleNamespace(dataset_name=name, batch_size=batch, do_not_augment=True, transformation_seed=seed,
                        subsample_fraction=None, random_labels_fraction=None)
    return [datasets_registry.get(h, split, root=root, device="cpu") for split in (True, False)]


def network(name: str, seed: int, shape, classes: int) -> torch.nn.Module:
    h = SimpleNamespace(model_name=name, model_init="kaiming_normal", batchnorm_init="uniform",
                        batchnorm_frozen=False, output_frozen=False)
    return models_registry.get(h, shape, classes, seed=seed)


def platform(root: Path, **extra) -> Platform:
    return Platform(root=root, dataset_root=root, device=torch.device("cpu"), quiet=True, **extra)


def lenet_jobs(dataset_root, out: Path, h: TrainingHparams, seeds, masks=None, wrap=None) -> list[TrainJob]:
    jobs = []
    for i, seed in enumerate(seeds):
        train_loader, test_loader = loaders("mnist", dataset_root, seed, 64)
        hooks = (MaskHook(masks[i]),) if masks and masks[i] is not None else ()
        jobs.append(TrainJob(network("mnist_lenet_16_8", seed, (1, 28, 28), 10), h,
                             wrap(train_loader) if wrap else train_loader, test_loader, out / f"run{seed}",
                             platform(out), seed, hooks=hooks))
    return jobs


def final_weights(run_dir: Path) -> dict:
    done = json.loads((run_dir / paths.DONE).read_text())
    epochs, iterations = map(int, done["final_step"].rstrip("it").split("ep"))
    return checkpoint.load_model_state(run_dir / paths.model_file(epochs, iterations))


def assert_close_runs(alone: Path, stacked: Path) -> None:
    a_done, b_done = (json.loads((d / paths.DONE).read_text()) for d in (alone, stacked))
    assert a_done["final_step"] == b_done["final_step"]
    for name, value in a_done["metrics"].items():
        assert b_done["metrics"][name] == pytest.approx(value, rel=1e-4, abs=1e-6)
    if not (alone / paths.METRICS).exists():  # IMP's level 0 is the trunk's (its done.json only)
        return
    a, b = final_weights(alone), final_weights(stacked)
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=RTOL, atol=ATOL)
    logs = [[json.loads(line) for line in (d / paths.METRICS).read_text().splitlines()] for d in (alone, stacked)]
    assert [(r["iteration"], r["name"]) for r in logs[0]] == [(r["iteration"], r["name"]) for r in logs[1]]
    for x, y in zip(*logs):
        assert y["value"] == pytest.approx(x["value"], rel=1e-4, abs=1e-6)


def alone_runs(jobs: list[TrainJob], out: Path) -> list[Path]:
    dirs = []
    for job in jobs:
        directory = out / f"alone_{job.out_dir.name}"
        train(job.model, job.h, job.train_loader, job.test_loader, directory, platform=job.platform,
              data_order_seed=job.data_order_seed, hooks=job.hooks)
        dirs.append(directory)
    return dirs


def random_mask(model: torch.nn.Module, density: float, seed: int) -> Mask:
    g = torch.Generator().manual_seed(seed)
    return Mask({name: torch.rand(model.state_dict()[name].shape, generator=g) < density
                 for name in model.prunable_layer_names})


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_lenet_replicates_with_masks_match_alone(dataset_root, tmp_path, optimizer):
    torch.set_num_threads(1)
    h = TrainingHparams(optimizer, 0.05, "3ep", momentum=0.9 if optimizer == "sgd" else None, weight_decay=1e-4,
                        milestone_steps="2ep", gamma=0.1)
    template = network("mnist_lenet_16_8", 0, (1, 28, 28), 10)
    masks = [None, random_mask(template, 0.5, 1), random_mask(template, 0.2, 2)]
    stacked = lenet_jobs(dataset_root, tmp_path / "stack", h, [1, 2, 3], masks)
    keys = {stack_key(job)[0] for job in stacked}
    assert len(keys) == 1 and None not in keys
    alone = alone_runs(lenet_jobs(dataset_root, tmp_path / "alone", h, [1, 2, 3], masks), tmp_path)
    results = train_stacked(stacked, note={"stack": 1})
    assert all(isinstance(r, dict) for r in results)
    for a, job, mask in zip(alone, stacked, masks):
        assert_close_runs(a, job.out_dir)
        assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in job.out_dir.iterdir())
        done = json.loads((job.out_dir / paths.DONE).read_text())
        assert done["stacked"]["members"] == 3 and len(done["stacked"]["with"]) == 2
        if mask is not None:  # pruned weights are exactly zero
            weights = final_weights(job.out_dir)
            assert all(not weights[name][~mask[name]].any() for name in mask)


def test_table_mlp_with_per_member_learning_rates(tmp_path):
    """A tiny sigmoid MLP on iris (batch 1, shuffled orders), each member its own lr and momentum."""
    torch.set_num_threads(1)
    jobs, alone_jobs = [], []
    for seed, (lr, momentum) in enumerate([(0.05, 0.0), (0.1, 0.9), (0.02, 0.5)]):
        h = TrainingHparams("sgd", lr, "2ep", momentum=momentum, loss="sigmoid_mse")
        for bucket, out in ((jobs, tmp_path / "stack"), (alone_jobs, tmp_path / "alone")):
            train_loader, test_loader = loaders("iris", tmp_path, seed, 1)
            bucket.append(TrainJob(network("iris_sigmoid_6", seed, (4,), 3), h, train_loader, test_loader,
                                   out / f"run{seed}", platform(tmp_path), seed))
    alone = alone_runs(alone_jobs, tmp_path)
    train_stacked(jobs)
    for a, job in zip(alone, jobs):
        assert_close_runs(a, job.out_dir)


def test_optimizer_state_round_trips_through_torch(tmp_path):
    """export_member writes what torch.optim would hold after the same steps (an oracle: torch's Adam)."""
    torch.manual_seed(0)
    weights = torch.randn(2, 5)
    stacked = [weights.clone()]
    h = TrainingHparams("adam", 0.01, "1ep", weight_decay=0.1)
    ours = StackedOptimizer([h, h], stacked)
    params = [torch.nn.Parameter(weights[i].clone()) for i in range(2)]
    theirs = [torch.optim.Adam([p], lr=0.01, weight_decay=0.1, foreach=True) for p in params]
    for _ in range(3):
        grads = torch.randn(2, 5)
        ours.step([grads], [0.01, 0.01])
        for i, (p, optimizer) in enumerate(zip(params, theirs)):
            p.grad = grads[i].clone()
            optimizer.step()
    for i, (p, optimizer) in enumerate(zip(params, theirs)):
        torch.testing.assert_close(stacked[0][i], p.detach(), rtol=0, atol=1e-7)
        exported = torch.optim.Adam([torch.nn.Parameter(torch.zeros(5))], lr=0.01, weight_decay=0.1, foreach=True)
        ours.export_member(i, exported, 0.01)
        state, expected = list(exported.state.values())[0], optimizer.state[p]
        assert state.keys() == expected.keys() and float(state["step"]) == float(expected["step"])
        torch.testing.assert_close(state["exp_avg"], expected["exp_avg"])


class SignalAfter:
    """A loader that sends SIGUSR1 to this process when batch `at` of epoch 1 is drawn (a kill
    in the middle of training; the loop checkpoints at the next step)."""

    def __init__(self, loader, at: int):
        self.loader, self.at = loader, at

    def __getattr__(self, name):
        return getattr(self.loader, name)

    def __len__(self):
        return len(self.loader)

    def batches(self, epoch, start=0, order_seed=None):
        for index, batch in enumerate(self.loader.batches(epoch, start, order_seed), start):
            if epoch == 1 and index == self.at:
                os.kill(os.getpid(), signal.SIGUSR1)
            yield batch


def test_killed_stack_resumes_bitwise_and_each_member_alone(dataset_root, tmp_path):
    torch.set_num_threads(1)
    h = TrainingHparams("sgd", 0.05, "3ep", momentum=0.9, weight_decay=1e-4)
    whole = lenet_jobs(dataset_root, tmp_path / "whole", h, [1, 2])
    train_stacked(whole)
    killed = lenet_jobs(dataset_root, tmp_path / "killed", h, [1, 2], wrap=lambda loader: SignalAfter(loader, 1))
    with pytest.raises(Interrupted):
        train_stacked(killed)
    assert all((job.out_dir / paths.CHECKPOINT).exists() for job in killed)
    for job in killed:  # a copy of each member's directory, to resume alone
        (tmp_path / f"alone_{job.out_dir.name}").mkdir()
        for f in job.out_dir.iterdir():
            (tmp_path / f"alone_{job.out_dir.name}" / f.name).write_bytes(f.read_bytes())
    resumed = lenet_jobs(dataset_root, tmp_path / "killed", h, [1, 2])
    train_stacked(resumed)
    for a, b in zip(whole, resumed):
        x, y = final_weights(a.out_dir), final_weights(b.out_dir)
        assert all(torch.equal(x[name], y[name]) for name in x)
        assert (a.out_dir / paths.METRICS).read_text() == (b.out_dir / paths.METRICS).read_text()
    for job, seed in zip(lenet_jobs(dataset_root, tmp_path, h, [1, 2]), [1, 2]):
        directory = tmp_path / f"alone_run{seed}"
        train(job.model, h, job.train_loader, job.test_loader, directory, platform=job.platform, data_order_seed=seed)
        assert_close_runs(whole[seed - 1].out_dir, directory)


def test_jobs_that_cannot_stack_say_why(dataset_root, tmp_path):
    h = TrainingHparams("adamw", 0.01, "1ep")
    job = lenet_jobs(dataset_root, tmp_path, h, [1])[0]
    key, why = stack_key(job)
    assert key is None and "adamw" in why


def test_submit_stack_trains_a_grid_like_one_after_another(dataset_root, tmp_path, capsys):
    """Replicates, then oneshot strategies x fractions x replicates, through the CLI: the same
    results as `submit --local` without --stack, and `runs` lists both roots alike."""
    torch.set_num_threads(1)
    roots = {"stacked": tmp_path / "stacked", "plain": tmp_path / "plain"}
    grid = ["branch", "oneshot", *TINY, "--replicate=1-2", "--strategy=magnitude,random", "--prune_fraction=0.5,0.8"]
    for kind, root in roots.items():
        stack = ["--stack=3"] if kind == "stacked" else []
        common = [f"--root={root}", f"--dataset_root={dataset_root}", "--device=cpu"]
        assert open_prune.main(["submit", "--local", *stack, "--", *grid, *common]) == 0
    out = capsys.readouterr().out
    assert "stack 1: training 2 runs together" in out  # the two trunks
    assert "training 3 runs together" in out
    stacked = sorted(p.parent.relative_to(roots["stacked"]) for p in roots["stacked"].rglob(paths.DONE))
    plain = sorted(p.parent.relative_to(roots["plain"]) for p in roots["plain"].rglob(paths.DONE))
    assert stacked == plain and len(stacked) == 10
    for relative in stacked:
        assert_close_runs(roots["plain"] / relative, roots["stacked"] / relative)


def test_stack_needs_local(tmp_path, capsys):
    assert open_prune.main(["submit", "--stack", "--", "train", *TINY, f"--root={tmp_path}"]) != 0
    assert "add --local" in capsys.readouterr().err


def test_batchnorm_resnet_under_vmap_matches_alone(dataset_root, tmp_path):
    """The general form (functional_call under vmap): a ResNet with BatchNorm, whose running
    statistics are stacked buffers updated per member, and whose evaluation uses them."""
    torch.set_num_threads(1)
    h = TrainingHparams("sgd", 0.05, "6it", momentum=0.9, weight_decay=1e-4)
    built = {}
    for kind in ("stack", "alone"):
        built[kind] = []
        for seed in (1, 2):
            train_loader, test_loader = loaders("mnist", dataset_root, seed, 32)
            built[kind].append(TrainJob(network("resnet_8_4", seed, (1, 28, 28), 10), h, train_loader, test_loader,
                                        tmp_path / kind / f"run{seed}", platform(tmp_path), seed))
    assert not hasattr(built["stack"][0].model, "fc_layers")  # not the LeNet fast path
    alone = alone_runs(built["alone"], tmp_path)
    train_stacked(built["stack"])
    for a, job in zip(alone, built["stack"]):
        assert_close_runs(a, job.out_dir)


@pytest.mark.parametrize("branch, flags, together", [
    ("iterative", ["--levels=2"], {2: 3}), ("static-sparse", ["--train_density=0.3"], {2: 2}),
    ("reinitialize", ["--levels=2", "--control=reinit"], {2: 3, 4: 1}),
    ("set", ["--train_density=0.3", "--update_every=2it"], {2: 2}),
    ("rigl", ["--train_density=0.3", "--update_every=2it"], {2: 2}),
    ("gmp", ["--final_density=0.3", "--prune_every=2it"], {2: 2}),
    ("spam", ["--marglik_frequency=1", "--hyper_steps=10", "--criteria=opd,magnitude", "--sparsities=50"], {2: 2})])
def test_imp_levels_and_static_sparse_stack_like_one_after_another(dataset_root, tmp_path, capsys, branch, flags,
                                                                   together):
    """IMP's replicates stack level by level; static-sparse's fixed masks stack, and so do the
    masks SET, RigL and GMP change every other step; a control's levels (train_together) stack
    across levels and replicates, once the tickets are made. Same files, same results (the masks
    and their update history included) as without --stack."""
    torch.set_num_threads(1)
    roots = {"stacked": tmp_path / "stacked", "plain": tmp_path / "plain"}
    for kind, root in roots.items():
        stack = ["--stack"] if kind == "stacked" else []
        argv = ["submit", "--local", *stack, "--", "branch", branch, *TINY, "--replicate=1-2", *flags,
                f"--root={root}", f"--dataset_root={dataset_root}", "--device=cpu"]
        assert open_prune.main(argv) == 0
    out = capsys.readouterr().out
    assert {size: out.count(f"training {size} runs together") for size in together} == together
    assert "trains alone" not in out and "failed" not in out
    listing = {kind: sorted(str(p.relative_to(root)) for p in root.rglob("*")) for kind, root in roots.items()}
    assert listing["stacked"] == listing["plain"]
    for relative in (p.parent.relative_to(roots["plain"]) for p in roots["plain"].rglob(paths.DONE)):
        assert_close_runs(roots["plain"] / relative, roots["stacked"] / relative)
    for relative in (p.relative_to(roots["plain"]) for p in roots["plain"].rglob("mask.pt")):
        plain, stacked = (torch.load(root / relative, weights_only=True) for root in roots.values())
        assert all(torch.equal(plain[name], stacked[name]) for name in plain)
    for relative in (p.relative_to(roots["plain"]) for p in roots["plain"].rglob("updates.json")):
        assert (roots["plain"] / relative).read_text() == (roots["stacked"] / relative).read_text()


class ItemNet(torch.nn.Module):
    """A network whose forward reads a number on the host, which vmap refuses."""

    def __init__(self, seed: int):
        super().__init__()
        torch.manual_seed(seed)
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(x) * (1.0 if self.fc.weight.sum().item() != 0 else 2.0)


def test_a_stack_the_forward_refuses_falls_back_to_one_after_another(tmp_path, capsys):
    """The coordinator (runs/stack_plan.py) receives the runs' `train` calls; a stack that fails
    (here vmap refusing .item()) trains its runs alone, from their initial weights."""
    from runs.stack_plan import Coordinator
    torch.set_num_threads(1)
    h = TrainingHparams("sgd", 0.05, "1ep", loss="sigmoid_mse")

    def thunk(seed: int, out: Path):
        train_loader, test_loader = loaders("iris", tmp_path, seed, 8)
        return lambda: train(ItemNet(seed), h, train_loader, test_loader, out, platform=platform(tmp_path),
                             data_order_seed=seed)

    outcomes = Coordinator(size=None).run([thunk(seed, tmp_path / "stack" / f"run{seed}") for seed in (1, 2)])
    assert all(isinstance(o, dict) for o in outcomes)
    assert "stack 1 failed" in capsys.readouterr().out
    for seed in (1, 2):
        thunk(seed, tmp_path / "alone" / f"run{seed}")()
        assert_close_runs(tmp_path / "alone" / f"run{seed}", tmp_path / "stack" / f"run{seed}")
        assert "stacked" not in json.loads((tmp_path / "stack" / f"run{seed}" / paths.DONE).read_text())


def test_train_asks_the_dispatch_handler_first_in_its_own_context_only(tmp_path):
    """training.loop.dispatching_to: the handler gets `train`'s arguments and answers for it, or
    declines (the loop trains); other threads and code after the block train as usual."""
    h = TrainingHparams("sgd", 0.05, "1ep", loss="sigmoid_mse")
    train_loader, test_loader = loaders("iris", tmp_path, 1, 8)
    calls = []

    def handler(*args, **kwargs):
        calls.append(TrainJob.from_call(*args, **kwargs))
        return {"from": "handler"} if len(calls) == 1 else DECLINED

    def run(name: str) -> dict:
        return train(ItemNet(1), h, train_loader, test_loader, tmp_path / name, platform=platform(tmp_path),
                     data_order_seed=1)

    in_thread = []
    with dispatching_to(handler):
        assert run("taken") == {"from": "handler"}
        thread = threading.Thread(target=lambda: in_thread.append(run("thread")))
        thread.start()
        thread.join()
        declined = run("declined")
    after = run("after")
    assert [(c.out_dir.name, c.data_order_seed, c.h) for c in calls] == [("taken", 1, h), ("declined", 1, h)]
    assert not (tmp_path / "taken").exists()
    assert all((tmp_path / name / paths.DONE).exists() for name in ("thread", "declined", "after"))
    assert declined == in_thread[0] == after and "test_loss" in after  # the same run, trained by the loop


def test_hooks_declare_whether_a_stack_may_keep_their_mask():
    """The capabilities (training/hooks.py) that stack_key reads: a fixed mask; a mask the sparse
    methods change at their steps (they override only changes_at and new_mask); not a hook that
    does more per step."""
    from branches.sparse.dynamic import DropAndGrow
    from branches.sparse.gmp import GradualPruning
    from branches.sparse.hook import DynamicMaskHook

    class Logging(DynamicMaskHook):  # does nothing more per step
        def on_end(self, state):
            pass

    class Pruning(DynamicMaskHook):
        def changes_at(self, iteration):
            return iteration == 3

    mask = Mask({"fc.weight": torch.ones(3, 4, dtype=torch.bool)})
    assert keeps_a_fixed_mask(MaskHook(mask)) and keeps_a_fixed_mask(DynamicMaskHook(mask))
    assert keeps_a_fixed_mask(Logging(mask)) and not keeps_a_fixed_mask(Pruning(mask))
    assert not any(keeps_a_fixed_mask(object.__new__(kind)) for kind in (DropAndGrow, GradualPruning))
    assert not keeps_a_fixed_mask(Hook()) and Hook.only_keeps_a_fixed_mask is False

    class Extra(Pruning):  # changes the mask and does more per step: no stacked form
        def after_optimizer_step(self, state):
            super().after_optimizer_step(state)

    assert all(object.__new__(kind).changes_mask_at_steps for kind in (DropAndGrow, GradualPruning, Pruning))
    assert not any(hook.changes_mask_at_steps for hook in (DynamicMaskHook(mask), Logging(mask), Extra(mask), Hook()))
    assert not stacks(Extra(mask)) and stacks(Pruning(mask))

    from branches.spam.online_pruning import OnlinePruningHook
    from branches.spam.prior_training import SpamHook
    from training.stacked.job import steps_each_member
    # SpaM's prior has stacked forms of both its per-step methods; spam-online redefines them
    # (it prunes at its updates) without stacked forms, so it trains alone.
    assert steps_each_member(object.__new__(SpamHook)) and not stacks(object.__new__(OnlinePruningHook))


def test_a_stack_spaces_epoch_checkpoints_by_its_size():
    """Epoch-end checkpoints: the first, then at least 100 steps apart alone, 3 x 100 for 3 members."""
    h = TrainingHparams("sgd", 0.1, "100ep")

    def checkpointed(bounds: Boundaries) -> list[int]:
        last, found = None, []
        for iteration in range(1001):
            if bounds.checkpoints(iteration, last):
                last = iteration
                found.append(iteration)
        return found

    assert checkpointed(Boundaries(h, 10, 0, 1000, None)) == [10 + 100 * k for k in range(10)]
    assert checkpointed(Boundaries(h, 10, 0, 1000, None, epoch_checkpoint_spacing=stack_checkpoint_spacing(3))) \
        == [10, 310, 610, 910]


def test_the_root_write_probe_is_named_per_thread(tmp_path, monkeypatch):
    """Two threads preparing one root at once each touch and remove their own probe file."""
    names, both_inside, real_touch = [], threading.Barrier(2, timeout=30), Path.touch

    def touch(self, *args, **kwargs):
        names.append(self.name)
        both_inside.wait()  # both threads alive here: their idents differ
        return real_touch(self, *args, **kwargs)

    monkeypatch.setattr(Path, "touch", touch)
    root = tmp_path / "root"
    threads = [threading.Thread(target=platform(root).prepare_root) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(names)) == 2 and all(str(os.getpid()) in name for name in names)
    assert list(root.iterdir()) == []
