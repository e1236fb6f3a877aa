"""Model families and the registry: sizes, shapes, names, seeding, freezing, recipes, errors."""

import ast
import importlib
import json
import pkgutil
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
import torchvision

import models
from foundations.errors import UserError
from foundations.registry import module_path
from models import cifar_vgg, imagenet_resnet, registry, tinyimagenet_resnet
from models.base import Model, ModelFamily
from tests.processes import REPO, env

CIFAR = (3, 32, 32)
MNIST = (1, 28, 28)


def hparams(name, init="kaiming_normal", bn_init="uniform", bn_frozen=False, out_frozen=False):
    return SimpleNamespace(model_name=name, model_init=init, batchnorm_init=bn_init,
                           batchnorm_frozen=bn_frozen, output_frozen=out_frozen)


def get(name, shape=CIFAR, classes=10, seed=0, **kwargs) -> Model:
    return registry.get(hparams(name, **kwargs), shape, classes, seed)


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def on_meta(build):
    """Build a (possibly large) model without allocating or initializing its weights."""
    with torch.device("meta"):
        return build()


# ---- parameter counts ---------------------------------------------------------------------------

@pytest.mark.parametrize("name, shape, classes, expected", [
    # (784*300 + 300) + (300*100 + 100) + (100*10 + 10) = 235500 + 30100 + 1010
    ("mnist_lenet_300_100", MNIST, 10, 266_610),
    ("fashionmnist_lenet_300_100", MNIST, 10, 266_610),
    # (784*10 + 10) + (10*10 + 10) + (10*10 + 10) = 7850 + 110 + 110
    ("lenet_10_10", MNIST, 10, 8_070),
    # no hidden layer: 784*10 + 10
    ("mnist_lenet", MNIST, 10, 7_850),
    # input from the shape, not the prefix: (3072*300 + 300) + 30100 + (100*100 + 100)
    ("cifar100_lenet_300_100", CIFAR, 100, 921_900 + 30_100 + 10_100),
])
def test_lenet_parameter_count(name, shape, classes, expected):
    assert count(get(name, shape, classes)) == expected


def cifar_resnet_count(depth, width, classes, c_in=3):
    """Hand-derived: 3x3 convs have no bias, each BN has 2 parameters per channel, and a block
    whose shape changes adds a 1x1 projection conv and its BN."""
    n = (depth - 2) // 6
    total = 9 * c_in * width + 2 * width                                  # stem conv + BN
    for stage in range(3):
        c = width * 2 ** stage
        block = 2 * 9 * c * c + 2 * 2 * c                                 # two convs + two BNs
        total += n * block
        if stage > 0:                                                     # first block of stage
            c_prev = c // 2
            total += 9 * c_prev * c - 9 * c * c                           # its conv1 is c_prev->c
            total += c_prev * c + 2 * c                                   # projection shortcut
    return total + 4 * width * classes + classes                          # fc


def test_cifar_resnet_20_has_the_published_count():
    assert cifar_resnet_count(20, 16, 10) == 272_474
    assert count(get("cifar_resnet_20")) == 272_474
    assert count(get("cifar_resnet_20_16")) == 272_474
    assert count(get("resnet_20")) == 272_474


@pytest.mark.parametrize("name, depth, width, classes", [
    ("cifar_resnet_8_2", 8, 2, 10), ("resnet_8_2", 8, 2, 100), ("cifar_resnet_32", 32, 16, 10),
    ("cifar_resnet_56_4", 56, 4, 100), ("cifar_resnet_14_32", 14, 32, 10)])
def test_cifar_resnet_count_matches_the_formula(name, depth, width, classes):
    assert count(get(name, CIFAR, classes)) == cifar_resnet_count(depth, width, classes)


def test_cifar_vgg_16_count():
    # torchvision's VGG-16 conv stack (weights + biases) has 14,714,688 parameters; the BNs add
    # 2 * (2*64 + 2*128 + 3*256 + 6*512) = 8,448 and the fc 512*10 + 10 = 5,130: 14,728,266.
    assert count(get("cifar_vgg_16")) == 14_714_688 + 8_448 + 5_130 == 14_728_266


@pytest.mark.parametrize("depth, tv_name",
                         [(11, "vgg11_bn"), (13, "vgg13_bn"), (16, "vgg16_bn"), (19, "vgg19_bn")])
def test_cifar_vgg_conv_stack_matches_torchvision(depth, tv_name):
    ours = on_meta(lambda: cifar_vgg.build(depth, CIFAR, 100))
    reference = on_meta(lambda: getattr(torchvision.models, tv_name)())
    conv_shapes = lambda m: [tuple(p.shape) for p in m.parameters()]  # noqa: E731
    assert conv_shapes(ours.layers) == conv_shapes(reference.features)
    assert count(ours) == count(reference.features) + 512 * 100 + 100


