"""SpaM training: MAP training whose weight decay is a learned prior, tuned by the marginal likelihood.

Dhahri et al. (2024), after Immer et al. (2021): the weights theta and the log precisions of a
Gaussian prior N(0, diag(delta)^-1) are learned together. Every step minimizes

    task loss (mean over the batch)  +  T * 1/2 sum_i delta_i theta_i^2 / N        (delta held fixed)

(the MAP objective over N training examples divided by N; T the temperature, doubled for mean
squared error, which is twice the unit-noise Gaussian negative log likelihood); the penalty's
gradient T delta theta / N is added to the task loss's before each optimizer step. At the end of every
`--marglik_frequency`-th epoch from `--burn_in` on, the Laplace approximation is fitted at the
current weights over the training set (`--curvature`) and `--hyper_steps` Adam steps at
`--hyper_lr` raise its log marginal likelihood in log delta. Adam's moments carry over from one
update to the next, as one optimizer does in the authors' code.

The hook keeps the prior and its optimizer in checkpoint.pt, so a killed run resumes bitwise. It
logs `log_marglik` and a summary of the precisions (`prior_precision_min/median/max`) at each
update, and leaves in the run dir at the end
    prior_precision.pt      {parameter name: delta, shaped like the parameter}
    posterior_precision.pt  {parameter name: diagonal of the posterior precision at the final
                             weights and prior, shaped like the parameter}
both plain dicts of tensors (torch.load(..., weights_only=True)).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch

from bayes import (
    PRIOR_KINDS,
    STRUCTURES,
    Curvature,
    MarglikSchedule,
    fit_curvature,
    log_marginal_likelihood,
    make_prior,
    posterior_precision_diagonal,
    update_prior,
)
from foundations import paths
from foundations.bundles import TrainingHparams
from foundations.errors import UserError
from foundations.hparams import Hparams, hparam
from foundations.step import Step
from platforms.storage import load_torch, save_torch
from runs import run_files
from runs.trunk import Trunk
from training.hooks import Hook, TrainState
from training.loop import train

PRIOR_FILE = "prior_precision.pt"
POSTERIOR_FILE = "posterior_precision.pt"
LIKELIHOOD_OF_LOSS = {"cross_entropy": "classification", "mse": "regression"}


@dataclass
class SpamHparams(Hparams):
    _name = "SpaM Training Hyperparameters"
    _description = "The learned prior that replaces weight decay, and how the marginal likelihood tunes it."

    prior: str = hparam("parameter", "scalar | layer (one per parameter tensor) | parameter (one per weight) | unit "
                                 "(per weight matrix, out-unit times in-unit precisions)", choices=PRIOR_KINDS)
    curvature: str = hparam("diag_ef", "diag_ef (diagonal empirical Fisher: the authors' DiagLaplace backend) | "
                                       "diag_ggn (exact diagonal GGN) | kfac (GGN Kronecker factors)",
                            choices=STRUCTURES)
    marglik_frequency: int = hparam(5, "update the prior at the end of every this many epochs")
    burn_in: int = hparam(0, "no prior update before this epoch")
    hyper_steps: int = hparam(100, "Adam steps on the log prior precisions per update")
    hyper_lr: float = hparam(0.1, "Adam learning rate of the log prior precisions")
    prior_init: float = hparam(1.0, "initial prior precision")
    temperature: float = hparam(1.0, "likelihood temperature T (posterior precision H / T + delta)")

    def validate(self) -> None:
        if self.marglik_frequency is not None and self.marglik_frequency < 1:
            raise UserError(f"--marglik_frequency={self.marglik_frequency} must be a positive number of epochs, "
                            "e.g. 5")
        if self.burn_in is not None and self.burn_in < 0:
            raise UserError(f"--burn_in={self.burn_in} must be zero or more epochs")
        if self.hyper_steps is not None and self.hyper_steps < 0:
            raise UserError(f"--hyper_steps={self.hyper_steps} must be zero or more")
        for flag in ("hyper_lr", "prior_init", "temperature"):
            value = getattr(self, flag)
            if value is not None and not value > 0:
                raise UserError(f"--{flag}={value} must be positive")

    @property
    def schedule(self) -> MarglikSchedule:
        return MarglikSchedule(self.marglik_frequency, self.burn_in)


def first_update_epoch(frequency: int, burn_in: int) -> int:
    """The first epoch whose end updates the prior: the first multiple of `frequency` that is at
    least `burn_in` (and at least 1: updates happen at epoch ends)."""
    return frequency * max(1, -(-burn_in // frequency))


def training_epochs(trunk: Trunk) -> int:
    """The whole epochs of the trunk's training (the epoch ends at which the prior can be updated)."""
    return trunk.end_step.iteration // trunk.iterations_per_epoch


