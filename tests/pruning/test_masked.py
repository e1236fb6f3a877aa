import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils import prune as torch_prune

from pruning import Mask, MaskedTraining, prune
from tests.pruning.test_nets import TinyCNN

OPTIMIZERS = {
    "sgd": lambda params: torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-2),
    "adam": lambda params: torch.optim.Adam(params, lr=0.01, weight_decay=1e-2),
    "adamw": lambda params: torch.optim.AdamW(params, lr=0.01, weight_decay=1e-1),
}


def half_mask(model) -> Mask:
    dense = Mask.ones_like(model)
    g = torch.Generator().manual_seed(1)
    return prune({n: torch.rand(dense[n].shape, generator=g) for n in dense}, dense, 0.5, scope="layerwise",
                 layers_to_ignore=["fc.weight"])


def batches(steps: int):
    g = torch.Generator().manual_seed(2)
    return [(torch.randn(8, 1, 5, 5, generator=g), torch.randint(3, (8,), generator=g)) for _ in range(steps)]


def train_ours(name: str, mask: Mask, steps: int = 6):
    model = TinyCNN(seed=3)
    masked = MaskedTraining(model, mask)
    masked.apply_to_weights()
    optimizer = OPTIMIZERS[name](model.parameters())
    for x, y in batches(steps):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        masked.zero_grads()
        optimizer.step()
        masked.zero_weights()
    return model, optimizer


def train_reference(name: str, mask: Mask, steps: int = 6):
    """torch.nn.utils.prune: weight = weight_orig * mask, so pruned entries get no gradient."""
    model = TinyCNN(seed=3)
    for key in mask:
        module = model.get_submodule(key.rsplit(".", 1)[0])
        torch_prune.custom_from_mask(module, "weight", mask[key])
        with torch.no_grad():  # start with the pruned weights at zero, as ours does
            module.weight_orig.mul_(mask[key])
    optimizer = OPTIMIZERS[name](model.parameters())
    for x, y in batches(steps):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_pruned_weights_stay_zero_and_optimizer_state_never_moves(name):
    mask = half_mask(TinyCNN())
    model, optimizer = train_ours(name, mask)
    start = TinyCNN(seed=3).state_dict()
    for key in mask:
        weight = model.get_parameter(key)
        assert torch.equal(weight[~mask[key]], torch.zeros_like(weight[~mask[key]]))  # exactly 0.0
        assert not torch.equal(weight[mask[key]], start[key][mask[key]])  # the rest did train
        for value in optimizer.state[weight].values():
            if torch.is_tensor(value) and value.shape == weight.shape:  # momentum, exp_avg, exp_avg_sq
                assert (value[~mask[key]] == 0).all() and (value[mask[key]] != 0).any()


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_masked_training_matches_torch_prune_reparametrization(name):
    mask = half_mask(TinyCNN())
    ours, _ = train_ours(name, mask)
    reference = train_reference(name, mask)
    state = reference.state_dict()  # holds weight_orig and weight_mask for each pruned weight
    effective = {**state, **{key: state[key + "_orig"] * state[key + "_mask"] for key in mask}}
    for key, value in ours.state_dict().items():
        torch.testing.assert_close(value, effective[key], rtol=1e-5, atol=1e-6)


def test_dense_layers_are_skipped_and_missing_names_refused():
    model = TinyCNN()
    assert MaskedTraining(model, half_mask(model)).weights == [model.conv1.weight, model.conv2.weight]
    with pytest.raises(ValueError, match="not parameters"):
        MaskedTraining(model, Mask({"nowhere.weight": torch.ones(2, dtype=torch.bool)}))
    with pytest.raises(ValueError, match="another model"):
        MaskedTraining(model, Mask({"fc.weight": torch.ones(3, 5, dtype=torch.bool)}))
