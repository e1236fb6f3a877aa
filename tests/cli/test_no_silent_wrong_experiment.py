"""No silent wrong experiment: SpaM that would never update its prior, sparsities in the other
convention, registry names in another spelling, a LeNet recipe without a dataset, and nested masks
compared against a random baseline are each refused or said plainly (compare-masks: see
tests/reports/test_compare_masks.py)."""

from __future__ import annotations

import json

import pytest
import torch

from branches.spam.prior_training import SpamHparams, check_prior_updates, first_update_epoch
from branches.spam.spam_online import control_sweep
from branches.spam.sweep import SweepHparams, percentages
from foundations.errors import UserError
from runs.target import branch_target
from tests.cli.test_branches import load, location
from tests.cli.test_train import one_line_error
from tests.conftest import TINY
from tests.reports.test_root import run_cli

# ---- spam whose training ends before the first prior update ------------------------------------

LENET5_SHORT = ["--default_hparams=mnist_lenet5", "--training_steps=2ep", "--quiet"]  # marglik every 5 epochs


@pytest.mark.parametrize("frequency, burn_in, first", [(5, 0, 5), (1, 0, 1), (3, 3, 3), (3, 4, 6), (5, 7, 10),
                                                       (2, 0, 2), (4, 1, 4)])
def test_the_first_update_by_hand(frequency, burn_in, first):
    assert first_update_epoch(frequency, burn_in) == first
    # the oracle: the first epoch e >= 1 at whose end the schedule updates (bayes.MarglikSchedule.due)
    assert first == next(e for e in range(1, 100) if SpamHparams(marglik_frequency=frequency,
                                                                 burn_in=burn_in).schedule.due(e))


def test_the_check_passes_at_the_boundary_and_says_what_to_do():
    check_prior_updates(SpamHparams(marglik_frequency=2), 2)  # an update at the end of the last epoch
    check_prior_updates(SpamHparams(marglik_frequency=1, burn_in=2), 2)
    with pytest.raises(UserError, match=r"--marglik_frequency=5 first updates the prior after epoch 5, but "
                                        r"training is 2 epoch\(s\).*give --marglik_frequency=2 or less"):
        check_prior_updates(SpamHparams(), 2)
    with pytest.raises(UserError, match=r"with --burn_in=3 .*give --burn_in=2 or less"):
        check_prior_updates(SpamHparams(marglik_frequency=1, burn_in=3), 2)
    with pytest.raises(UserError, match="at least one epoch"):
        check_prior_updates(SpamHparams(marglik_frequency=1), 0)


@pytest.mark.parametrize("name", ["spam", "spam-online"])
def test_spam_without_a_prior_update_is_one_line_and_writes_nothing(cli, name):
    extra = ["--prune_interval=1"] if name == "spam-online" else []  # its staircase fits 2 epochs
    code, _, err = cli("branch", name, *LENET5_SHORT, *extra)
    one_line_error(code, err, "--marglik_frequency=5 first updates the prior after epoch 5", "training is 2 epoch",
                   "give --marglik_frequency=2 or less")
    assert not cli.root.exists() or not any(cli.root.rglob("*"))  # nothing trained, nothing written
    # the run is refused, not unnamed: it can still be located (report, runs, pinned hashes)
    assert location(cli, "branch", name, *LENET5_SHORT, *extra).name.startswith(f"branch_{name}_")
    # and with an update within training it runs
    assert cli("branch", name, *LENET5_SHORT, *extra, "--marglik_frequency=2", "--hyper_steps=2",
               *(["--sparsities=50", "--criteria=opd"] if name == "spam" else []))[0] == 0


# ---- sparsities: percent in spam, fractions elsewhere; the other convention is refused ---------

def test_percentages_by_hand():
    assert percentages("1,20,99.5") == [1.0, 20.0, 99.5]
    for text, needle in [("0.5,0.9", "reads as a fraction"), ("50,0.9", "write 90"), ("0,50", "[1, 100)"),
                         ("100", "[1, 100)"), ("-5", "[1, 100)")]:
        with pytest.raises(UserError, match=needle.replace("[", r"\[").replace(")", r"\)")):
            percentages(text)


