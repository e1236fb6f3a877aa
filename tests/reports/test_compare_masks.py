"""`compare-masks`: Jaccard overlap of kept weights, per layer and overall, on hand cases and on
the masks the fixture's branches saved (against numpy on the same files)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from foundations.errors import UserError
from reports.jaccard import overlaps
from tests.reports.test_root import one_line_error, run_cli


def t(*values: int) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.bool)


@pytest.mark.parametrize("a, b, jaccard", [
    (t(1, 1, 0, 0), t(1, 0, 1, 0), 1 / 3),
    (t(1, 0, 1, 0), t(1, 0, 1, 0), 1.0),
    (t(1, 1, 0, 0), t(0, 0, 1, 1), 0.0),
    (t(0, 0, 0), t(0, 0, 0), 1.0),  # two masks that keep nothing agree
    (t(1, 1, 1, 1), t(1, 0, 0, 0), 0.25),
])
def test_jaccard_hand_cases(a, b, jaccard):
    layer, overall = overlaps({"w": a}, {"w": b})
    assert layer.jaccard == pytest.approx(jaccard) and overall.jaccard == pytest.approx(jaccard)


def test_overall_pools_the_layers_and_random_baseline():
    a = {"x": t(1, 1, 0, 0), "y": t(1, 1)}
    b = {"x": t(1, 0, 1, 0), "y": t(1, 0)}
    x, y, overall = overlaps(a, b)
    assert (x.both, y.both, overall.both, overall.either) == (1, 1, 2, 5)
    assert overall.jaccard == pytest.approx(2 / 5)
    assert x.random_jaccard == pytest.approx(1 / 3)  # 2·2/4 = 1 expected in both, of 3 in either
    assert x.row()["density_a"] == 0.5 and y.row()["density_b"] == 0.5


@pytest.mark.parametrize("a, b, nested", [
    (t(1, 1, 1, 0), t(1, 0, 1, 0), True),  # b's kept weights are among a's
    (t(1, 0, 0, 0), t(1, 1, 0, 1), True),  # a's among b's
    (t(1, 1, 0, 0), t(1, 0, 1, 0), False),
    (t(0, 0, 0, 0), t(1, 0, 1, 0), True),  # nothing is inside everything
    (t(1, 1, 1, 1), t(0, 1, 1, 0), True),  # a dense level 0 against any level
])
def test_nested_masks_have_their_jaccard_fixed_and_no_random_baseline(a, b, nested):
    layer, overall = overlaps({"w": a}, {"w": b})
    assert layer.nested is nested and overall.nested is nested
    if nested:  # any nested pair of these densities has this Jaccard: d_small / d_large
        small, large = sorted((int(a.sum()), int(b.sum())))
        assert layer.jaccard == pytest.approx(small / large if large else 1.0)
        assert layer.random_jaccard is None and layer.row()["random_jaccard"] is None
    else:
        assert layer.random_jaccard == pytest.approx(1 / 3)
    assert layer.row()["nested"] is nested


def test_nesting_over_all_layers_needs_one_direction():
    a = {"x": t(1, 1, 0, 0), "y": t(1, 0)}
    b = {"x": t(1, 0, 0, 0), "y": t(1, 1)}  # x: b inside a; y: a inside b
    x, y, overall = overlaps(a, b)
    assert x.nested and y.nested and not overall.nested
    assert overall.random_jaccard == pytest.approx((3 * 3 / 6) / (3 + 3 - 3 * 3 / 6))


def test_masks_of_different_models_are_refused():
    with pytest.raises(UserError, match="different models"):
        overlaps({"x": t(1, 0)}, {"z": t(1, 0)})
    with pytest.raises(UserError, match=r"\(2,\) in the first and \(3,\)"):
        overlaps({"x": t(1, 0)}, {"x": t(1, 0, 1)})


def numpy_jaccard(a: Path, b: Path) -> dict[str, float]:
    ma, mb = ({n: m.numpy() for n, m in torch.load(path, weights_only=True).items()} for path in (a, b))
    result = {n: float(np.logical_and(ma[n], mb[n]).sum() / np.logical_or(ma[n], mb[n]).sum()) for n in ma}
    both = sum(np.logical_and(ma[n], mb[n]).sum() for n in ma)
    result["all"] = float(both / sum(np.logical_or(ma[n], mb[n]).sum() for n in ma))
    return result


def compare(*argv: str) -> list[dict]:
    code, out, err = run_cli("compare-masks", *argv, "--format=json")
    assert code == 0, err
    return json.loads(out)


def test_two_runs_masks_against_numpy(reports_root):
    a = reports_root.dirs["iterative1"] / "level_2"
    b = reports_root.dirs["iterative2"] / "level_2"
    rows = compare(str(a), str(b / "mask.pt"))  # a run dir or a mask.pt
    expected = numpy_jaccard(a / "mask.pt", b / "mask.pt")
    assert {r["layer"]: r["jaccard"] for r in rows} == pytest.approx(expected)
    sparsity = json.loads((a / "sparsity.json").read_text())
    assert rows[-1]["density_a"] == pytest.approx(sparsity["density"])
    for row in rows[:-1]:
        layer = sparsity["layers"][row["layer"]]
        assert row["density_a"] == pytest.approx(layer["unpruned"] / layer["total"])


def test_a_branch_dir_compares_each_level_with_the_next(reports_root):
    branch = reports_root.dirs["iterative1"]
    rows = compare(str(branch))
    assert sorted({r["levels"] for r in rows}) == ["0->1", "1->2"]
    overall = {r["levels"]: r for r in rows if r["layer"] == "all"}
    level1 = json.loads((branch / "level_1" / "sparsity.json").read_text())["density"]
    assert overall["0->1"]["jaccard"] == pytest.approx(level1)  # level 0 keeps everything
    assert overall["1->2"]["jaccard"] == pytest.approx(
        numpy_jaccard(branch / "level_1" / "mask.pt", branch / "level_2" / "mask.pt")["all"])
    # IMP never revives a weight, so level 2's kept weights are all among level 1's: nested, with no
    # random baseline (their Jaccard is d_2 / d_1 by construction)
    assert overall["1->2"]["kept_both"] == round(overall["1->2"]["density_b"] * overall["1->2"]["weights"])
    assert all(r["nested"] and r["random_jaccard"] is None for r in rows)
    assert overall["1->2"]["jaccard"] == pytest.approx(overall["1->2"]["density_b"] / overall["1->2"]["density_a"])
    code, out, _ = run_cli("compare-masks", str(branch))
    assert code == 0 and "nested" in out and "no random baseline" in out


def test_independent_masks_keep_their_random_baseline(reports_root):
    a, b = reports_root.dirs["oneshot0.5_1"], reports_root.dirs["random0.5_1"]
    rows = compare(str(a), str(b))
    overall = rows[-1]
    assert not overall["nested"] and overall["random_jaccard"] == pytest.approx(
        (0.5 * 0.5) / (0.5 + 0.5 - 0.5 * 0.5), abs=0.01)  # densities of about one half
    code, out, _ = run_cli("compare-masks", str(a), str(b))
    assert code == 0 and "no random baseline" not in out


def test_table_output_names_both_masks(reports_root):
    a, b = reports_root.dirs["oneshot0.5_1"], reports_root.dirs["random0.5_1"]
    code, out, _ = run_cli("compare-masks", str(a), str(b))
    assert code == 0 and out.startswith(f"a: {a / 'mask.pt'}\nb: {b / 'mask.pt'}")
    assert "jaccard" in out and "random_jaccard" in out


def test_bad_masks_are_one_line_errors(reports_root, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    torch.save({"fc.weight": torch.ones(3, 3, dtype=torch.bool)}, other / "mask.pt")
    truncated = tmp_path / "truncated"
    truncated.mkdir()
    data = (reports_root.dirs["oneshot0.5_1"] / "mask.pt").read_bytes()
    (truncated / "mask.pt").write_bytes(data[: len(data) // 2])
    level = reports_root.dirs["iterative1"] / "level_1"
    json_file = tmp_path / "sparsity.json"
    json_file.write_text('{"density": 0.5}')
    for argv, needle in [((str(level), str(other)), "different models"),
                         ((str(level), str(truncated)), "half-written"),
                         ((str(level), str(json_file)), "not a torch file"),  # complete, just not a mask
                         ((str(reports_root.dirs["trunk1"]), str(level)), "no mask.pt"),
                         ((str(reports_root.dirs["oneshot0.5_1"]),), "no two levels"),
                         ((str(tmp_path / "nowhere"), str(level)), "does not exist"),
                         ((str(level), str(level), str(level)), "two masks or one branch")]:
        one_line_error(*run_cli("compare-masks", *argv)[::2], needle)
