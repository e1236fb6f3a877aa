"""`plot-weights`: histograms of the kept weights, weight and mask heatmaps from a saved model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cli.plot_weights import iterations_per_epoch, pick
from reports import weight_figures
from tests.reports.test_root import colours, one_line_error, run_cli


def test_plot_weights_writes_histograms_heatmaps_and_the_mask(reports_root, tmp_path):
    from PIL import Image

    run = reports_root.dirs["oneshot0.8_1"]
    code, out, err = run_cli("plot-weights", str(run), "--step=end", f"--out={tmp_path}")
    assert code == 0, err
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["histograms_ep2_it0.pdf", "histograms_ep2_it0.png", "input_space_ep2_it0.pdf",
                     "input_space_ep2_it0.png", "mask.pdf", "mask.png", "weights_ep2_it0.pdf", "weights_ep2_it0.png"]
    for name in ("histograms_ep2_it0", "weights_ep2_it0", "mask", "input_space_ep2_it0"):
        with Image.open(tmp_path / f"{name}.png") as image:
            assert image.size[0] > 600 and image.size[1] > 200
        assert len(colours(tmp_path / f"{name}.png")) > 10  # not blank
        assert (tmp_path / f"{name}.pdf").read_bytes().startswith(b"%PDF")


def test_histograms_leave_the_pruned_weights_out(reports_root, monkeypatch):
    run = reports_root.dirs["oneshot0.8_1"]
    weights = torch.load(run / "model_ep2_it0.pt", weights_only=True)
    mask = torch.load(run / "mask.pt", weights_only=True)
    figures = []
    monkeypatch.setattr(weight_figures, "save", lambda fig, stem: figures.append(fig) or [])
    weight_figures.histograms({n: weights[n] for n in mask}, mask, run / "unused", "title")
    for ax, name in zip(figures[0].axes, mask):
        assert sum(patch.get_height() for patch in ax.patches) == int(mask[name].sum())


@pytest.mark.parametrize("step, expected", [("start", (0, 0)), ("end", (2, 0)), ("0ep", (0, 0)), ("8it", (2, 0)),
                                            ("2ep0it", (2, 0))])
def test_step_picks_a_saved_model(reports_root, step, expected):
    trunk = reports_root.dirs["trunk1"]
    assert pick(trunk, step) == (expected, trunk / f"model_ep{expected[0]}_it{expected[1]}.pt")
    assert iterations_per_epoch(trunk) == 4  # 256 examples in batches of 64


def test_a_trunk_is_plotted_without_a_mask(reports_root, tmp_path):
    code, out, err = run_cli("plot-weights", str(reports_root.dirs["trunk1"]), "--step=0ep", f"--out={tmp_path}")
    assert code == 0, err
    assert (tmp_path / "histograms_ep0_it0.png").exists() and not (tmp_path / "mask.png").exists()


def test_conv_weights_are_tiled_filter_by_filter():
    weight = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)
    image, cut = weight_figures.image_of(weight)
    assert image.shape == (2 * 3 - 1, 3 * 3 - 1) and cut == ""
    assert np.array_equal(image[3:5, 6:8], weight[1, 2].numpy())  # output 1, input 2
    assert math.isnan(image[2, 0]) and math.isnan(image[0, 2])  # gaps between filters
    big, cut = weight_figures.image_of(torch.zeros(2000, 10))
    assert big.shape == (weight_figures.MAX_UNITS, 10) and "first" in cut


def test_bad_runs_and_steps_are_one_line_errors(reports_root, tmp_path):
    trunk = reports_root.dirs["trunk1"]
    for argv, needle in [((str(tmp_path),), "holds no model_ep"),
                         ((str(tmp_path / "nowhere"),), "is not a run directory"),
                         ((str(reports_root.dirs["iterative1"] / "level_0"),), "the trunk itself"),
                         ((str(trunk), "--step=banana"), "is not a step"),
                         ((str(trunk), "--step=1ep"), "saved steps are 0ep0it, 2ep0it"),
                         ((str(trunk), f"--out={trunk / 'plots'}"), "inside the run tree")]:
        one_line_error(*run_cli("plot-weights", *argv)[::2], needle)


def test_a_first_layer_over_images_is_drawn_unit_by_unit_in_input_space(tmp_path):
    # 5 units over (2, 3, 4) images: unit k's weight at channel c, pixel (i, j) is k + 10 c + i + j / 10
    k, c, i, j = torch.meshgrid(torch.arange(5.), torch.arange(2.), torch.arange(3.), torch.arange(4.), indexing="ij")
    weight = (k + 10 * c + i + j / 10).reshape(5, 24)
    grid = weight_figures.unit_pictures(weight, (2, 3, 4))
    assert grid.shape == (3 * 4 - 1, 3 * 5 - 1)  # a 3x3 grid of 3x4 pictures with one-pixel gaps
    for unit in range(5):
        row, column = divmod(unit, 3)
        picture = grid[row * 4:row * 4 + 3, column * 5:column * 5 + 4]
        expected = unit + 5 + torch.arange(3.)[:, None] + torch.arange(4.)[None, :] / 10  # mean over channels
        assert np.allclose(picture, expected.numpy())
    assert np.isnan(grid[3]).all() and np.isnan(grid[:, 4]).all()  # the gaps
    mask = torch.ones(5, 24, dtype=torch.bool)
    mask.view(5, 2, 3, 4)[:4, :, 0, 0] = False  # pixel (0, 0): 4 of 5 units pruned, in both channels
    kept = weight_figures.kept_per_pixel(mask, (2, 3, 4))
    assert kept[0, 0] == pytest.approx(0.2) and (np.delete(kept.reshape(-1), 0) == 1).all()
    written = weight_figures.input_space("fc1.weight", weight, mask, (2, 3, 4), tmp_path / "first", "a title")
    assert [p.suffix for p in written] == [".png", ".pdf"] and len(colours(written[0])) > 20
