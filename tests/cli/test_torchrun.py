"""Data parallelism on the real engine: torchrun --nproc_per_node=2 with gloo on the CPU.

Each launch runs tests/cli_worker.py, which runs the command as open_prune.py does and records,
per rank, the in-memory weights when each training ended and every file the rank wrote. The
training set has 251 examples, so with a global batch of 64 the last batch (59) splits 29/30:
the gradient scaling must hold for unequal slices too.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import open_prune
from datasets.memory_loader import InMemoryLoader
from datasets.shards import Shard
from foundations.errors import UserError
from platforms.distributed import World, use_sync_batchnorm
from tests.processes import REPO, WORKER, env, evaluations, free_port, one_thread, wait_for, worker  # noqa: F401
from tests.tiny_data import write_tiny_mnist
from training.loop import check_world

pytestmark = pytest.mark.usefixtures("one_thread")
TORCHRUN = str(Path(sys.executable).with_name("torchrun"))
FLAGS = ["--dataset_name=mnist", "--batch_size=64", "--model_name=mnist_lenet_16_8", "--optimizer_name=sgd",
         "--lr=0.05", "--quiet", "--device=cpu"]


@pytest.fixture(scope="module")
def odd_data(tmp_path_factory) -> Path:
    return write_tiny_mnist(tmp_path_factory.mktemp("odd"), n_train=251, n_test=100)


def torchrun(*argv: str) -> list[str]:
    return [TORCHRUN, "--standalone", "--nproc_per_node=2", WORKER, *argv]


def in_process(*argv: str) -> None:
    assert open_prune.main(list(argv)) == 0


def load(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_two_ranks_train_and_prune_like_one_process_and_only_rank_0_writes(tmp_path, odd_data):
    """IMP (trunk, then one level under a mask computed on rank 0) under torchrun: both ranks end
    with the same weights, within 1e-5 of one process with the same global batch."""
    run = ["branch", "iterative", *FLAGS, "--training_steps=4ep", "--levels=1", f"--dataset_root={odd_data}"]
    observe = tmp_path / "observed"
    observe.mkdir()
    result = subprocess.run(torchrun(*run, f"--root={tmp_path / 'ddp'}"), cwd=REPO, env=env(OBSERVE_DIR=str(observe)),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    in_process(*run, f"--root={tmp_path / 'one'}")
    assert result.stdout.count("branch iterative:") == 1  # the table, printed by rank 0 only

    ranks = [torch.load(observe / f"rank_{r}.pt", weights_only=True) for r in (0, 1)]
    ddp_trunk = load(next((tmp_path / "ddp").glob("*/replicate_1/main/model_ep4_it0.pt")))
    one_trunk = load(next((tmp_path / "one").glob("*/replicate_1/main/model_ep4_it0.pt")))
    ddp_level = load(next((tmp_path / "ddp").glob("*/replicate_1/branch_iterative_*/level_1/model_ep4_it0.pt")))
    one_level = load(next((tmp_path / "one").glob("*/replicate_1/branch_iterative_*/level_1/model_ep4_it0.pt")))
    for i, (ddp_saved, one_saved) in enumerate([(ddp_trunk, one_trunk), (ddp_level, one_level)]):
        rank0, rank1 = ranks[0]["finals"][i], ranks[1]["finals"][i]
        assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)  # the ranks never drifted apart
        assert all(torch.equal(rank0[k], ddp_saved[k]) for k in rank0)  # rank 0's weights are the saved ones
        assert max_difference(ddp_saved, one_saved) < 1e-5
    mask = load(next((tmp_path / "ddp").glob("*/replicate_1/branch_iterative_*/level_1/mask.pt")))
    one_mask = load(next((tmp_path / "one").glob("*/replicate_1/branch_iterative_*/level_1/mask.pt")))
    assert all(torch.equal(mask[k], one_mask[k]) for k in mask)
    assert all((ddp_level[k][~mask[k]] == 0).all() for k in mask)  # pruned weights stayed exactly zero

    ddp_metrics = records(next((tmp_path / "ddp").glob("*/replicate_1/main")))
    one_metrics = records(next((tmp_path / "one").glob("*/replicate_1/main")))
    assert [(r["iteration"], r["name"]) for r in ddp_metrics] == [(r["iteration"], r["name"]) for r in one_metrics]
    for ours, single in zip(ddp_metrics, one_metrics):  # evaluation summed over both ranks' shares
        assert ours["value"] == pytest.approx(single["value"], abs=1e-5)
    assert json.loads(next((tmp_path / "ddp").glob("*/replicate_1/main/done.json")).read_text())["processes"] == 2

    runs_root = str(tmp_path / "ddp")
    assert any(path.startswith(runs_root) for path in ranks[0]["touched"])
    assert not [path for path in ranks[1]["touched"] if path.startswith(runs_root)]


def test_both_ranks_stop_at_the_same_step_on_sigterm_and_resume_in_one_process(tmp_path, odd_data):
    run = ["train", *FLAGS, "--batch_size=8", "--training_steps=20ep", "--eval_every=2ep", f"--dataset_root={odd_data}"]
    root = tmp_path / "ddp"
    process = subprocess.Popen(torchrun(*run, f"--root={root}"), cwd=REPO, env=env(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        metrics = wait_for(lambda: next((path for path in root.glob("*/replicate_1/main/metrics.jsonl")
                                         if evaluations(path) >= 2), None),
                           "the second evaluation", alive=lambda: process.poll() is None)
        process.send_signal(signal.SIGTERM)  # torchrun passes it to both ranks
        _, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode != 0
    assert err.count("SIGTERM received: checkpointed") == 1  # one line, from rank 0
    run_dir = metrics.parent
    stopped = torch.load(run_dir / "checkpoint.pt", weights_only=True)["iteration"]
    assert 0 < stopped < 640 and not (run_dir / "done.json").exists()

    in_process(*run, f"--root={root}")  # resume under 1 process
    in_process(*run, f"--root={tmp_path / 'one'}")  # never interrupted
    resumed = load(run_dir / "model_ep20_it0.pt")
    reference = load(next((tmp_path / "one").glob("*/replicate_1/main/model_ep20_it0.pt")))
    assert max_difference(resumed, reference) < 1e-5
    evaluated = [r["iteration"] for r in records(run_dir) if r["name"] == "test_accuracy"]
    assert evaluated == list(range(0, 641, 64))  # each evaluation once, across the two sessions


def test_a_world_size_that_does_not_divide_the_batch_is_one_line_and_exit_2(tmp_path, odd_data):
    """Two processes with the environment torchrun gives its workers, and a global batch of 63."""
    port = str(free_port())
    processes = [subprocess.Popen(
        worker("train", *FLAGS, "--batch_size=63", "--training_steps=1ep", f"--dataset_root={odd_data}",
               f"--root={tmp_path / 'runs'}"), cwd=REPO, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=env(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=port))
        for rank in (0, 1)]
    outputs = [process.communicate(timeout=180) for process in processes]
    assert [process.returncode for process in processes] == [2, 2]
    errors = [err.strip() for _, err in outputs]
    assert errors[1] == ""  # rank 1 says nothing: rank 0 speaks for the run
    assert len(errors[0].splitlines()) == 1 and "--batch_size=63" in errors[0] and "divisible by 2" in errors[0]
    assert not (tmp_path / "runs").exists()


def test_the_checks_before_splitting_a_loader():
    check_world(_loader(num_examples=102, batch_size=10), World(0, 2))  # 10 and the last 2 split in two
    with pytest.raises(UserError, match="divisible by 3, or --nproc_per_node=2"):
        check_world(_loader(num_examples=102, batch_size=10), World(0, 3))
    with pytest.raises(UserError, match="last batch of each epoch holds 1 example"):
        check_world(_loader(num_examples=101, batch_size=10), World(0, 2))


def _loader(num_examples: int, batch_size: int, padding: int | None = None) -> InMemoryLoader:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (num_examples, 3, 6, 6), dtype=torch.uint8, generator=generator)
    labels = torch.arange(num_examples) % 4
    return InMemoryLoader(images, labels, num_classes=4, batch_size=batch_size, mean=(0.5,) * 3, std=(0.25,) * 3,
                          transformation_seed=7, augment_padding=padding)


@pytest.mark.parametrize("world_size", [2, 3])
def test_rank_slices_put_together_are_the_single_process_batch(world_size):
    """Same order, same augmentation: concatenating the ranks' slices of each batch gives the
    batch one process sees (the last, short one too)."""
    whole = _loader(num_examples=50, batch_size=12, padding=2)
    parts = [whole.sharded(rank, world_size) for rank in range(world_size)]
    for start in (0, 2):
        expected = list(whole.batches(epoch=1, start=start, order_seed=5))
        sliced = zip(*(part.batches(epoch=1, start=start, order_seed=5) for part in parts))
        for (x, y), pieces in zip(expected, sliced, strict=True):
            assert torch.equal(torch.cat([p[0] for p in pieces]), x)
            assert torch.equal(torch.cat([p[1] for p in pieces]), y)
    assert all(len(part) == len(whole) and part.num_examples == whole.num_examples for part in parts)


def test_evaluation_shards_take_every_batch_exactly_once():
    whole = _loader(num_examples=50, batch_size=12)
    batches = [y for _, y in whole.batches(0)]
    taken = [[y for _, y in whole.sharded(rank, 3, whole_batches=True).batches(0)] for rank in range(3)]
    assert [len(t) for t in taken] == [2, 2, 1]
    assert all(torch.equal(a, b) for a, b in zip(batches, [taken[i % 3][i // 3] for i in range(5)]))
    assert Shard(1, 4).bounds(0, 10) == (2, 5) and Shard(3, 4).bounds(0, 10) == (7, 10)


def test_sync_batchnorm_swaps_the_layers_in_place_and_keeps_every_tensor():
    head = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(5), torch.nn.BatchNorm1d(5))
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), head)
    model(torch.randn(6, 3, 8, 8))  # running statistics away from their initial values
    before = {name: tensor for name, tensor in model.state_dict(keep_vars=True).items()}
    use_sync_batchnorm(model)
    assert isinstance(model[1], torch.nn.SyncBatchNorm) and isinstance(model[2][2], torch.nn.SyncBatchNorm)
    after = model.state_dict(keep_vars=True)
    assert after.keys() == before.keys() and all(after[name] is before[name] for name in before)