@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
def test_imagenet_resnet_is_torchvision_resnet(depth):
    ours = on_meta(lambda: imagenet_resnet.build(imagenet_resnet.ResNetSpec(depth, 64), CIFAR, 1000))
    reference = on_meta(lambda: getattr(torchvision.models, f"resnet{depth}")())
    assert {k: v.shape for k, v in ours.state_dict().items()} == \
        {k: v.shape for k, v in reference.state_dict().items()}


def test_imagenet_resnet_published_counts():
    assert count(get("imagenet_resnet_18", classes=1000)) == 11_689_512
    assert count(on_meta(lambda: imagenet_resnet.build(imagenet_resnet.ResNetSpec(50, 64), CIFAR, 1000))) \
        == 25_557_032


def test_imagenet_resnet_width_scales_every_channel():
    narrow = on_meta(lambda: imagenet_resnet.build(imagenet_resnet.ResNetSpec(50, 16), (1, 8, 8), 7))
    wide = on_meta(lambda: torchvision.models.resnet50())
    reference_shapes = {k: tuple(v.shape) for k, v in wide.state_dict().items()}
    for key, tensor in narrow.state_dict().items():
        shape, reference = tuple(tensor.shape), reference_shapes[key]
        if key == "conv1.weight":       # (W, in_channels, 7, 7)
            assert shape == (16, 1, 7, 7)
        elif key.startswith("fc."):     # (classes, 8 * W * expansion)
            assert shape == ((7, 2048 // 4) if key == "fc.weight" else (7,))
        elif shape:                     # every other channel count is a quarter of torchvision's
            assert shape == tuple(s // 4 if i < 2 else s for i, s in enumerate(reference))


def test_tinyimagenet_resnets():
    standard = get("tinyimagenet_resnet_18", classes=200)
    modified = get("tinyimagenet_modifiedresnet_18", classes=200)
    # resnet18 with a 200-way fc: 11,689,512 - 513*1000 + 513*200; the 3x3 stem saves 64*3*(49-9).
    assert count(standard) == 11_689_512 - 513 * 800 == 11_279_112
    assert count(modified) == 11_279_112 - 64 * 3 * 40
    reference = torchvision.models.resnet18(num_classes=200)
    assert standard.state_dict().keys() == reference.state_dict().keys() == modified.state_dict().keys()


# ---- forward passes -----------------------------------------------------------------------------

@pytest.mark.parametrize("name, classes", [
    ("mnist_lenet_20_10", 10), ("cifar_resnet_8_2", 100), ("cifar_vgg_11", 10),
    ("imagenet_resnet_18_8", 1000), ("tinyimagenet_modifiedresnet_18_8", 200)])
def test_logits_have_one_column_per_class(name, classes):
    shape = MNIST if "lenet" in name else CIFAR
    model = get(name, shape, classes)
    logits = model(torch.rand(3, *shape))
    assert logits.shape == (3, classes) and torch.isfinite(logits).all()


def test_lenet_forward_by_hand():
    model = get("lenet_2", (1, 1, 2), 1)
    with torch.no_grad():
        model.fc_layers[0].weight.copy_(torch.tensor([[1.0, -1.0], [2.0, 0.0]]))
        model.fc_layers[0].bias.copy_(torch.tensor([0.0, -1.0]))
        model.fc.weight.copy_(torch.tensor([[1.0, 1.0]]))
        model.fc.bias.copy_(torch.tensor([0.5]))
    x = torch.tensor([[[[3.0, 1.0]]], [[[-1.0, 2.0]]]])
    # row 1: relu([3-1, 6-1]) = [2, 5] -> 7.5; row 2: relu([-3, -3]) = 0 -> 0.5
    assert model(x).tolist() == [[7.5], [0.5]]


def test_cifar_resnet_stage_resolutions_and_identity_shortcut():
    model = get("cifar_resnet_14_4").eval()
    sizes = []
    for block in model.blocks:
        block.register_forward_hook(lambda m, i, out: sizes.append(tuple(out.shape[1:])))
    model(torch.rand(2, *CIFAR))
    assert sizes == [(4, 32, 32)] * 2 + [(8, 16, 16)] * 2 + [(16, 8, 8)] * 2
    # With its residual branch silenced, a same-shape block is relu(x + 0) = relu(x).
    block = model.blocks[1]
    with torch.no_grad():
        block.conv2.weight.zero_()
        block.bn2.bias.zero_()
    x = torch.randn(2, 4, 8, 8)
    assert torch.equal(block(x), F.relu(x))


def test_cifar_vgg_ends_at_2x2_on_cifar():
    model = get("cifar_vgg_11")
    assert model.layers(torch.rand(1, *CIFAR)).shape == (1, 512, 2, 2)


def test_imagenet_resnet_computes_what_torchvision_computes():
    ours = get("imagenet_resnet_18", classes=1000).eval()
    reference = torchvision.models.resnet18().eval()
    reference.load_state_dict(ours.state_dict())
    x = torch.rand(2, *CIFAR)
    torch.testing.assert_close(ours(x), reference(x), rtol=0, atol=0)


def test_modified_tinyimagenet_stem_keeps_the_resolution():
    sizes = {}
    for name in ("tinyimagenet_resnet_18_8", "tinyimagenet_modifiedresnet_18_8"):
        model = get(name, (3, 64, 64), 200)
        model.layer1.register_forward_hook(lambda m, i, out, name=name: sizes.update({name: out.shape[-1]}))
        model(torch.rand(1, 3, 64, 64))
    assert sizes == {"tinyimagenet_resnet_18_8": 16, "tinyimagenet_modifiedresnet_18_8": 64}


# ---- layer names --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["mnist_lenet_20_10", "cifar_resnet_8_2", "cifar_vgg_11",
                                  "imagenet_resnet_18_8", "tinyimagenet_modifiedresnet_18_8"])
def test_prunable_names_are_exactly_the_conv_and_linear_weights(name):
    model = get(name, MNIST if "lenet" in name else CIFAR)
    keys = model.state_dict().keys()
    # Conv weights are 4-D and linear weights 2-D; biases and BN parameters are 1-D.
    matrices = [k for k, p in model.named_parameters() if p.dim() >= 2]
    assert sorted(model.prunable_layer_names) == sorted(matrices)
    assert set(model.prunable_layer_names) <= keys
    assert model.output_layer_names == ["fc.weight", "fc.bias"]
    assert set(model.output_layer_names) <= keys


def test_prunable_names_of_small_models():
    assert get("lenet_10_10", MNIST).prunable_layer_names == \
        ["fc_layers.0.weight", "fc_layers.1.weight", "fc.weight"]
    names = get("cifar_resnet_20").prunable_layer_names
    assert len(names) == 1 + 18 + 2 + 1  # stem, 9 blocks x 2 convs, 2 projections, fc
    assert "blocks.3.shortcut.0.weight" in names and "blocks.6.shortcut.0.weight" in names


# ---- seeding and freezing -----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["lenet_10_10", "cifar_resnet_8_2"])
def test_same_seed_same_weights_and_global_rng_untouched(name):
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = get(name, seed=7).state_dict()
    assert torch.equal(torch.get_rng_state(), state)
    torch.rand(1000)  # move the global RNG: the model must not depend on it
    second = get(name, seed=7).state_dict()
    other = get(name, seed=8).state_dict()
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    random_keys = [k for k in first if k.endswith("weight")]
    assert all(not torch.equal(first[k], other[k]) for k in random_keys)


def test_freezing():
    plain = get("cifar_resnet_8_2")
    assert all(p.requires_grad for p in plain.parameters())
    bn_frozen = get("cifar_resnet_8_2", bn_frozen=True)
    frozen = {k for k, p in bn_frozen.named_parameters() if not p.requires_grad}
    bn_params = {k for k, p in bn_frozen.named_parameters() if p.dim() == 1 and not k.startswith("fc.")}
    assert frozen == bn_params and len(frozen) == 2 * (1 + 3 * 2 + 2)  # stem, 6 block BNs, 2 shortcut BNs
    out_frozen = get("cifar_resnet_8_2", out_frozen=True)
    assert {k for k, p in out_frozen.named_parameters() if not p.requires_grad} == {"fc.weight", "fc.bias"}
    both = get("lenet_10_10", MNIST, bn_frozen=True, out_frozen=True)
    assert [k for k, p in both.named_parameters() if not p.requires_grad] == ["fc.weight", "fc.bias"]


# ---- names, recipes, errors ---------------------------------------------------------------------

VALID = ["lenet_300_100", "mnist_lenet", "cifar_lenet_5", "cifar100_lenet_300_100", "cifar_resnet_20",
         "resnet_8_2", "cifar_resnet_110_64", "cifar_vgg_19", "imagenet_resnet_152", "imagenet_resnet_50_32",
         "tinyimagenet_resnet_18", "tinyimagenet_modifiedresnet_34_16"]
INVALID = ["", "lenet_0", "lenet_300_", "mnist_lenet_300_abc", "svhn_lenet_300", "cifar_resnet_21",
           "cifar_resnet_2", "resnet_18", "cifar_resnet_20_0", "cifar_vgg_12", "cifar_vgg_016", "vgg_16",
           "imagenet_resnet_19", "imagenet_resnet_50_", "tinyimagenet_resnet_20", "Cifar_resnet_20"]


BARE = {"lenet_300_100"}  # a valid --model_name without a recipe: it names no dataset


@pytest.mark.parametrize("name", VALID)
def test_valid_names_belong_to_exactly_one_family(name):
    assert registry.exists(name)
    assert sum(family.parse(name) is not None for family in registry.families()) == 1
    dataset = "mnist" if name in BARE else None
    assert registry.default_hparams(name, dataset)["model"]["model_name"] == name


@pytest.mark.parametrize("name", ["lenet_300_100", "lenet", "lenet_10_10"])
def test_a_lenet_without_a_dataset_has_no_recipe_and_says_which_names_do(name):
    with pytest.raises(UserError) as error:
        registry.default_hparams(name)
    message = str(error.value)
    assert "\n" not in message and "names no dataset" in message
    assert f"fashionmnist_{name}" in message and f"mnist_{name}" in message
    # the trunk's own dataset gives it one (reading a trained model's defaults): the prefixed name's recipe
    for dataset in ("mnist", "fashionmnist", "cifar10"):
        recipe = registry.default_hparams(name, dataset)
        prefixed = registry.default_hparams(f"{dataset}_{name}")
        assert recipe["dataset"] == prefixed["dataset"] and recipe["pruning"] == prefixed["pruning"]
        assert recipe["training"] == prefixed["training"] and recipe["model"]["model_name"] == name


@pytest.mark.parametrize("name", INVALID)
def test_invalid_names_are_user_errors(name):
    assert not registry.exists(name)
    for call in (lambda: get(name), lambda: registry.default_hparams(name)):
        with pytest.raises(UserError) as error:
            call()
        message = str(error.value)
        assert "\n" not in message and repr(name) in message
        assert all(pattern in message for pattern in registry.name_patterns())


def assert_registry_convention(module: str, attribute: str, is_object, listing: str = "REGISTRY.names()"):
    """The registry `attribute` of `module` follows foundations/registry.py: every entry it lists
    declares NAME (its listed name), a one-line SUMMARY and an object that passes `is_object`; no
    other module in its folders declares NAME, SUMMARY or that object; and importing the registry
    and evaluating `listing` (in a fresh process) imports no entry module. Returns the names."""
    reg = getattr(importlib.import_module(module), attribute)
    names = reg.names()
    assert names
    for name in names:
        entry = importlib.import_module(reg.entry(name).module)
        assert entry.NAME == name
        assert isinstance(entry.SUMMARY, str) and entry.SUMMARY.strip() and "\n" not in entry.SUMMARY
        assert is_object(getattr(entry, reg.attribute)), entry.__name__
    entry_files = {module_path(reg.entry(name).module) for name in names}
    for folder in reg.folders():
        for path in folder.rglob("*.py"):
            if path not in entry_files:
                assigned = {target.id for node in ast.parse(path.read_text()).body if isinstance(node, ast.Assign)
                            for target in node.targets if isinstance(target, ast.Name)}
                assert not assigned & {"NAME", "SUMMARY", reg.attribute}, f"{path} is a helper, not an entry"
    code = (f"import importlib, json, sys\nmodule = importlib.import_module({module!r})\n"
            f"REGISTRY = getattr(module, {attribute!r})\nlisted = {listing}\n"
            "entries = {REGISTRY.entry(name).module for name in REGISTRY.names()}\n"
            "print(json.dumps({'listed': listed, 'imported': sorted(entries & set(sys.modules))}))")
    child = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env(), capture_output=True, text=True,
                           check=True)
    result = json.loads(child.stdout)
    assert result["imported"] == [] and result["listed"]
    return names