def check_prior_updates(h: SpamHparams, total_epochs: int) -> None:
    """Refuse a run whose training ends before the first prior update (spam and spam-online):
    its prior would stay at --prior_init, so nothing would be learned (and spam-online would never
    prune), silently."""
    first = first_update_epoch(h.marglik_frequency, h.burn_in)
    if first <= total_epochs:
        return
    schedule = f"--marglik_frequency={h.marglik_frequency}" + (f" with --burn_in={h.burn_in}" if h.burn_in else "")
    if total_epochs < 1:
        fix = "train for at least one epoch (the prior is updated at epoch ends)"
    elif h.burn_in > total_epochs:
        fix = f"give --burn_in={total_epochs} or less, or train longer"
    else:
        fix = f"give --marglik_frequency={total_epochs} or less, or train longer"
    raise UserError(f"{schedule} first updates the prior after epoch {first}, but training is {total_epochs} "
                    f"epoch(s): the prior would never be learned; {fix}")


def likelihood_of(training: TrainingHparams, task: str) -> str:
    """The Laplace likelihood that matches the training loss; a UserError for losses it cannot model."""
    loss = training.loss or ("mse" if task == "regression" else "cross_entropy")
    if loss not in LIKELIHOOD_OF_LOSS:
        raise UserError(f"--loss={loss} has no Laplace likelihood: SpaM trains with cross_entropy (classification) "
                        "or mse (regression); drop --loss or set one of those")
    return LIKELIHOOD_OF_LOSS[loss]


def posterior_names(model: torch.nn.Module, task: str) -> Optional[tuple[str, ...]]:
    """The parameters the Laplace posterior and the learned prior cover: every trainable one, or for
    a language model only its prunable layers' weights (the attention and MLP projections and an
    untied head, as the SpaM paper's GPT-2 runs); its embeddings, norms and biases are trained
    without a prior (no weight decay) and held fixed in the Laplace."""
    if task != "language_modeling":
        return None
    return tuple(model.prunable_layer_names)


def check_curvature(h: SpamHparams, task: str) -> None:
    """Refuse, before training, a curvature the task has no route for: a language model's per-token
    outputs take only the empirical Fisher (the GGN would backpropagate positions x vocabulary
    columns per window; bayes.likelihood)."""
    if task == "language_modeling" and h.curvature != "diag_ef":
        raise UserError(f"--curvature={h.curvature} is not available for a language model (its GGN needs "
                        "positions x vocabulary backward passes per window): give --curvature=diag_ef")


def training_size(loader) -> int:
    """N of the MAP objective that the mean training loss divides: the training examples, or for a
    language model (mean token cross-entropy) the tokens, windows x context. The Laplace's loss
    and curvature are sums over the same tokens, so the prior's penalty stays 1/N of the objective."""
    if getattr(loader, "task", None) == "language_modeling":
        return loader.num_examples * loader.context
    return loader.num_examples


def spam_training(training: TrainingHparams) -> TrainingHparams:
    """The trunk's training recipe with its weight decay replaced by the prior (the penalty)."""
    return training.replace(weight_decay=None)


