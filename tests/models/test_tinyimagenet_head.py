"""The Tiny ImageNet ResNets' head: one output per class by default, `_headN` for N (`_head1000`:
OpenLTH's and the "Missing the Mark" fork's, which build it with `outputs or 1000`)."""

import math
from types import SimpleNamespace

import pytest
import torch

from foundations.errors import UserError
from models import registry, tinyimagenet_resnet
from models.imagenet_resnet import ResNetSpec
from training.losses import Loss

TINY_IMAGENET = (3, 64, 64)


def get(name: str, classes: int = 200) -> torch.nn.Module:
    hparams = SimpleNamespace(model_name=name, model_init="kaiming_normal", batchnorm_init="uniform",
                              batchnorm_frozen=False, output_frozen=False)
    return registry.get(hparams, TINY_IMAGENET, classes, seed=0)


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_names_parse_with_and_without_a_head():
    assert tinyimagenet_resnet.parse("tinyimagenet_resnet_18") == (ResNetSpec(18, 64), False, None)
    assert tinyimagenet_resnet.parse("tinyimagenet_resnet_18_head1000") == (ResNetSpec(18, 64), False, 1000)
    assert tinyimagenet_resnet.parse("tinyimagenet_modifiedresnet_50_32_head200") == (ResNetSpec(50, 32), True, 200)
    assert tinyimagenet_resnet.parse("tinyimagenet_resnet_18_head200") == (ResNetSpec(18, 64), False, 200)
    for bad in ("tinyimagenet_resnet_18_head0", "tinyimagenet_resnet_18_head", "tinyimagenet_resnet_18_head200_8"):
        assert tinyimagenet_resnet.parse(bad) is None


def test_the_forks_head_has_1000_outputs_on_200_classes():
    fork, fixed = get("tinyimagenet_resnet_18_8_head1000"), get("tinyimagenet_resnet_18_8")
    assert fork.fc.weight.shape == (1000, 64) and fixed.fc.weight.shape == (200, 64)  # 8 * W features at W = 8
    assert count(fork) - count(fixed) == 800 * (64 + 1)  # 800 more rows of weights and biases
    # The prunable weights that a sparsity is a fraction of: 800 * 64 more with the fork's head.
    prunable = {name: sum(dict(m.named_parameters())[n].numel() for n in m.prunable_layer_names)
                for name, m in (("fork", fork), ("fixed", fixed))}
    assert prunable["fork"] - prunable["fixed"] == 800 * 64
    assert fork(torch.rand(2, *TINY_IMAGENET)).shape == (2, 1000)


@pytest.mark.parametrize("name, outputs", [("tinyimagenet_modifiedresnet_18_8_head1000", 1000),
                                           ("tinyimagenet_modifiedresnet_18_8", 200)])
def test_the_cross_entropy_is_a_softmax_over_the_whole_head(name, outputs):
    """With the output layer zeroed every logit is 0, so the loss training uses is log(outputs):
    log 1000 = 6.9078 with the fork's head, log 200 = 5.2983 with Tiny ImageNet's."""
    model = get(name).eval()
    with torch.no_grad():
        model.fc.weight.zero_()
        model.fc.bias.zero_()
        logits = model(torch.rand(4, *TINY_IMAGENET))
    labels = torch.tensor([0, 1, 2, 199])
    loss = Loss(None, "classification", 200)(logits, labels)
    assert loss.item() == pytest.approx(math.log(outputs), abs=1e-6)


def test_a_head_smaller_than_the_classes_is_refused_in_one_line():
    with pytest.raises(UserError, match="head of 100 outputs cannot score 200 classes.*_head1000"):
        get("tinyimagenet_resnet_18_head100")