def test_every_family_follows_the_registry_convention():
    names = assert_registry_convention("models.registry", "MODELS", lambda family: isinstance(family, ModelFamily))
    assert names == sorted(info.name for info in pkgutil.iter_modules(models.__path__)
                           if hasattr(importlib.import_module(f"models.{info.name}"), "FAMILY"))
    assert [registry.MODELS.get(name) for name in names] == list(registry.families())


def test_name_patterns_cover_every_family():
    patterns = registry.name_patterns()
    modules = {info.name for info in pkgutil.iter_modules(models.__path__)
               if hasattr(importlib.import_module(f"models.{info.name}"), "FAMILY")}
    assert len(patterns) == len(registry.families()) == len(modules) >= 6
    assert any("cifar_vgg_{11,13,16,19}" in p for p in patterns)


@pytest.mark.parametrize("field, value, valid", [
    ("init", "xavier", "kaiming_normal, kaiming_uniform, glorot_uniform, orthogonal, standard_normal, binary"),
    ("bn_init", "zeros", "uniform, fixed")])
def test_unknown_initializers_are_user_errors(field, value, valid):
    with pytest.raises(UserError, match=valid):
        get("lenet_10_10", MNIST, **{field: value})


CIFAR_TRAINING = {"optimizer_name": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4,
                  "training_steps": "160ep", "milestone_steps": "80ep,120ep", "gamma": 0.1}
