"""The hyperparameter bundles that define a dense training run (the trunk)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from foundations.checks import check_fraction
from foundations.digests import checkpoint_digest, tokenizer_digest
from foundations.errors import UserError
from foundations.hparams import Hparams, hparam
from foundations.step import Step, check_nonzero_step, check_step_list_syntax, check_step_syntax


@dataclass
class DatasetHparams(Hparams):
    _name = "Dataset Hyperparameters"
    _description = "Which data, in which batches, with which transformations."

    dataset_name: str = hparam(help="mnist | fashionmnist | cifar10 | cifar100 | tinyimagenet | tinyimagenet2 | "
                                    "imagenet | xor | sine | iris | wine | breastcancer | fortunes")
    batch_size: int = hparam(help="examples per training step")
    do_not_augment: bool = hparam(False, "turn off the dataset's training augmentation")
    transformation_seed: Optional[int] = hparam(
        None, "seed for augmentation, subsampling and random labels (default: derived from the replicate)")
    subsample_fraction: Optional[float] = hparam(None, "train on this fraction of the training set (seeded)")
    random_labels_fraction: Optional[float] = hparam(
        None, "replace this fraction of training labels with random ones (seeded)")
    validation_fraction: Optional[float] = hparam(
        None, "hold out this fraction of the training set as a validation split (seeded, stratified by class)")
    input_normalization: str = hparam(
        "dataset", "dataset (each channel by the training images' mean and std; tables standardized) | imagenet "
                   "(ImageNet's statistics, as OpenLTH normalizes CIFAR) | unit (pixels in [0, 1]) | raw (pixel values "
                   "0-255; tables unstandardized)", choices=("dataset", "imagenet", "unit", "raw"))
    table_split: str = hparam(
        "stratified", "tables: stratified (a seeded class-stratified hold-out; test rows standardized with the "
                      "training rows' statistics) | legcnet (the LEGCNet authors': numpy's seed-42 shuffle, the "
                      "first rows train in that order, the test rows standardized with their own statistics)",
        choices=("stratified", "legcnet"))
    context_length: Optional[int] = hparam(
        None, "text: tokens per window (default: the corpus's, e.g. 128 for fortunes)")
    tokenizer: Optional[str] = hparam(
        None, "text: tokenize the corpus with the tokenizer saved in this directory (e.g. the --pretrained GPT-2's; "
              "the hf extra) instead of as bytes; not hashed: its digest is", hashed=False)
    tokenizer_digest: Optional[str] = hparam(
        None, "sha256 of the --tokenizer directory's files (filled in from it; given, it is checked)")

    def validate(self) -> None:
        if self.tokenizer is not None:
            digest = tokenizer_digest(self.tokenizer)
            if self.tokenizer_digest not in (None, digest):
                raise UserError(f"--tokenizer={self.tokenizer} has digest {digest}, not --tokenizer_digest="
                                f"{self.tokenizer_digest}: its files changed; drop --tokenizer_digest for a new run")
            self.tokenizer_digest = digest
        if self.context_length is not None and self.context_length < 1:
            raise UserError(f"--context_length={self.context_length} must be a positive number of tokens")
        if self.batch_size is not None and self.batch_size <= 0:
            raise UserError(f"--batch_size={self.batch_size} must be a positive integer")
        check_fraction(self.subsample_fraction, "subsample_fraction", zero=False)
        check_fraction(self.random_labels_fraction, "random_labels_fraction")
        check_fraction(self.validation_fraction, "validation_fraction", zero=False)


BIAS_INITS = ("pytorch", "zero", "normal")  # models/initializers.py says what each does


@dataclass
class ModelHparams(Hparams):
    _name = "Model Hyperparameters"
    _description = "The architecture and its initialization."

    model_name: str = hparam(help="e.g. fashionmnist_lenet_300_100, cifar_resnet_20, cifar_vgg_16, imagenet_resnet_50")
    model_init: str = hparam("kaiming_normal",
                             "kaiming_normal | kaiming_uniform | glorot_uniform | orthogonal | standard_normal "
                             "(std 1) | binary | pytorch (each layer's own default draw) | normal (std --init_std)")
    batchnorm_init: str = hparam("uniform", "uniform | fixed")
    batchnorm_frozen: bool = hparam(False, "do not train batchnorm weights and biases")
    output_frozen: bool = hparam(False, "do not train the output layer")
    bias_init: str = hparam("pytorch", "pytorch (each layer's default draw, as OpenLTH) | zero | "
                                       "normal (std --init_std)", choices=BIAS_INITS)
    init_std: float = hparam(0.1, "std of --model_init=normal and --bias_init=normal (0.1: the 'Missing the Mark' "
                                  "fork's standard_normal, the LEGCNet authors' iris init)")
    init_seed: Optional[int] = hparam(None, "seed for the initial weights (default: derived from the replicate)")
    pretrained: Optional[str] = hparam(
        None, "start from this Hugging Face checkpoint directory (save_pretrained format; model names "
              "[<dataset>_]hf, see docs/transformers.md); not hashed: the checkpoint's digest is", hashed=False)
    pretrained_digest: Optional[str] = hparam(
        None, "sha256 of the --pretrained directory's files (filled in from it; given, it is checked)")

    def validate(self) -> None:
        if not self.init_std > 0:
            raise UserError(f"--init_std={self.init_std} must be a positive number")
        if self.pretrained is not None:
            digest = checkpoint_digest(self.pretrained)
            if self.pretrained_digest not in (None, digest):
                raise UserError(f"--pretrained={self.pretrained} has digest {digest}, not --pretrained_digest="
                                f"{self.pretrained_digest}: its files changed; drop --pretrained_digest for a new run")
            self.pretrained_digest = digest
            if (self.model_init, self.bias_init) != ("pytorch", "pytorch"):
                raise UserError(f"--model_init={self.model_init} --bias_init={self.bias_init} would redraw the "
                                "--pretrained weights: give --model_init=pytorch --bias_init=pytorch (as "
                                "--default_hparams=<dataset>_hf does)")
        if self.init_std != 0.1 and "normal" not in (self.model_init, self.bias_init):
            raise UserError(f"--init_std={self.init_std} is used only by --model_init=normal or --bias_init=normal: "
                            "give one of them, or drop --init_std")


OPTIMIZERS = ("sgd", "adam", "adamw")
DATA_ORDERS = ("shuffled", "fixed")
# The data-order seed --data_order=fixed stands for: the loaders (datasets/seeds.py) read it as "one
# fixed shuffle of the training split, the same every epoch".
FIXED_ORDER = 2**63 - 1
PRECISIONS = ("fp32", "bf16")
LOSSES = ("cross_entropy", "mse", "softmax_mse", "sigmoid_mse")
LR_SCHEDULES = ("milestones", "cosine")


def check_range(value: Optional[float], flag: str, expected: str, low: Optional[float] = None,
                high: Optional[float] = None, low_open: bool = False) -> None:
    """UserError unless low <= value (< if low_open) and value < high; None passes."""
    if value is None:
        return
    below = low is not None and (value <= low if low_open else value < low)
    if below or (high is not None and value >= high):
        raise UserError(f"--{flag}={value} is out of range: give {expected}")


@dataclass
class TrainingHparams(Hparams):
    _name = "Training Hyperparameters"
    _description = "The optimizer, its schedule, and what is saved along the way."

    optimizer_name: str = hparam(help="sgd | adam | adamw", choices=OPTIMIZERS)
    lr: float = hparam(help="learning rate")
    training_steps: str = hparam(help="length of training, e.g. 160ep, 500it, 2ep10it")
    momentum: float = hparam(0.0, "SGD momentum")
    nesterov: bool = hparam(False, "Nesterov momentum (SGD)")
    milestone_steps: Optional[str] = hparam(
        None, "steps where the learning rate is multiplied by gamma, e.g. 80ep,120ep", is_list=True)
    gamma: Optional[float] = hparam(None, "learning-rate factor at each milestone")
    warmup_steps: Optional[str] = hparam(None, "linear learning-rate warmup from 0 over this many steps")
    weight_decay: Optional[float] = hparam(None, "L2 weight decay (decoupled for adamw)")
    data_order_seed: Optional[int] = hparam(None,
                                            "seed for the order of examples (default: derived from the replicate)")
    data_order: str = hparam("shuffled", "shuffled (a new seeded order every epoch) | fixed (the same order every "
                                         "epoch: the rows as --table_split=legcnet leaves them, else one shuffle by "
                                         "numpy's RandomState(42): the LEGCNet authors' loop)",
                             choices=DATA_ORDERS)
    weight_save_steps: Optional[str] = hparam(
        None, "extra steps at which to save the weights, e.g. 1000it,2ep; observation only, not hashed: asked of a "
              "finished run, they are saved by replaying its training", is_list=True, hashed=False)
    eval_every: Optional[str] = hparam(
        None, "evaluate on the test set this often (default: every epoch); observation only, not hashed: asked of a "
              "finished run, the missing evaluations come from replaying its training", hashed=False)
    precision: str = hparam("fp32", "fp32 | bf16 (bf16 autocast, CUDA only)", choices=PRECISIONS)
    loss: Optional[str] = hparam(
        None, "cross_entropy | mse | softmax_mse | sigmoid_mse (mse variants on one-hot targets for "
              "classification) (default: the dataset's task: cross_entropy, or mse for regression)", choices=LOSSES)
    lr_schedule: str = hparam("milestones", "milestones (x gamma at each milestone) | cosine (decay to --final_lr "
                              "after the warmup)", choices=LR_SCHEDULES)
    final_lr: Optional[float] = hparam(None, "where the cosine schedule ends (default: 0)")
    label_smoothing: float = hparam(0.0, "cross-entropy label smoothing in [0, 1) (0: off); training loss only, "
                                         "evaluation reports the plain cross-entropy")
    # Pretraining (OpenLTH's --pretrain_* flags): a dense run before this one, whose final weights this
    # run starts from (runs/trunk.py). Every field is off by default, so no earlier hash changes.
    pretrain_training_steps: Optional[str] = hparam(
        None, "first pretrain for this long (e.g. 2ep) on --pretrain_dataset_name with the --pretrain_* recipe, then "
              "train from the pretrained weights (default: no pretraining)")
    pretrain_dataset_name: Optional[str] = hparam(None, "the pretraining dataset (default: the main dataset)")
    pretrain_batch_size: Optional[int] = hparam(None, "pretraining batch size (default: the main --batch_size)")
    pretrain_optimizer_name: Optional[str] = hparam(None, "pretraining optimizer (default: the main one)",
                                                    choices=OPTIMIZERS)
    pretrain_lr: Optional[float] = hparam(None, "pretraining learning rate (default: the main --lr)")
    pretrain_momentum: Optional[float] = hparam(None, "pretraining SGD momentum (default: the main --momentum)")
    pretrain_weight_decay: Optional[float] = hparam(None, "pretraining weight decay (default: the main one)")
    pretrain_milestone_steps: Optional[str] = hparam(
        None, "pretraining learning-rate milestones, e.g. 1ep (default: none)", is_list=True)
    pretrain_gamma: Optional[float] = hparam(None, "learning-rate factor at each pretraining milestone")

    def validate(self) -> None:
        if self.training_steps is not None:
            check_nonzero_step(self.training_steps, "training_steps")
        if self.warmup_steps is not None:
            check_step_syntax(self.warmup_steps, "warmup_steps")
        if self.eval_every is not None:
            check_nonzero_step(self.eval_every, "eval_every")
        for flag in ("milestone_steps", "weight_save_steps"):
            if getattr(self, flag) is not None:
                check_step_list_syntax(getattr(self, flag), flag)
        if self.milestone_steps and self.gamma is None:
            raise UserError("--milestone_steps needs --gamma (the factor applied at each milestone)")
        if self.milestone_steps and self.lr_schedule == "cosine":
            raise UserError("--milestone_steps belong to --lr_schedule=milestones; the cosine schedule has none")
        if self.final_lr is not None and self.lr_schedule != "cosine":
            raise UserError("--final_lr is where --lr_schedule=cosine ends: add --lr_schedule=cosine or drop it")
        if self.data_order == "fixed":  # the loaders read the order from the seed
            if self.data_order_seed not in (None, FIXED_ORDER):
                raise UserError(f"--data_order_seed={self.data_order_seed} seeds a shuffled order, but --data_order="
                                f"fixed never shuffles: drop one of the two")
            self.data_order_seed = FIXED_ORDER
        check_range(self.lr, "lr", "a positive learning rate such as 0.1", low=0.0, low_open=True)
        check_range(self.momentum, "momentum", "a momentum in [0, 1), e.g. 0.9", low=0.0, high=1.0)
        check_range(self.weight_decay, "weight_decay", "a weight decay >= 0, e.g. 1e-4", low=0.0)
        check_range(self.gamma, "gamma", "a positive factor such as 0.1", low=0.0, low_open=True)
        check_range(self.final_lr, "final_lr", "a learning rate >= 0", low=0.0)
        check_range(self.label_smoothing, "label_smoothing", "a smoothing in [0, 1), e.g. 0.1", low=0.0, high=1.0)
        if self.label_smoothing and self.loss not in (None, "cross_entropy"):
            raise UserError(f"--label_smoothing smooths the cross-entropy; --loss={self.loss} has none: drop one")
        if self.nesterov and (self.optimizer_name != "sgd" or not self.momentum):
            raise UserError("--nesterov needs --optimizer_name=sgd with a --momentum above 0")
        self.validate_pretraining()

    def validate_pretraining(self) -> None:
        given = [f"--{name}" for name in PRETRAIN_FIELDS if getattr(self, name) is not None]
        if self.pretrain_training_steps is None:
            if given:
                raise UserError(f"{given[0]} sets up pretraining, which --pretrain_training_steps turns on: add it "
                                f"(e.g. --pretrain_training_steps=2ep) or drop {given[0]}")
            return
        check_nonzero_step(self.pretrain_training_steps, "pretrain_training_steps")
        if self.pretrain_milestone_steps is not None:
            check_step_list_syntax(self.pretrain_milestone_steps, "pretrain_milestone_steps")
            if self.pretrain_gamma is None:
                raise UserError("--pretrain_milestone_steps needs --pretrain_gamma (the factor at each milestone)")
        if self.pretrain_batch_size is not None and self.pretrain_batch_size <= 0:
            raise UserError(f"--pretrain_batch_size={self.pretrain_batch_size} must be a positive integer")

    def pretraining(self) -> Optional["TrainingHparams"]:
        """The pretraining recipe (None without --pretrain_training_steps): the main optimizer, lr,
        momentum and weight decay unless a --pretrain_* flag replaces them, its own milestones, no
        warmup, and nothing of the main run's schedule or observation flags."""
        if self.pretrain_training_steps is None:
            return None
        def given(name: str):
            value = getattr(self, f"pretrain_{name}")
            return getattr(self, name) if value is None else value
        momentum = given("momentum")
        return TrainingHparams(
            optimizer_name=given("optimizer_name"), lr=given("lr"), training_steps=self.pretrain_training_steps,
            momentum=momentum, nesterov=self.nesterov and bool(momentum) and given("optimizer_name") == "sgd",
            milestone_steps=self.pretrain_milestone_steps,
            gamma=self.pretrain_gamma, weight_decay=given("weight_decay"), precision=self.precision, loss=self.loss,
            label_smoothing=self.label_smoothing)

    def check_steps(self, iterations_per_epoch: int) -> None:
        """Refuse steps beyond the end of training (they would silently never happen)."""
        end = Step.parse(self.training_steps, iterations_per_epoch, "training_steps")
        steps = [(flag, Step.parse(getattr(self, flag), iterations_per_epoch, flag))
                 for flag in ("warmup_steps", "eval_every") if getattr(self, flag) is not None]
        steps += [(flag, step) for flag in ("milestone_steps", "weight_save_steps")
                  for step in Step.parse_list(getattr(self, flag), iterations_per_epoch, flag)]
        for flag, step in steps:
            if step > end:
                raise UserError(f"--{flag} has {step} beyond the end of training ({self.training_steps} = {end}): "
                                f"give steps up to {end}")


PRETRAIN_FIELDS = ("pretrain_training_steps", "pretrain_dataset_name", "pretrain_batch_size", "pretrain_optimizer_name",
                   "pretrain_lr", "pretrain_momentum", "pretrain_weight_decay", "pretrain_milestone_steps",
                   "pretrain_gamma")


# The trunk's bundles, by the key under which hparams.json stores each (a branch adds its own).
TRUNK_BUNDLES: dict[str, type[Hparams]] = {
    "dataset": DatasetHparams, "model": ModelHparams, "training": TrainingHparams}
