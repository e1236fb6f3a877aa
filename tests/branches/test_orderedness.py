"""The orderedness branch end to end through the CLI on xor and sine, each result against an oracle:
brute-force orderedness of the saved weights, a hand-written training loop with the rule after
every step, the trunk itself (a rule that prunes nothing), the seeded random mask, a bitwise
resume after a kill, and one clear line for every bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import branches.orderedness.orderedness as branch_module
from branches.orderedness import step_rules
from models import registry
from orderedness import brute_force_orderedness, permute
from pruning.rules.random import RandomMask
from tests.cli.test_train import Kill, one_line_error
from training.metrics import read_records

XOR = ["--default_hparams=xor_complete_5", "--quiet"]
SINE = ["--default_hparams=sine_complete_8", "--quiet"]
UNITS, COLUMNS = 6, 8  # xor_complete_5: H + O = 6 units, 2 inputs


def load(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def location(cli, *argv, root_dir=None) -> Path:
    code, out, err = cli(*argv, "--display_output_location", root_dir=root_dir)
    assert code == 0, err
    return Path(out.strip())


def run_branch(cli, *flags, task=XOR, root_dir=None) -> Path:
    code, out, err = cli("branch", "orderedness", *task, *flags, root_dir=root_dir)
    assert code == 0, err
    assert "orderedness start -> final" in out and "no pruning (trunk)" in out
    return location(cli, "branch", "orderedness", *task, *flags, root_dir=root_dir)


def series(directory: Path, name: str) -> dict[int, float]:
    values = {}
    for record in read_records(directory / "metrics.jsonl"):
        if record["name"] == name:
            assert record["iteration"] not in values, f"{name} written twice at {record['iteration']}"
            values[record["iteration"]] = record["value"]
    return values


def brute(weight: torch.Tensor) -> float:
    return brute_force_orderedness(weight[:, :UNITS], 1).orderedness.item()


def test_topk_tracks_every_step_with_exact_values_and_saves_everything(cli):
    path = run_branch(cli, "--rule=topk", "--keep=0.5", "--training_steps=12ep")
    trunk = location(cli, "train", *XOR, "--training_steps=12ep")
    for name in ("done.json", "hparams.json", "metrics.jsonl", "orderedness.json", "mask.pt", "sparsity.json",
                 "model_ep0_it0.pt", "model_ep12_it0.pt"):
        assert (path / name).exists(), name
    init, final = load(path / "model_ep0_it0.pt")["weight"], load(path / "model_ep12_it0.pt")["weight"]
    assert torch.equal(init, load(trunk / "model_ep0_it0.pt")["weight"])  # the trunk's initialization

    ordered, density = series(path, "orderedness"), series(path, "density")
    assert sorted(ordered) == list(range(13)) and sorted(density) == list(range(13))
    record = json.loads((path / "orderedness.json").read_text())  # what `runs` and `tree` show of it
    headline = json.loads((path / "branch_done.json").read_text())["headline"]
    assert headline == [["orderedness", record["final"]["orderedness"]],
                        *[[f"Δ {key}", null["delta"]] for key, null in record["nulls"].items()]]
    assert density[0] == 1.0 and all(density[i] == 24 / 48 for i in range(1, 13))  # floor(0.5 * 48) kept
    assert ordered[0] == pytest.approx(brute(init), abs=1e-12)
    assert ordered[12] == pytest.approx(brute(final), abs=1e-12)

    record = json.loads((path / "orderedness.json").read_text())
    assert record["start"]["orderedness"] == ordered[0] and record["final"]["orderedness"] == ordered[12]
    block = final[:, :UNITS].double().abs()
    best = permute(block, torch.tensor(record["final"]["permutation"]))
    assert record["final"]["permutation"][0] == 0  # the output stays first
    assert 1 - torch.tril(best, -1).sum() / block.sum() == pytest.approx(ordered[12], abs=1e-12)
    assert record["final"]["self_loop_fraction"] == pytest.approx((block.diagonal().sum() / block.sum()).item())
    assert record["constraint"] is False and record["settings"] == {"keep": 0.5}
    mask = load(path / "mask.pt")["weight"]
    assert torch.equal(mask, final != 0) and int(mask.sum()) == 24


def test_a_rule_that_prunes_nothing_reproduces_the_trunk_bitwise(cli):
    path = run_branch(cli, "--rule=topk", "--keep=1.0", "--training_steps=10ep")
    trunk = location(cli, "train", *XOR, "--training_steps=10ep")
    a, b = load(path / "model_ep10_it0.pt"), load(trunk / "model_ep10_it0.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    record = json.loads((path / "orderedness.json").read_text())
    assert record["final"]["orderedness"] == record["no_pruning"]["final"]["orderedness"]


def complete_layer() -> torch.nn.Module:
    spec = SimpleNamespace(model_name="xor_complete_5", model_init="standard_normal", batchnorm_init="uniform",
                           batchnorm_frozen=False, output_frozen=False)
    return registry.get(spec, (2,), 1, seed=0)


def kept_fraction(keep: float, x: float) -> float:
    return 1 - (1 - keep) * math.sin(math.pi * x / 2) ** 4


@pytest.mark.parametrize("progress, xs", [("epoch", [i / 6 for i in range(6)]),
                                          ("step", [(i + 1) / 6 for i in range(6)])])
def test_dyn_topk_equals_a_hand_written_loop_with_the_rule_after_each_step(cli, progress, xs):
    path = run_branch(cli, "--rule=dyn_topk", "--keep=0.25", f"--progress={progress}", "--training_steps=6ep")
    model = complete_layer()
    model.load_state_dict(load(path / "model_ep0_it0.pt"))
    x = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = torch.tensor([[0.0], [1.0], [1.0], [0.0]])
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    counts = []
    for step in range(6):  # batch 4 = the whole truth table: one step per epoch
        optimizer.zero_grad()
        ((model(x) - y) ** 2).mean().backward()
        optimizer.step()
        count = math.floor(kept_fraction(0.25, xs[step]) * 48)
        with torch.no_grad():
            w = model.weight
            cut = w.abs().flatten().topk(count).values.min()
            w.masked_fill_(w.abs() < cut, 0)
        counts.append(count)
    torch.testing.assert_close(load(path / "model_ep6_it0.pt")["weight"], model.weight.detach(), atol=1e-6, rtol=0)
    density = series(path, "density")
    assert [density[i] for i in range(1, 7)] == [c / 48 for c in counts]
    # epoch progress starts at 0 (nothing pruned) and stops at 5/6 (16 kept); step progress reaches 1 (12 kept)
    assert (counts[0], counts[-1]) == ((48, 16) if progress == "epoch" else (47, 12))


def test_the_random_rule_keeps_its_seeded_mask_and_the_init_null_uses_it(cli):
    path = run_branch(cli, "--rule=random", "--prune_fraction=0.5", "--training_steps=8ep")
    seed = json.loads((path / "hparams.json").read_text())["seeds"]["orderedness"]
    mask = RandomMask(0.5, seed).draw(torch.Size([UNITS, COLUMNS]))
    final, init = load(path / "model_ep8_it0.pt")["weight"], load(path / "model_ep0_it0.pt")["weight"]
    assert torch.equal(final != 0, mask)  # pruned stay zero, the rest trained (nonzero)
    density = series(path, "density")
    assert all(density[i] == int(mask.sum()) / 48 for i in range(1, 9))
    record = json.loads((path / "orderedness.json").read_text())
    assert record["nulls"]["init"]["mean"] == pytest.approx(brute(init * mask), abs=1e-12)
    assert record["nulls"]["random"]["density"] == pytest.approx(mask.float().mean().item())
    assert record["nulls"]["random"]["pruned"] == "random_positions" and record["nulls"]["init"]["pruned"] == "replay"


def test_a_killed_branch_resumes_bitwise_with_its_frozen_threshold(cli, tmp_path, monkeypatch):
    # Scores flushed at every evaluation with 4 copies waiting: the checkpoint at 15 (1 epoch) holds
    # the copy of step 15, the flush at 21 writes it, the kill comes at 25, so the resume must forget
    # that line and write it again where the uninterrupted run did.
    monkeypatch.setattr(step_rules, "FLUSH_AT", 4)
    flags = ["--rule=threshold", "--training_steps=2ep", "--eval_every=7it", "--null_samples=20"]
    whole = run_branch(cli, *flags, task=SINE)
    real_train = branch_module.train

    def killed(*args, **kwargs):
        return real_train(*args, **{**kwargs, "hooks": [*kwargs["hooks"], Kill(25)]})

    monkeypatch.setattr(branch_module, "train", killed)
    root = tmp_path / "killed"
    code, _, err = cli("branch", "orderedness", *SINE, *flags, root_dir=root)
    assert code == 130 and "resume" in err
    killed_dir = next(root.rglob("branch_orderedness_*"))
    assert 21 in series(killed_dir, "orderedness") and 15 in series(killed_dir, "orderedness")
    monkeypatch.setattr(branch_module, "train", real_train)
    resumed = run_branch(cli, *flags, task=SINE, root_dir=root)
    a, b = load(whole / "model_ep2_it0.pt"), load(resumed / "model_ep2_it0.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (whole / "metrics.jsonl").read_text() == (resumed / "metrics.jsonl").read_text()
    assert (whole / "orderedness.json").read_text() == (resumed / "orderedness.json").read_text()
    assert sorted(series(resumed, "orderedness")) == list(range(31))


@pytest.mark.parametrize("flags, needles", [
    (["--rule=prune_all"], ["unknown pruning rule", "topk", "constraints"]),
    (["--rule=topk", "--keep=1.5"], ["keep=1.5", "(0, 1]"]),
    (["--rule=topk"], ["needs keep"]),
    (["--rule=random", "--prune_fraction=1.0"], ["prune_fraction=1.0", "[0, 1)"]),
    (["--rule=tril_prune", "--keep=0.5"], ["takes no keep"]),
    (["--rule=topk", "--keep=0.5", "--track_every=often"], ["track_every", "500it"]),
    (["--rule=topk", "--keep=0.5", "--track_every=0it"], ["track_every", "at least 1it"]),
    (["--rule=topk", "--keep=0.5", "--null_samples=0"], ["null_samples"]),
])
def test_bad_input_is_one_clear_line_and_trains_nothing(cli, flags, needles):
    code, _, err = cli("branch", "orderedness", *XOR, *flags)
    one_line_error(code, err, *needles)
    assert not cli.root.exists() or not any(cli.root.rglob("done.json"))


def test_a_model_without_a_complete_layer_is_refused(cli):
    code, _, err = cli("branch", "orderedness", "--default_hparams=xor_sigmoid_2", "--quiet", "--rule=topk",
                       "--keep=0.5")
    one_line_error(code, err, "xor_sigmoid_2 has none", "xor_complete_5")
    assert not cli.root.exists() or not any(cli.root.rglob("done.json"))


@pytest.mark.parametrize("flags, needles, advice", [
    (["--model_name=xor_complete_21"], ["21 hidden units", "--allow_heuristic"], ["--allow_heuristic"]),
    (["--dataset_name=iris"], ["classification", "--loss=mse"], ["--loss=mse"]),
])
def test_refusals_give_advice_that_works(cli, flags, needles, advice):
    argv = ["branch", "orderedness", *XOR, *flags, "--rule=topk", "--keep=0.5", "--training_steps=2ep",
            "--null_samples=4"]
    code, _, err = cli(*argv)
    one_line_error(code, err, *needles)
    assert not cli.root.exists() or not any(cli.root.rglob("done.json"))
    code, _, err = cli(*argv, *advice)
    assert code == 0, err
    path = location(cli, *argv, *advice)
    record = json.loads((path / "orderedness.json").read_text())
    assert 0 <= record["final"]["orderedness"] <= 1
    if "--allow_heuristic" in advice:
        assert record["exact"] is False and record["final"]["gap"] >= 0
        assert "orderedness_gap" in {r["name"] for r in read_records(path / "metrics.jsonl")}