KAIMING_UNIFORM_BN = {"model_init": "kaiming_normal", "batchnorm_init": "uniform"}


@pytest.mark.parametrize("name, expected", [
    ("mnist_lenet_300_100", {
        "dataset": {"dataset_name": "mnist", "batch_size": 128},
        "model": {"model_name": "mnist_lenet_300_100", **KAIMING_UNIFORM_BN},
        "training": {"optimizer_name": "sgd", "lr": 0.1, "training_steps": "40ep"},
        "pruning": {"prune_layers_to_ignore": "fc.weight"}}),
    ("cifar_resnet_20", {
        "dataset": {"dataset_name": "cifar10", "batch_size": 128, "input_normalization": "imagenet"},
        "model": {"model_name": "cifar_resnet_20", **KAIMING_UNIFORM_BN},
        "training": CIFAR_TRAINING, "pruning": {}}),
    ("cifar_vgg_16", {
        "dataset": {"dataset_name": "cifar10", "batch_size": 128, "input_normalization": "imagenet"},
        "model": {"model_name": "cifar_vgg_16", **KAIMING_UNIFORM_BN},
        "training": CIFAR_TRAINING, "pruning": {"prune_layers_to_ignore": "fc.weight"}}),
    ("imagenet_resnet_50", {
        "dataset": {"dataset_name": "imagenet", "batch_size": 1024},
        "model": {"model_name": "imagenet_resnet_50", **KAIMING_UNIFORM_BN},
        "training": {"optimizer_name": "sgd", "lr": 0.4, "momentum": 0.9, "weight_decay": 1e-4,
                     "training_steps": "90ep", "milestone_steps": "30ep,60ep,80ep", "gamma": 0.1,
                     "warmup_steps": "5ep"}, "pruning": {}}),
    ("tinyimagenet_resnet_18", {
        "dataset": {"dataset_name": "tinyimagenet", "batch_size": 256},
        "model": {"model_name": "tinyimagenet_resnet_18", **KAIMING_UNIFORM_BN},
        "training": {"optimizer_name": "sgd", "lr": 0.2, "momentum": 0.9, "weight_decay": 1e-4,
                     "training_steps": "200ep", "milestone_steps": "100ep,150ep", "gamma": 0.1,
                     "warmup_steps": "5ep"}, "pruning": {}}),
])
def test_published_recipes(name, expected):
    assert registry.default_hparams(name) == expected


