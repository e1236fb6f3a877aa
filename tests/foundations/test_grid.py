"""foundations/grid.py: a command line with alternatives expands into the product of its flags,
read with the command's own parser (int ranges, switches) and bundles (list-valued fields)."""

from __future__ import annotations

import itertools

import pytest

from branches.oneshot import oneshot
from foundations.bundles import TRUNK_BUNDLES
from foundations.errors import UserError
from foundations.grid import expand, parse_grid
from runs.flags import build_parser

BUNDLES = {**TRUNK_BUNDLES, **oneshot.BUNDLES}


@pytest.fixture(scope="module")
def parser():
    return build_parser("open_prune.py branch oneshot", oneshot.SUMMARY, [], extra_bundles=oneshot.BUNDLES)


def grid(parser, *argv, **kwargs):
    return expand(list(argv), parser, bundles=BUNDLES, **kwargs)


def test_commas_give_alternatives_and_the_product_runs_in_flag_order(parser):
    argv = grid(parser, "--strategy=magnitude,snip10", "--model_name=lenet_8", "--prune_fraction=0.5,0.9,0.99")
    expected = [["--strategy=" + s, "--model_name=lenet_8", "--prune_fraction=" + p]
                for s, p in itertools.product(["magnitude", "snip10"], ["0.5", "0.9", "0.99"])]
    assert argv == expected  # the first flag varies slowest


def test_every_expanded_line_parses_as_the_command_reads_it(parser):
    required = ["--dataset_name=mnist", "--model_name=lenet_8", "--optimizer_name=sgd", "--training_steps=1ep",
                "--strategy=magnitude", "--prune_fraction=0.5"]
    lines = grid(parser, *required, "--batch_size=32,64", "--lr", "0.1,0.2", "--replicate=1-2")
    parsed = [parser.parse_args(line) for line in lines]
    assert [(a.batch_size, a.lr, a.replicate) for a in parsed] == list(itertools.product([32, 64], [0.1, 0.2], [1, 2]))


def test_list_valued_flags_are_kept_whole_and_repeating_them_gives_alternatives(parser):
    assert grid(parser, "--milestone_steps=80ep,120ep", "--gamma=0.1") == [["--milestone_steps=80ep,120ep",
                                                                             "--gamma=0.1"]]
    lines = grid(parser, "--milestone_steps=80ep,120ep", "--milestone_steps=60ep", "--prune_layers_to_ignore=a,b")
    assert lines == [["--milestone_steps=80ep,120ep", "--prune_layers_to_ignore=a,b"],
                     ["--milestone_steps=60ep", "--prune_layers_to_ignore=a,b"]]
    assert grid(parser, "--weight_save_steps=1ep,2ep", list_valued=()) == [["--weight_save_steps=1ep,2ep"]]
    # list_valued adds to the bundles' own
    assert expand(["--custom=a,b"], None, list_valued=["custom"]) == [["--custom=a,b"]]


def test_repeating_an_ordinary_flag_adds_its_alternatives_once_each(parser):
    assert grid(parser, "--lr=0.1", "--lr=0.2,0.3", "--lr=0.1") == [["--lr=0.1"], ["--lr=0.2"], ["--lr=0.3"]]


@pytest.mark.parametrize("value, expected", [
    ("1-5", ["1", "2", "3", "4", "5"]), ("3-3", ["3"]), ("1-3,7", ["1", "2", "3", "7"]), ("4", ["4"]),
    ("2,1-2", ["2", "1"]),
])
def test_int_ranges_are_inclusive(parser, value, expected):
    assert grid(parser, f"--replicate={value}") == [[f"--replicate={v}"] for v in expected]


def test_ranges_only_for_int_flags(parser):
    assert grid(parser, "--model_name=cifar-resnet") == [["--model_name=cifar-resnet"]]
    assert grid(parser, "--training_steps=1ep-2ep") == [["--training_steps=1ep-2ep"]]


@pytest.mark.parametrize("value", ["5-1", "1-x", "1-", "-", "x", "1--3", "1-3-5"])
def test_malformed_ranges_are_user_errors(parser, value):
    with pytest.raises(UserError, match="--replicate"):
        grid(parser, f"--replicate={value}")


def test_an_empty_alternative_is_a_user_error(parser):
    with pytest.raises(UserError, match="empty alternative"):
        grid(parser, "--strategy=magnitude,")


def test_switches_take_no_value_and_booleans_take_alternatives(parser):
    lines = grid(parser, "--quiet", "0.5", "--reinitialize=false,true", "--randomize_layerwise", "--lr=0.1")
    assert lines == [["--quiet", "0.5", "--reinitialize=false", "--randomize_layerwise", "--lr=0.1"],
                     ["--quiet", "0.5", "--reinitialize=true", "--randomize_layerwise", "--lr=0.1"]]


def test_aliases_and_positionals_and_no_prefixes(parser):
    lines = grid(parser, "oneshot", "--replicates=1-2", "--prune_frac=0.5", aliases={"replicates": "replicate"})
    assert lines == [["oneshot", "--replicate=1", "--prune_frac=0.5"],  # left for the parser to refuse
                     ["oneshot", "--replicate=2", "--prune_frac=0.5"]]


def test_a_bad_range_names_the_flag_as_written(parser):
    with pytest.raises(UserError, match=r"--replicates=2-1: '2-1' is neither .* \(e.g. --replicates=1-5\)"):
        grid(parser, "--replicates=2-1", aliases={"replicates": "replicate"})


def test_the_grid_says_what_varies(parser):
    g = parse_grid(["--strategy=magnitude,random", "--lr=0.1", "--replicate=1-3"], parser, bundles=BUNDLES)
    assert g.varying() == ["strategy", "replicate"]
    assert len(g) == 6 == len(g.points())
    assert g.points()[1] == {"strategy": "magnitude", "lr": "0.1", "replicate": "2"}
    assert g.argv(g.points()[1]) == ["--strategy=magnitude", "--lr=0.1", "--replicate=2"]


def test_without_a_parser_the_bundles_say_the_types():
    lines = expand(["--batch_size=1-2", "--milestone_steps=1ep,2ep"], bundles=list(TRUNK_BUNDLES.values()))
    assert lines == [["--batch_size=1", "--milestone_steps=1ep,2ep"], ["--batch_size=2", "--milestone_steps=1ep,2ep"]]
