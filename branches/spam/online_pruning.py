"""Online SpaM pruning (Dhahri et al., 2024): prune by the posterior during marginal-likelihood training.

At the marginal-likelihood updates of SpaM training (branches/spam/prior_training.py) that fall
at the end of every --prune_interval-th epoch (or of epoch E - 1), the weights are pruned by OPD
(theta^2 * P_ii) or by the posterior precision alone (P_ii) to the scheduled sparsity

    s(e) = s0 + (s_final - s0) * min(1, floor(e / interval) / floor(E / interval))

after epoch e of E, a staircase from --initial_sparsity to --final_sparsity, over the considered
weights ranked globally. The defaults are the authors' (marglikopt_sp_new.py, train_cfg_online.py):
the pruning sits between the Laplace fit and the prior's Adam steps (scores from the fit's prior
and curvature), the curvature is the GGN (`--curvature=diag_ggn`), and the mask is dynamic: pruned
weights are zeroed at the event only and may regrow until the next one. The variants:
--prune_every_update prunes at every update (every --marglik_frequency epochs);
--dynamic_mask=false keeps a persistent mask (pruned weights stay exactly zero between events,
gradients zeroed before each step, weights after it, and are left out of the Laplace posterior);
--prune_before_update=false prunes after the Adam steps, with the updated prior.

The mask is part of checkpoint.pt; the run's final mask is its mask.pt and sparsity.json. Each
event logs `target_sparsity` and `pruned_sparsity`, every evaluation `sparsity` (the exact zeros
of the considered weights), so metrics.jsonl holds the accuracy-vs-sparsity trajectory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from bayes import STRUCTURES, Curvature, opd_scores, posterior_precision_diagonal
from branches.spam.prior_training import SpamHook, SpamHparams
from foundations.errors import UserError
from foundations.hparams import Hparams, hparam
from pruning.mask import Mask
from pruning.masked import MaskedTraining
from pruning.select import remove
from training.hooks import TrainState

CRITERIA = ("opd", "post_only")


@dataclass
class OnlineSpamHparams(SpamHparams):
    """SpaM training of spam-online: the authors' online code fits the GGN (AsdlGGN), not the EF."""

    curvature: str = hparam("diag_ggn", "diag_ggn (exact diagonal GGN: the authors' online backend) | diag_ef "
                                        "(diagonal empirical Fisher) | kfac (GGN Kronecker factors)",
                            choices=STRUCTURES)


@dataclass
class OnlineHparams(Hparams):
    _name = "Online Pruning Hyperparameters"
    _description = "When and how far SpaM training prunes itself."

    initial_sparsity: float = hparam(0.1, "sparsity s0 of the first pruning events, in [0, 1)")
    final_sparsity: float = hparam(0.99, "sparsity reached after the last interval, in [0, 1)")
    prune_interval: int = hparam(10, "epochs between steps of the sparsity staircase")
    criterion: str = hparam("opd", "opd (theta^2 * posterior precision) | post_only (posterior precision)",
                            choices=CRITERIA)
    prune_every_update: bool = hparam(False, "prune at every marginal-likelihood update; default: only at those "
                                             "ending an epoch that is a multiple of --prune_interval (or E - 1), "
                                             "as the authors")
    dynamic_mask: bool = hparam(True, "let pruned weights regrow between events (the authors' code); false: a "
                                      "persistent mask keeps them at zero and out of the posterior")
    prune_before_update: bool = hparam(True, "prune between the curvature fit and the prior's Adam steps (the "
                                             "authors' code); false: after the update, with the updated prior")
    prune_layers_to_ignore: Optional[str] = hparam(None, "comma-separated weights never pruned (default: none)",
                                                   is_list=True)
    ece_bins: int = hparam(10, "equal-width confidence bins of the ECE (10: the authors' code)")
    map_prior_precision: Optional[float] = hparam(None, "scalar prior precision of the MAP trunk's Laplace "
                                                        "(default: N x its weight decay)")
    seed: Optional[int] = hparam(None, "seed of the random control (default: derived from the replicate)")

    def validate(self) -> None:
        for flag in ("initial_sparsity", "final_sparsity"):
            value = getattr(self, flag)
            if value is not None and not 0 <= value < 1:
                raise UserError(f"--{flag}={value} is outside [0, 1): give a fraction such as 0.9")
        if None not in (self.initial_sparsity, self.final_sparsity) and self.initial_sparsity > self.final_sparsity:
            raise UserError(f"--initial_sparsity={self.initial_sparsity} is above --final_sparsity="
                            f"{self.final_sparsity}: the staircase only goes up")
        if self.prune_interval is not None and self.prune_interval < 1:
            raise UserError(f"--prune_interval={self.prune_interval} must be at least 1 epoch")
        if self.ece_bins is not None and self.ece_bins < 1:
            raise UserError(f"--ece_bins={self.ece_bins} must be at least 1")


