"""Damaged run files: each kind is damaged the way a kill or a cut copy would, the command is run
again, and it either rebuilds what can be recomputed (checked against the undamaged original) or
prints one line whose advice, when followed, works."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import torch

from tests.cli.test_train import Kill, one_line_error
from tests.conftest import TINY

LEVELS = ["--levels=2"]


def truncate(path: Path, keep: int = 7) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def location(cli, *argv) -> Path:
    code, out, err = cli(*argv, "--display_output_location")
    assert code == 0, err
    return Path(out.strip())


@pytest.fixture
def iterative(cli):
    """A finished two-level iterative branch (and its trunk), and a pristine copy of its files."""
    code, _, err = cli("branch", "iterative", *TINY, *LEVELS)
    assert code == 0, err
    branch = location(cli, "branch", "iterative", *TINY, *LEVELS)
    trunk = location(cli, "train", *TINY)
    pristine = {p: p.read_bytes() for p in [*branch.rglob("*"), *trunk.rglob("*")] if p.is_file()}
    return branch, trunk, pristine


def rerun(cli) -> tuple[int, str, str]:
    return cli("branch", "iterative", *TINY, *LEVELS)


def test_a_truncated_trunk_done_json_is_rebuilt_from_the_final_weights_and_metrics(cli, iterative):
    branch, trunk, pristine = iterative
    original = json.loads(pristine[trunk / "done.json"])
    truncate(trunk / "done.json")
    code, _, err = cli("train", *TINY)
    assert code == 0 and "rebuilt" in err and "done.json" in err
    rebuilt = json.loads((trunk / "done.json").read_text())
    assert rebuilt["metrics"] == original["metrics"] and rebuilt["final_iteration"] == original["final_iteration"]


def test_a_truncated_level_done_json_is_rebuilt_without_retraining(cli, iterative):
    branch, _, pristine = iterative
    level = branch / "level_1"
    truncate(level / "done.json")
    weights_before = (level / "model_ep3_it0.pt").stat().st_mtime_ns
    code, out, err = rerun(cli)
    assert code == 0 and "rebuilt" in err
    rebuilt, original = (json.loads(text)["metrics"] for text in ((level / "done.json").read_text(),
                                                                   pristine[level / "done.json"]))
    assert rebuilt == original
    assert (level / "model_ep3_it0.pt").stat().st_mtime_ns == weights_before  # nothing was retrained


def test_a_truncated_mask_is_recomputed_from_the_level_before(cli, iterative):
    branch, _, pristine = iterative
    mask = branch / "level_2" / "mask.pt"
    truncate(mask)
    code, _, err = rerun(cli)
    assert code == 0 and "recomputing the mask" in err
    restored, original = torch.load(mask, weights_only=True), _load_bytes(pristine[mask])
    assert restored.keys() == original.keys() and all(torch.equal(restored[k], original[k]) for k in original)


def test_a_truncated_sparsity_json_is_rewritten_from_the_mask(cli, iterative):
    branch, _, pristine = iterative
    path = branch / "level_1" / "sparsity.json"
    truncate(path)
    assert rerun(cli)[0] == 0
    assert json.loads(path.read_text()) == json.loads(pristine[path])


def test_a_truncated_hparams_json_is_rewritten_from_the_command(cli, iterative):
    branch, trunk, pristine = iterative
    for directory in (trunk, branch):
        truncate(directory / "hparams.json")
    code, _, err = rerun(cli)
    assert code == 0 and "rewrote" in err
    for directory in (trunk, branch):
        assert json.loads((directory / "hparams.json").read_text()) == json.loads(pristine[directory / "hparams.json"])


def test_a_level_whose_final_weights_are_damaged_is_trained_again_to_the_same_weights(cli, iterative):
    branch, _, pristine = iterative
    weights = branch / "level_1" / "model_ep3_it0.pt"
    truncate(weights, keep=100)
    code, _, err = rerun(cli)
    assert code == 0 and "trains again" in err
    assert weights.read_bytes() == pristine[weights]  # deterministic training: bitwise the same file
    for level in ("level_1", "level_2"):  # level 2 was built on level 1's weights: still the same
        assert (branch / level / "mask.pt").read_bytes() == pristine[branch / level / "mask.pt"]


def test_a_damaged_trunk_weight_file_is_recomputed(cli, iterative):
    _, trunk, pristine = iterative
    weights = trunk / "model_ep0_it0.pt"
    truncate(weights, keep=50)
    code, _, err = cli("branch", "reinitialize", *TINY, *LEVELS, "--control=sign")  # reads the trunk's init
    assert code == 0 and "recomputing" in err
    restored, original = torch.load(weights, weights_only=True), _load_bytes(pristine[weights])
    assert all(torch.equal(restored[k], original[k]) for k in original)


def _load_bytes(data: bytes) -> dict:
    import io
    return torch.load(io.BytesIO(data), weights_only=True)


def test_done_json_that_cannot_be_rebuilt_is_moved_aside_and_the_run_trains_again(cli, iterative):
    _, trunk, pristine = iterative
    truncate(trunk / "done.json")
    (trunk / "model_ep3_it0.pt").unlink()
    code, _, err = cli("train", *TINY)
    assert code == 0 and "trains again" in err and (trunk / "done.json.damaged").exists()
    assert (trunk / "model_ep3_it0.pt").read_bytes() == pristine[trunk / "model_ep3_it0.pt"]


def test_a_half_written_metrics_line_does_not_stop_a_resume(cli, tmp_path, monkeypatch):
    import runs.trunk
    from training import loop
    real = loop.train
    cli("train", *TINY, root_dir=tmp_path / "whole")
    monkeypatch.setattr(runs.trunk, "train",
                        lambda *a, **k: real(*a, **{**k, "hooks": [*k.get("hooks", ()), Kill(6)]}))
    assert cli("train", *TINY, root_dir=tmp_path / "killed")[0] == 130
    monkeypatch.setattr(runs.trunk, "train", real)
    killed = next((tmp_path / "killed").rglob("main"))
    with open(killed / "metrics.jsonl", "a") as handle:
        handle.write('{"iteration": 6, "step": "1ep2it", "na')  # a kill in the middle of an append
    assert cli("train", *TINY, root_dir=tmp_path / "killed")[0] == 0
    whole = next((tmp_path / "whole").rglob("main"))
    assert (killed / "metrics.jsonl").read_text() == (whole / "metrics.jsonl").read_text()


def test_a_corrupt_checkpoint_advice_works_when_followed(cli, tmp_path, monkeypatch):
    import runs.trunk
    from training import loop
    real = loop.train
    monkeypatch.setattr(runs.trunk, "train",
                        lambda *a, **k: real(*a, **{**k, "hooks": [*k.get("hooks", ()), Kill(6)]}))
    assert cli("train", *TINY)[0] == 130
    monkeypatch.setattr(runs.trunk, "train", real)
    run = location(cli, "train", *TINY)
    truncate(run / "checkpoint.pt", keep=30)
    code, _, err = cli("train", *TINY)
    one_line_error(code, err, "checkpoint.pt", "delete it")
    (run / "checkpoint.pt").unlink()  # what the message says to do
    assert cli("train", *TINY)[0] == 0 and (run / "done.json").exists()


def test_leftover_temporary_files_go_and_a_missing_hparams_log_comes_back(cli, iterative):
    branch, trunk, _ = iterative
    leftovers = [trunk / ".checkpoint.pt.abc123.tmp", branch / "level_1" / ".mask.pt.x.tmp"]
    for path in leftovers:
        path.write_bytes(b"half")
    (trunk / "hparams.log").unlink()
    assert rerun(cli)[0] == 0
    assert not any(path.exists() for path in leftovers)
    assert "seeds" in (trunk / "hparams.log").read_text()


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_result_files_follow_the_umask(cli, tmp_path, umask):
    old = os.umask(umask)
    try:
        assert cli("train", *TINY, "--training_steps=1ep", root_dir=tmp_path / f"u{umask:o}")[0] == 0
    finally:
        os.umask(old)
    files = [p for p in (tmp_path / f"u{umask:o}").rglob("*") if p.is_file() and p.name != ".lock"]
    modes = {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in files}
    assert len(files) >= 5 and set(modes.values()) == {oct(0o666 & ~umask)}, modes