@pytest.mark.parametrize("argv, needles", [
    (["spam", "--sparsities=0.5,0.9"], ["0.5, which reads as a fraction", "in percent", "write 50"]),
    (["oneshot", "--strategy=magnitude", "--prune_fraction=50"], ["prune_fraction=50", "[0, 1)"]),
    (["iterative", "--levels=1", "--pruning_fraction=20"], ["pruning_fraction=20", "[0, 1)"]),
    (["spam-online", "--final_sparsity=90"], ["final_sparsity=90", "[0, 1)"]),
])
def test_a_sparsity_in_the_other_convention_is_refused(cli, argv, needles):
    code, _, err = cli("branch", argv[0], *TINY, *argv[1:])
    one_line_error(code, err, *needles)


def test_spam_online_names_its_final_sparsity_cells_as_before(cli, dataset_root):
    """The control sweep takes its one sparsity from --final_sparsity (a fraction) in percent, as
    the cells were always named (29, not 28.999999999999996), and a small one is not refused."""
    for fraction, percent in ((0.29, 29.0), (0.99, 99.0), (0.005, 0.5)):
        branch, _ = branch_target("spam-online").parse([*TINY, f"--final_sparsity={fraction}", "--initial_sparsity=0",
                                                        f"--root={cli.root}", f"--dataset_root={dataset_root}",
                                                        "--device=cpu"])
        assert control_sweep(branch).sparsities() == [percent]


# ---- registry names are canonical before hashing ------------------------------------------------

@pytest.mark.parametrize("spelling", ["SNIP10", " snip10 ", "Snip10"])
def test_a_strategy_in_another_spelling_is_the_same_run(cli, spelling):
    argv = [*TINY, "--prune_fraction=0.5"]
    assert location(cli, "branch", "oneshot", *argv, f"--strategy={spelling}") == \
        location(cli, "branch", "oneshot", *argv, "--strategy=snip10")


def test_a_strategy_is_stored_canonical_and_found_by_runs(cli):
    assert cli("branch", "oneshot", *TINY, "--prune_fraction=0.5", "--strategy=MAGNITUDE")[0] == 0
    path = location(cli, "branch", "oneshot", *TINY, "--prune_fraction=0.5", "--strategy=magnitude")
    assert json.loads((path / "hparams.json").read_text())["hparams"]["oneshot"]["strategy"] == "magnitude"
    code, out, err = run_cli("runs", f"--root={cli.root}", "--where", "strategy=magnitude", "--format=json")
    assert code == 0, err
    assert [row["kind"] for row in json.loads(out)] == ["branch_oneshot"]


def test_spam_criteria_are_canonical():
    assert SweepHparams(criteria=" OPD, Magnitude,snip,GRASP5").criteria == "opd,magnitude,snip10,grasp5"
    assert SweepHparams().criteria == "opd,magnitude,random"  # the default is already canonical


# ---- a LeNet recipe names its dataset -----------------------------------------------------------

@pytest.mark.parametrize("command", [["train"], ["branch", "iterative", "--levels=1"]])
def test_a_lenet_recipe_without_a_dataset_is_refused(cli, command):
    code, _, err = cli(*command, "--default_hparams=lenet_300_100", "--training_steps=1ep")
    one_line_error(code, err, "--default_hparams=lenet_300_100 names no dataset", "fashionmnist_lenet_300_100",
                   "mnist_lenet_300_100")
    assert not cli.root.exists() or not any(cli.root.rglob("*"))


def test_a_bare_lenet_model_name_still_trains_on_its_dataset_and_keeps_its_output_layer(cli):
    argv = [f if not f.startswith("--model_name") else "--model_name=lenet_16_8" for f in TINY]
    assert cli("branch", "iterative", *argv, "--levels=1")[0] == 0
    mask = load(location(cli, "branch", "iterative", *argv, "--levels=1") / "level_1" / "mask.pt")
    assert bool(mask["fc.weight"].all())  # LeNet's recipe keeps its output layer (the trunk's dataset's recipe)
    assert not bool(mask["fc_layers.0.weight"].all())
    assert torch.is_tensor(mask["fc_layers.1.weight"])