@pytest.mark.parametrize("name, dataset", [
    ("fashionmnist_lenet_300_100", "fashionmnist"),
    ("mnist_lenet", "mnist"),
    ("cifar_lenet_10", "cifar10"), ("cifar10_lenet_10", "cifar10"), ("cifar100_lenet_10", "cifar100")])
def test_lenet_prefix_picks_the_dataset(name, dataset):
    assert registry.default_hparams(name)["dataset"]["dataset_name"] == dataset


@pytest.mark.parametrize("name", VALID)
def test_ignored_layers_are_real_keys_and_recipes_are_fresh_dicts(name):
    dataset = "mnist" if name in BARE else None
    recipe = registry.default_hparams(name, dataset)
    ignored = recipe["pruning"].get("prune_layers_to_ignore")
    if ignored:
        family, spec = registry._lookup(name)
        model = on_meta(lambda: family.build(spec, CIFAR, 10))
        assert set(ignored.split(",")) <= set(model.prunable_layer_names)
    recipe["training"]["lr"] = -1.0  # callers may edit what they get
    assert registry.default_hparams(name, dataset)["training"]["lr"] > 0


def test_tinyimagenet_family_reuses_the_imagenet_resnet():
    spec = tinyimagenet_resnet.parse("tinyimagenet_modifiedresnet_50_32")
    assert spec == tinyimagenet_resnet.TinyResNetSpec(imagenet_resnet.ResNetSpec(50, 32), True)