def prunes_at(epoch: int, total_epochs: int, interval: int, every_update: bool) -> bool:
    """Whether the marginal-likelihood update at the end of `epoch` prunes: at every update, or
    (the authors') at multiples of the interval and at epoch E - 1."""
    return every_update or epoch % interval == 0 or epoch == total_epochs - 1


def scheduled_sparsity(epoch: int, total_epochs: int, initial: float, final: float, interval: int) -> float:
    """s(e) of the module docstring; needs at least one whole interval in the run."""
    steps = total_epochs // interval
    if steps < 1:
        raise UserError(f"--prune_interval={interval} is longer than training ({total_epochs} epochs): "
                        f"give at most {total_epochs}")
    return initial + (final - initial) * min(1.0, (epoch // interval) / steps)


class OnlinePruningHook(SpamHook):
    """SpaM training that prunes itself at each marginal-likelihood update."""

    def __init__(self, h: SpamHparams, model: torch.nn.Module, likelihood: str, online: OnlineHparams,
                 names: list[str], total_epochs: int, posterior: Optional[tuple[str, ...]] = None):
        super().__init__(h, model, likelihood, posterior)
        self.online, self.names, self.total_epochs = online, list(names), total_epochs
        self.mask = Mask.ones_like(model)
        self.masked: Optional[MaskedTraining] = None
        scheduled_sparsity(0, total_epochs, online.initial_sparsity, online.final_sparsity, online.prune_interval)

    @property
    def persistent(self) -> bool:
        return not self.online.dynamic_mask

    def on_start(self, state: TrainState) -> None:
        super().on_start(state)
        self.mask = self.mask.to(next(state.model.parameters()).device)
        if self.persistent:
            self.masked = MaskedTraining(state.model, self.mask)
            self.masked.zero_weights()

    # ---- keeping pruned weights at zero ----------------------------------------------------
    def before_optimizer_step(self, state: TrainState) -> None:
        if self.masked is not None:
            self.masked.zero_grads()
        super().before_optimizer_step(state)  # the penalty's gradient is 0 where the weight is

    def after_optimizer_step(self, state: TrainState) -> None:
        if self.masked is not None:
            self.masked.zero_weights()
        super().after_optimizer_step(state)

    def curvature_mask(self) -> Optional[dict[str, torch.Tensor]]:
        return dict(self.mask.items()) if self.persistent else None

    # ---- the pruning events ----------------------------------------------------------------
    def before_hyper_steps(self, state: TrainState, curvature: Curvature) -> None:
        if self.online.prune_before_update:
            self.prune(state, curvature)

    def after_hyper_steps(self, state: TrainState, curvature: Curvature) -> None:
        if not self.online.prune_before_update:
            self.prune(state, curvature)

    def prune(self, state: TrainState, curvature: Curvature) -> None:
        epoch = state.iteration // state.iterations_per_epoch
        if not prunes_at(epoch, self.total_epochs, self.online.prune_interval, self.online.prune_every_update):
            return
        target = scheduled_sparsity(epoch, self.total_epochs, self.online.initial_sparsity,
                                    self.online.final_sparsity, self.online.prune_interval)
        score = opd_scores if self.online.criterion == "opd" else posterior_precision_diagonal
        scores = score(curvature, self.prior, names=self.names, temperature=self.h.temperature)
        alive = self.mask if self.persistent else Mask.ones_like(state.model)
        counts = alive.layer_counts()
        total = sum(counts[name]["total"] for name in self.names)
        pruned_already = total - sum(counts[name]["unpruned"] for name in self.names)
        count = max(round(target * total) - pruned_already, 0)
        self.mask = Mask(remove(scores, dict(alive.items()), {tuple(self.names): count}))
        masked = MaskedTraining(state.model, self.mask)
        masked.zero_weights()
        self.masked = masked if self.persistent else None
        self.curvature_iteration = None  # the weights changed: the final posterior is fitted again
        state.log.write(state.iteration, str(state.step),
                        {"target_sparsity": target, "pruned_sparsity": self.sparsity(state.model)})

    def sparsity(self, model: torch.nn.Module) -> float:
        """The fraction of the considered weights that are exactly zero (one host sync)."""
        parameters = dict(model.named_parameters())
        with torch.no_grad():
            zeros = torch.stack([(parameters[name] == 0).sum() for name in self.names]).sum()
        return zeros.item() / sum(parameters[name].numel() for name in self.names)

    def at_eval(self, state: TrainState, metrics: dict[str, float]) -> None:
        metrics["sparsity"] = self.sparsity(state.model)

    def on_end(self, state: TrainState) -> None:
        super().on_end(state)
        if state.platform.is_primary:
            self.mask.to("cpu").save(state.out_dir)

    # ---- checkpoint ------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {**super().state_dict(), "mask": {name: t.cpu() for name, t in self.mask.items()}}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.mask = Mask(state["mask"])
