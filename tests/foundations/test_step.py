import pytest

from foundations.errors import UserError
from foundations.step import Step


@pytest.mark.parametrize("text, iteration", [("160ep", 160 * 391), ("500it", 500), ("2ep10it", 2 * 391 + 10),
                                             ("0ep", 0), ("0it", 0), ("1ep0it", 391)])
def test_parse(text, iteration):
    assert Step.parse(text, 391).iteration == iteration


def test_strict_round_trip():
    for iteration in (0, 1, 390, 391, 392, 10_000):
        step = Step(iteration, 391)
        assert Step.parse(str(step), 391) == step
    assert str(Step.parse("500it", 391)) == "1ep109it"
    assert Step.parse("2ep10it", 391).ep == 2 and Step.parse("2ep10it", 391).it == 10


@pytest.mark.parametrize("text", ["", "ep", "10", "1.5ep", "10it2ep", "-1ep", "3 ep", "1e2it", "1epoch"])
def test_malformed_steps_are_user_errors(text):
    with pytest.raises(UserError, match="not a step"):
        Step.parse(text, 100)


def test_parse_list_and_ordering():
    steps = Step.parse_list("2ep,500it", 100, "weight_save_steps")
    assert [s.iteration for s in steps] == [200, 500]
    assert Step(3, 10) < Step(4, 10)
