"""foundations/cli.py's Parser: flags spelled out in full, and an unknown flag answered with the
closest known one."""

from __future__ import annotations

import pytest

from foundations.cli import Parser
from foundations.errors import UserError
from tests.cli.test_train import one_line_error
from tests.conftest import TINY


def parser() -> Parser:
    p = Parser(prog="prog")
    p.add_argument("--training_steps")
    p.add_argument("--training_seed")
    p.add_argument("--lr", required=True)
    return p


@pytest.mark.parametrize("argv, message", [
    (["--lr=1", "--trainig_steps=3ep"], "unknown flag --trainig_steps; did you mean --training_steps?"),
    (["--lr=1", "--training_step=3ep"], "unknown flag --training_step; did you mean --training_steps?"),
    (["--lr=1", "--training_step", "3ep"], "unknown flag --training_step; did you mean --training_steps?"),
    (["--trainig_steps=3ep"], "unknown flag --trainig_steps; did you mean --training_steps?"),  # not: --lr missing
    (["--lr=1", "--frobnicate=2"], "unrecognized arguments: --frobnicate=2"),
    (["--lr=1", "stray"], "unrecognized arguments: stray"),
])
def test_prefixes_are_refused_and_typos_get_the_closest_flag(argv, message):
    with pytest.raises(UserError, match="^" + message.replace("?", r"\?") + r" \(see `prog --help`\)$"):
        parser().parse_args(argv)


def test_full_flags_still_parse():
    args = parser().parse_args(["--lr", "1", "--training_steps=3ep", "--training_seed=4"])
    assert (args.lr, args.training_steps, args.training_seed) == ("1", "3ep", "4")


@pytest.mark.parametrize("argv, needle", [
    (["train", *TINY, "--trainig_steps=2ep"], "unknown flag --trainig_steps; did you mean --training_steps?"),
    (["train", *TINY, "--training_step=2ep"], "unknown flag --training_step; did you mean --training_steps?"),
    (["branch", "iterative", *TINY, "--level=2"], "unknown flag --level; did you mean --levels?"),
    (["submit", "--dry_runn", "--", "train", *TINY], "unknown flag --dry_runn; did you mean --dry_run?"),
    (["runs", "--formt=csv"], "unknown flag --formt; did you mean --format?"),
])
def test_every_command_answers_a_mistyped_flag_in_one_line(cli, argv, needle):
    one_line_error(*cli(*argv)[::2], needle)
    assert not cli.root.exists()


def test_the_two_pruning_fractions_point_at_each_other(cli):
    """IMP's per-level share of the survivors and oneshot's total share have their own names; a user
    who gives one to the other's branch is told the right one."""
    from tests.conftest import TINY

    code, _, err = cli("branch", "iterative", *TINY, "--levels=1", "--prune_fraction=0.2")
    assert code == 2 and "did you mean --pruning_fraction?" in err
    code, _, err = cli("branch", "oneshot", *TINY, "--strategy=magnitude", "--pruning_fraction=0.2")
    assert code == 2 and "did you mean --prune_fraction?" in err