class SpamHook(Hook):
    """Adds the prior's penalty to every step and updates the prior at scheduled epoch ends."""

    key = "spam"

    def __init__(self, h: SpamHparams, model: torch.nn.Module, likelihood: str,
                 posterior: Optional[tuple[str, ...]] = None):
        self.h = h
        self.schedule = h.schedule
        self.likelihood = likelihood
        self.posterior = posterior  # the parameters under the prior and the Laplace (None: all)
        named = dict(model.named_parameters())
        covered = named if posterior is None else {name: named[name] for name in posterior}
        self.prior = make_prior(h.prior, covered, h.prior_init)
        self.hyper_optimizer = torch.optim.Adam(self.prior.parameters(), lr=h.hyper_lr, fused=True)
        self.curvature: Optional[Curvature] = None
        self.curvature_iteration: Optional[int] = None  # the iteration `curvature` was fitted at
        self._decay = 0.0  # c: the penalty is c/2 sum delta theta^2, its gradient c delta theta
        self._parameters: dict[str, torch.Tensor] = {}
        self._deltas: list[torch.Tensor] = []  # delta per parameter, detached, in _weights' order
        self._weights: list[torch.Tensor] = []
        self._names: list[str] = []  # their parameters' names

    # ---- the penalty -------------------------------------------------------------------------
    def on_start(self, state: TrainState) -> None:
        n_data = training_size(state.train_loader)
        self._decay = self.h.temperature * (1.0 if self.likelihood == "classification" else 2.0) / n_data
        self._parameters = dict(state.model.named_parameters())
        self._refresh()

    def _refresh(self) -> None:
        """Cache delta (it changes only at updates), expanded and detached, beside its parameter."""
        if not self._parameters:
            return  # before on_start (a resume restores the prior first)
        with torch.no_grad():
            log_precision = self.prior.log_precision()
            self._deltas = [lp.exp().contiguous() for lp in log_precision.values()]
            self._weights = [self._parameters[name] for name in log_precision]
            self._names = list(log_precision)

    def penalty(self) -> torch.Tensor:
        """The prior's term of this step's loss, T/2 sum delta theta^2 / N (2x for mean squared error)."""
        pairs = zip(self._deltas, self._weights)
        return 0.5 * self._decay * sum((delta * theta.square()).sum() for delta, theta in pairs)

    def before_optimizer_step(self, state: TrainState) -> None:
        """Add the penalty's gradient, c delta theta, to the task loss's: a per-parameter weight decay.

        The same as adding `penalty()` to the loss, in one fused kernel rather than a graph of
        several element-wise operations per tensor (which cost about half a LeNet-300-100 step)."""
        self._add_penalty_gradient([(w.grad, d, w) for w, d in zip(self._weights, self._deltas) if w.grad is not None])

    def before_stacked_optimizer_step(self, state: TrainState, parameters: dict[str, torch.Tensor],
                                      gradients: dict[str, torch.Tensor]) -> None:
        """The same for one member of a stack (training/stacked/), on its slices."""
        self._add_penalty_gradient([(gradients[name], d, parameters[name])
                                    for name, d in zip(self._names, self._deltas) if name in gradients])

    def _add_penalty_gradient(self, triples: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> None:
        if triples:
            grads, deltas, weights = map(list, zip(*triples))
            torch._foreach_addcmul_(grads, deltas, weights, value=self._decay)

    # ---- the marginal-likelihood update ------------------------------------------------------
    def curvature_mask(self) -> Optional[dict[str, torch.Tensor]]:
        """Weights left out of the posterior (pruned ones); none here."""
        return None

    def fit(self, state: TrainState, epoch: int) -> Curvature:
        """The Laplace curvature at the current weights over the training set (epoch `epoch`'s
        batches in dataset order)."""
        self.curvature = fit_curvature(state.model, state.train_loader.batches(max(epoch - 1, 0)), self.likelihood,
                                       self.h.curvature, mask=self.curvature_mask(), posterior=self.posterior)
        self.curvature_iteration = state.iteration
        return self.curvature

    def before_hyper_steps(self, state: TrainState, curvature: Curvature) -> None:
        """Between the fit and the Adam steps (spam-online's pruning may act here)."""

    def after_hyper_steps(self, state: TrainState, curvature: Curvature) -> None:
        """After the Adam steps (spam-online's pruning acts here by default)."""

    def update(self, state: TrainState, epoch: int) -> torch.Tensor:
        curvature = self.fit(state, epoch)
        self.before_hyper_steps(state, curvature)
        value = update_prior(curvature, self.prior, self.h.hyper_steps, self.h.hyper_lr,
                             temperature=self.h.temperature, optimizer=self.hyper_optimizer)
        self._refresh()
        self.after_hyper_steps(state, curvature)
        state.log.write(state.iteration, str(state.step), {"log_marglik": value.item(), **self.precision_summary()})
        return value

    def after_optimizer_step(self, state: TrainState) -> None:
        if state.at_epoch_end and self.schedule.due(state.iteration // state.iterations_per_epoch):
            self.update(state, state.iteration // state.iterations_per_epoch)

    def after_stacked_optimizer_step(self, state: TrainState, parameters: dict[str, torch.Tensor]) -> None:
        """The same for one member of a stack: at an update, its weights (and buffers) go into its
        own module first, where the curvature is fitted as alone."""
        if state.at_epoch_end and self.schedule.due(state.iteration // state.iterations_per_epoch):
            with torch.no_grad():
                for name, tensor in [*state.model.named_parameters(), *state.model.named_buffers()]:
                    if name in parameters:
                        tensor.copy_(parameters[name])
            with torch.enable_grad():  # the stack calls this under no_grad; the curvature backpropagates
                self.update(state, state.iteration // state.iterations_per_epoch)

    def precision_summary(self) -> dict[str, float]:
        with torch.no_grad():
            delta = torch.cat([d.reshape(-1) for d in self._deltas])
            low, median, high = torch.stack([delta.min(), delta.median(), delta.max()]).tolist()
        return {"prior_precision_min": low, "prior_precision_median": median, "prior_precision_max": high}

    # ---- the end: what the run leaves ------------------------------------------------------
    def on_end(self, state: TrainState) -> None:
        if self.curvature is None or self.curvature_iteration != state.iteration:
            self.fit(state, state.iteration // state.iterations_per_epoch)
        if not state.platform.is_primary:
            return
        names = list(self.prior.names)
        posterior = posterior_precision_diagonal(self.curvature, self.prior, names=names,
                                                 temperature=self.h.temperature)
        with torch.no_grad():
            priors = {name: delta.exp().contiguous() for name, delta in self.prior.log_precision().items()}
            value = log_marginal_likelihood(self.curvature, self.prior, temperature=self.h.temperature).item()
        state.log.write(state.iteration, str(state.step), {"final_log_marglik": value})
        save_torch({name: p.detach().cpu() for name, p in priors.items()}, Path(state.out_dir) / PRIOR_FILE)
        save_torch({name: p.detach().cpu() for name, p in posterior.items()}, Path(state.out_dir) / POSTERIOR_FILE)

    # ---- checkpoint ------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"prior": self.prior.state_dict(), "optimizer": self.hyper_optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.prior.load_state_dict(state["prior"])
        self.hyper_optimizer.load_state_dict(state["optimizer"])
        self._refresh()


def read_precisions(run_dir: Path) -> Optional[tuple[dict, dict]]:
    """(prior precisions, posterior precision diagonal) a finished SpaM run left, or None if unreadable."""
    try:
        prior, posterior = (load_torch(Path(run_dir) / name) for name in (PRIOR_FILE, POSTERIOR_FILE))
    except Exception:
        return None
    def tensors(d):
        return isinstance(d, dict) and all(isinstance(v, torch.Tensor) for v in d.values())
    if not (tensors(prior) and tensors(posterior)):
        return None
    return prior, posterior


HookFactory = Callable[[SpamHparams, torch.nn.Module, str, Optional[tuple[str, ...]]], SpamHook]


def train_spam(trunk: Trunk, out_dir: Path, h: SpamHparams,
               make_hook: HookFactory = SpamHook) -> tuple[dict, dict, dict]:
    """SpaM training from the trunk's initialization and data order in `out_dir` (skipped when
    done); returns (done.json, prior precisions, posterior precision diagonal). `make_hook(h,
    model, likelihood, posterior)` builds the hook (spam-online passes its pruning one). A finished run whose
    precision files are unreadable is trained again (training is deterministic)."""
    out_dir = Path(out_dir)
    training = spam_training(trunk.desc.training)
    done = trunk.platform.on_primary(_finished_spam_run, out_dir, trunk.end_step)
    if done is None:
        model = trunk.initial_model()
        hook = make_hook(h, model, likelihood_of(training, trunk.info.task), posterior_names(model, trunk.info.task))
        train(model, training, trunk.loader(True), trunk.loader(False), out_dir, platform=trunk.platform,
              data_order_seed=trunk.seeds["data_order"], hooks=[hook])
        done = trunk.platform.on_primary(run_files.finished, out_dir, trunk.end_step)
    return (done, *read_precisions(out_dir))


def _finished_spam_run(out_dir: Path, end: Step) -> Optional[dict]:
    """done.json of a finished SpaM run whose precision files are readable; one whose files are
    damaged is marked unfinished (done.json moved aside), so that it trains again."""
    run_files.open_run_dir(out_dir)
    done = run_files.finished(out_dir, end)
    if done is not None and read_precisions(out_dir) is None:
        run_files.set_aside(out_dir / paths.DONE)
        run_files.say(f"the prior or posterior precisions in {out_dir} are unreadable; training SpaM again")
        return None
    return done
