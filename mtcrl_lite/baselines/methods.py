"""One algorithm contract and the method registry (DomainBed-style).

A method owns its model and optimizer. Each training step it receives per-environment batches

    batches = {env_name: (x, {task: y})}      # every training environment, every step

and returns a dict of floats to log. Methods that ignore environments concatenate them. A new method is
one class here plus one `register(...)` line; methods that need per-task gradients of the shared
parameters (PCGrad, GradVac) override `update` and use `model.shared_parameters()`.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass

import torch
from torch import nn

from mtcrl_lite.baselines import surgery as S
from mtcrl_lite.baselines import weighting as W
from mtcrl_lite.baselines.aggregators import AGGREGATORS, AGGREGATORS_WITH_HP, SOLVER_ERRORS, make_aggregator
from mtcrl_lite.core import losses as L
from mtcrl_lite.core import objective as C
from mtcrl_lite.core.batches import concat, env_index
from mtcrl_lite.core.hparams import COUNT, FRACTION, FREE, NONNEG, POSITIVE, hp
from mtcrl_lite.core.objective import MTCRLHParams
from mtcrl_lite.core.tasks import Task
from mtcrl_lite.models import distributed as D


class NonFiniteLossError(FloatingPointError):
    pass


@dataclass
class NoHParams:
    pass


class Method(nn.Module):
    model_kind = "mtl"
    hparams_cls = NoHParams
    wide_weight_decay = False  # True: the search draws train.weight_decay from a wider range (run.config)

    def __init__(self, model: nn.Module, tasks: list[Task], hparams, lr: float, weight_decay: float, envs: list[str]):
        super().__init__()
        self.model, self.tasks, self.hp, self.envs = model, tasks, hparams, list(envs)
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)

    # -- the contract -------------------------------------------------------------------------
    def objective(self, batches, step: int) -> dict[str, torch.Tensor]:
        """Named, already-weighted loss terms; the total minimized is their sum."""
        raise NotImplementedError

    def update(self, batches, step: int) -> dict[str, float]:
        terms = self.objective(batches, step)
        check_finite(terms, step)
        total = sum(terms.values())
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.step()
        return {"total": float(total.detach()), **{k: float(v.detach()) for k, v in terms.items()}}

    def step(self) -> None:
        """The optimizer step, after averaging the gradients over processes (a no-op in one; distributed.py)."""
        D.sync_grads(self.optimizer)
        self.optimizer.step()

    @torch.no_grad()
    def predict(self, x) -> dict[str, torch.Tensor]:
        return self.model(x)

    def routing_graph(self):
        """The T x K routing graph as nested lists, or None for models without one."""
        g = getattr(self.model, "graph", None)
        return None if g is None else g.detach().cpu().tolist()

    # -- helpers ------------------------------------------------------------------------------
    def task_losses(self, logits, ys) -> dict[str, torch.Tensor]:
        return {t.name: t.loss(logits[t.name], ys[t.name]) for t in self.tasks}


def check_finite(terms: dict[str, torch.Tensor], step: int) -> None:
    for name, v in terms.items():
        if not torch.isfinite(v).all():
            raise NonFiniteLossError(
                f"loss term {name!r} is {float(v.detach())} at step {step}; lower train.lr, or the weight of that "
                f"term, and check the inputs of that step"
            )


class ERM(Method):
    """Vanilla MTL (Caruana 1997): sum of equally weighted task losses on the pooled environments.
    With model_kind = 'stl' the same objective trains one independent network per task."""

    def objective(self, batches, step):
        x, y = concat(batches)
        return {f"task/{k}": v for k, v in self.task_losses(self.model(x), y).items()}


class STL(ERM):
    model_kind = "stl"


class MTCRLMethod(Method):
    """MT-CRL (Hu et al. 2022) under the package's contract: core.mtcrl_backward (the one implementation, also
    the public entry point for your own model), exact or first-order G-IRM as hp.girm_grad says."""

    model_kind = "mtcrl"
    hparams_cls = MTCRLHParams

    def __init__(self, model, tasks, hparams, lr, weight_decay, envs):
        super().__init__(model, tasks, hparams, lr, weight_decay, envs)
        model.theta.requires_grad_(bool(hparams.graph_trainable))  # frozen-A control: Θ never moves
        self.optimizer = torch.optim.Adam(C.param_groups(model, lr, hparams.lr_graph), lr=lr, weight_decay=weight_decay)

    def girm_weight(self, step: int) -> float:
        return C.girm_weight(self.hp, step)

    def objective(self, batches, step):
        return C.mtcrl_loss(self.model, self.tasks, batches, self.hp, step)

    def update(self, batches, step):
        self.optimizer.zero_grad(set_to_none=True)
        terms = C.mtcrl_backward(self.model, self.tasks, batches, self.hp, step, check=lambda t: check_finite(t, step))
        self.step()
        total = sum(v.detach() for v in terms.values())
        return {"total": float(total), **{k: float(v.detach()) for k, v in terms.items()}}


class SurgeryMethod(Method):
    """Shared parameters step along a combination of per-task gradients (T backward passes, the floor);
    task-specific parameters take their own task's gradient. Subclasses implement `combine(G, step)`."""

    def update(self, batches, step):
        x, y = concat(batches)
        losses = self.task_losses(self.model(x), y)
        terms = {f"task/{k}": v for k, v in losses.items()}
        check_finite(terms, step)
        shared = self.model.shared_parameters()
        shared_ids = {id(p) for p in shared}
        own = {t: [p for p in self.model.heads[t].parameters() if id(p) not in shared_ids] for t in losses}
        rows = []
        self.optimizer.zero_grad(set_to_none=True)
        for t, loss in losses.items():
            grads = torch.autograd.grad(loss, shared + own[t], retain_graph=True, allow_unused=True)
            rows.append(
                torch.cat(
                    [
                        (g if g is not None else torch.zeros_like(p)).reshape(-1)
                        for g, p in zip(grads[: len(shared)], shared)
                    ]
                )
            )
            for p, g in zip(own[t], grads[len(shared) :]):
                p.grad = g
        combined = self.combine(D.sync_mean(torch.stack(rows)), step)  # exact under torchrun (distributed.py)
        offset = 0
        for p in shared:
            p.grad = combined[offset : offset + p.numel()].view_as(p).clone()
            offset += p.numel()
        self.step()
        return {"total": float(sum(losses.values()).detach()), **{k: float(v.detach()) for k, v in terms.items()}}

    def combine(self, grads: torch.Tensor, step: int) -> torch.Tensor:
        raise NotImplementedError


class PCGrad(SurgeryMethod):
    """PCGrad (Yu et al. 2020) on the shared encoder; the random task order is seeded by the step."""

    def combine(self, grads, step):
        return S.pcgrad(grads, generator=torch.Generator().manual_seed(step))


@dataclass
class GradVacHParams:
    beta: float = hp(0.01, 1e-3, 0.1, "EMA rate of the target cosine similarity (GradVac paper: 1e-2)", valid=FRACTION)


class GradVac(SurgeryMethod):
    """GradVac (Wang et al. 2021) on the whole shared-parameter vector; EMA targets live in a buffer
    so that they are checkpointed with the model."""

    hparams_cls = GradVacHParams

    def __init__(self, model, tasks, hparams, lr, weight_decay, envs):
        super().__init__(model, tasks, hparams, lr, weight_decay, envs)
        self.register_buffer("target", torch.zeros(len(tasks), len(tasks)))

    def combine(self, grads, step):
        g, target = S.gradvac(grads, self.target, self.hp.beta, generator=torch.Generator().manual_seed(step))
        self.target.copy_(target)
        return g


@dataclass
class AggregatorHParams:
    aggregator: str = hp(
        "upgrad",
        doc=f"a torchjd aggregator of the T x P task-gradient matrix: {sorted({**AGGREGATORS, **AGGREGATORS_WITH_HP})}",
    )


class Aggregated(SurgeryMethod):
    """Any torchjd aggregator (aggregators.py) as the combination of the per-task gradients: one adapter,
    one registry line per aggregator. The fields of the hparams other than `aggregator` are the aggregator's own
    arguments (CAGrad's c, Nash-MTL's update_weights_every, ...: subclasses below only name their dataclass)."""

    hparams_cls = AggregatorHParams

    def __init__(self, model, tasks, hparams, lr, weight_decay, envs):
        super().__init__(model, tasks, hparams, lr, weight_decay, envs)
        options = {f.name: getattr(hparams, f.name) for f in dataclasses.fields(hparams) if f.name != "aggregator"}
        self.aggregate = make_aggregator(hparams.aggregator, len(tasks), **options)

    def combine(self, grads, step):
        # a non-finite gradient or a failed solve (UPGrad's QP, CAGrad's conic program) ends the run like a
        # non-finite loss, so that a search records the failed draw and goes on (sweep.run_configs(record_failures))
        if not torch.isfinite(grads).all():
            raise NonFiniteLossError(f"step {step}: non-finite task gradient entering {self.hp.aggregator}")
        try:
            with warnings.catch_warnings():  # cvxpy: "not DPP" (Nash-MTL's problem is re-solved, never re-compiled)
                warnings.filterwarnings("ignore", message=".*not DPP", category=UserWarning)
                return self.aggregate(grads)
        except SOLVER_ERRORS as e:
            raise NonFiniteLossError(f"step {step}: {self.hp.aggregator} failed: {e}") from e


@dataclass
class CAGradHParams(AggregatorHParams):
    c: float = hp(
        0.4,
        0.1,
        0.9,
        "CAGrad's radius c: the update maximizes the worst task's improvement within c |g0| of the mean gradient g0 "
        "(Liu et al. 2021: 0.4 on NYUv2 and CityScapes; 0 is the mean)",
        valid=NONNEG,
    )


class CAGradMethod(Aggregated):
    hparams_cls = CAGradHParams


@dataclass
class NashMTLHParams(AggregatorHParams):
    update_weights_every: int = hp(
        1,
        doc="solve for new bargaining weights every this many steps, reuse them in between (Navon et al. 2022: 1; "
        "their faster Nash-MTL-50 and -100 use 50 and 100)",
        choices=(1, 5, 25, 50, 100),
        valid=COUNT,
    )
    optim_niter: int = hp(
        20, 5, 50, "iterations of the concave-convex procedure per solve (Navon et al. 2022: 20)", valid=COUNT
    )
    max_norm: float = hp(
        1.0,
        doc="the combined shared gradient is clipped to this norm (Navon et al.'s and torchjd's 1; 0 = none)",
        valid=NONNEG,
    )


class NashMTLMethod(Aggregated):
    """Nash-MTL through torchjd's stateful aggregator. Its state (the step count and the last weights, the start of
    the next solve) is mirrored in buffers after every step and put back into torchjd's object when a checkpoint
    was loaded, so a resumed run continues as the uninterrupted one."""

    hparams_cls = NashMTLHParams

    def __init__(self, model, tasks, hparams, lr, weight_decay, envs):
        super().__init__(model, tasks, hparams, lr, weight_decay, envs)
        self.register_buffer("nash_step", torch.zeros((), dtype=torch.float64))
        self.register_buffer("nash_alpha", torch.ones(len(tasks), dtype=torch.float64))

    def combine(self, grads, step):
        w = self.aggregate.weighting
        if float(w.step) != float(self.nash_step):  # buffers loaded from a checkpoint: restore torchjd's state
            w.reset()
            if float(self.nash_step) > 0:
                w._init_optim_problem()  # torchjd builds its problem at its step 0 only
            w.step = float(self.nash_step)
            w.prvs_alpha = self.nash_alpha.cpu().numpy().copy()
        out = super().combine(grads, step)
        self.nash_step.fill_(float(w.step))
        self.nash_alpha.copy_(torch.as_tensor(w.prvs_alpha, dtype=torch.float64))
        return out


@dataclass
class FairGradHParams(AggregatorHParams):
    alpha: float = hp(
        2.0,
        0.5,
        5.0,
        "FairGrad's alpha of alpha-fairness: 1 is proportional fairness (Nash-MTL's weights), larger approaches "
        "max-min fairness (Ban & Ji 2024; their run scripts: 2)",
        valid=POSITIVE,
    )


class FairGradMethod(Aggregated):
    hparams_cls = FairGradHParams


@dataclass
class IRMHParams:
    lambda_irm: float = hp(1.0, 1e-1, 1e4, "IRMv1 penalty weight once annealed in", valid=NONNEG)
    anneal_steps: int = hp(
        100,
        0,
        1000,
        "penalty weight is 1 for this many steps, then lambda_irm (range as "
        "MT-CRL's: both datasets train for < 1,500 steps)",
        valid=NONNEG,
    )


class IRM(Method):
    """IRMv1 (Arjovsky et al. 2019), per task and environment: mean_e [sum_t R_t^e + w * sum_t penalty_t^e].
    As in DomainBed, the weight is 1 until `anneal_steps`, and the loss is divided by (1 + w) when w > 1 so that
    the task gradients keep their scale (DomainBed also resets Adam at that step; we do not)."""

    hparams_cls = IRMHParams

    def objective(self, batches, step):
        w = self.hp.lambda_irm if step >= self.hp.anneal_steps else 1.0
        scale = 1.0 / (1.0 + w) if w > 1 else 1.0
        x, y = concat(batches)
        logits = self.model(x)
        sizes = [len(b[0]) for b in batches.values()]
        terms = {}
        for t in self.tasks:
            risks, pens = [], []
            for lg, yy in zip(logits[t.name].split(sizes), y[t.name].split(sizes)):
                if not bool(t.labelled(yy).any()):
                    continue  # no label of this task in this environment's batch
                risks.append(t.loss(lg, yy))
                pens.append(L.irm_penalty(lg, yy, t.loss))
            if not risks:
                risks = pens = [logits[t.name].sum() * 0.0]
            terms[f"task/{t.name}"] = scale * torch.stack(risks).mean()
            terms[f"irm/{t.name}"] = scale * w * torch.stack(pens).mean()
        return terms


@dataclass
class VRExHParams:
    lambda_vrex: float = hp(
        10.0,
        1e-1,
        1e5,
        "V-REx penalty weight once annealed in (DomainBed: default 10, range 10^U(-1, 5))",
        valid=NONNEG,
    )
    anneal_steps: int = hp(
        100, 0, 1000, "penalty weight is 1 for this many steps, then lambda_vrex (range as IRM's)", valid=NONNEG
    )


class VREx(Method):
    """V-REx (Krueger et al. 2021), per task: mean_e R_t^e + w * Var_e R_t^e over the environments with labels of t
    (losses.vrex_penalty). As in DomainBed, w is 1 until `anneal_steps`; like our IRM, the loss is divided by (1 + w)
    when w > 1 so that the task gradients keep their scale (DomainBed resets Adam at that step instead)."""

    hparams_cls = VRExHParams

    def objective(self, batches, step):
        w = self.hp.lambda_vrex if step >= self.hp.anneal_steps else 1.0
        scale = 1.0 / (1.0 + w) if w > 1 else 1.0
        x, y = concat(batches)
        env = env_index(batches, x.device)
        risks, present = L.task_env_risks(self.tasks, self.model(x), y, env, len(batches))  # (E, T) each
        task_risk = L.mean_over_present(risks, present)
        terms = {f"task/{t.name}": scale * task_risk[i] for i, t in enumerate(self.tasks)}
        terms["vrex"] = scale * w * L.vrex_penalty(risks, present)
        return terms


class _GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -grad


@dataclass
class DANNHParams:
    lambda_dann: float = hp(0.1, 1e-2, 1.0, "weight of the environment-adversarial loss", valid=NONNEG)
    disc_width: int = hp(64, 16, 256, "hidden width of the environment discriminator", valid=COUNT)


class DANN(Method):
    """DANN (Ganin et al. 2016) with the training environments as domains: an MLP discriminator predicts each
    sample's environment from the shared representation (a feature map is average-pooled over its positions),
    through a gradient-reversal layer (one optimizer, one backward; DomainBed alternates discriminator and
    feature steps instead)."""

    hparams_cls = DANNHParams

    def __init__(self, model, tasks, hparams, lr, weight_decay, envs):
        super().__init__(model, tasks, hparams, lr, weight_decay, envs)
        width = model.width
        self.discriminator = nn.Sequential(
            nn.Linear(width, hparams.disc_width), nn.ReLU(), nn.Linear(hparams.disc_width, len(envs))
        )
        self.optimizer = torch.optim.Adam(
            list(model.parameters()) + list(self.discriminator.parameters()), lr=lr, weight_decay=weight_decay
        )

    def objective(self, batches, step):
        x, y = concat(batches)
        env = env_index(batches, x.device)
        h = self.model.representation(x)
        logits = {name: head(h) for name, head in self.model.heads.items()}
        terms = {f"task/{k}": v for k, v in self.task_losses(logits, y).items()}
        pooled = h.flatten(2).mean(2) if h.dim() > 2 else h
        d = self.discriminator(_GradReverse.apply(pooled))
        terms["dann"] = self.hp.lambda_dann * nn.functional.cross_entropy(d, env)
        return terms


# -- loss weighting (weighting.py holds the update rules) ----------------------------------------------------------


@dataclass
class DWAHParams:
    temperature: float = hp(
        2.0, 0.5, 10.0, "DWA's temperature T; larger is closer to equal weights (Liu et al. 2019: 2)", valid=POSITIVE
    )
    window: int = hp(
        25,
        5,
        100,
        "steps per period over which each task's loss is averaged (DWA's period is an epoch, which the method does "
        "not see; Nash-MTL's implementation: windows of 25 steps; an epoch of Multi-MNIST or MovieLens: 80-95)",
        valid=COUNT,
    )


class DWA(Method):
    """DWA (Liu et al. 2019): task weights K softmax(r / T), r_k = L_k(t-1) / L_k(t-2), from the mean losses of the two
    previous periods of `window` steps (weights 1 during the first two); the weights are constant within a period,
    as within an epoch in the paper. The running sums are buffers, checkpointed with the method."""

    hparams_cls = DWAHParams

    def __init__(self, model, tasks, hparams, lr, weight_decay, envs):
        super().__init__(model, tasks, hparams, lr, weight_decay, envs)
        device = next(model.parameters()).device
        self.register_buffer("loss_sum", torch.zeros(len(tasks), device=device))  # of the current period
        self.register_buffer("period_steps", torch.zeros((), dtype=torch.long, device=device))
        self.register_buffer("means", torch.ones(2, len(tasks), device=device))  # L(t-2), L(t-1)
        self.register_buffer("periods", torch.zeros((), dtype=torch.long, device=device))

    def weights(self) -> list[float]:
        if int(self.periods) < 2:
            return [1.0] * len(self.tasks)
        return W.dwa_weights(self.means[1], self.means[0].clamp_min(1e-12), self.hp.temperature).tolist()

    def update(self, batches, step):
        x, y = concat(batches)
        losses = self.task_losses(self.model(x), y)
        w = self.weights()
        terms = {f"task/{k}": v if wk == 1.0 else wk * v for wk, (k, v) in zip(w, losses.items())}
        check_finite(terms, step)
        total = sum(terms.values())
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.step()
        with torch.no_grad():
            self.loss_sum += torch.stack([v.detach() for v in losses.values()])
            self.period_steps += 1
            if int(self.period_steps) == self.hp.window:
                self.means[0] = self.means[1]
                self.means[1] = self.loss_sum / self.hp.window
                self.loss_sum.zero_()
                self.period_steps.zero_()
                self.periods += 1
        logs = {k: float(v.detach()) for k, v in terms.items()}
        return {"total": float(total.detach()), **logs, **{f"weight/{k}": wk for wk, k in zip(w, losses)}}


@dataclass
class UWHParams:
    init_log_var: float = hp(
        0.0,
        -2.0,
        2.0,
        "initial s_k = log sigma_k^2 of every task (0: every weight exp(-s) starts at 1, as in the Nash-MTL/FAMO "
        "code; LibMTL starts at -0.5)",
        valid=FREE,
    )


class UncertaintyWeighting(Method):
    """Uncertainty weighting (Kendall et al. 2018): sum_k exp(-s_k) L_k + s_k, the log-variances s_k learned with the
    model by the same Adam and learning rate, without weight decay (weighting.uncertainty_loss)."""

    hparams_cls = UWHParams

    def __init__(self, model, tasks, hparams, lr, weight_decay, envs):
        super().__init__(model, tasks, hparams, lr, weight_decay, envs)
        device = next(model.parameters()).device
        self.log_vars = nn.Parameter(torch.full((len(tasks),), float(hparams.init_log_var), device=device))
        self.optimizer = torch.optim.Adam(
            [{"params": list(model.parameters())}, {"params": [self.log_vars], "weight_decay": 0.0}],
            lr=lr,
            weight_decay=weight_decay,
        )

    def objective(self, batches, step):
        x, y = concat(batches)
        losses = self.task_losses(self.model(x), y)
        per_task = W.uncertainty_loss(torch.stack(list(losses.values())), self.log_vars)
        return {f"task/{k}": per_task[i] for i, k in enumerate(losses)}


@dataclass
class FAMOHParams:
    w_lr: float = hp(
        0.025,
        5e-3,
        0.1,
        "learning rate of the task logits (Liu et al. 2023: 0.025 in every experiment)",
        valid=POSITIVE,
    )
    gamma: float = hp(
        0.01, 1e-4, 1e-2, "decay of the task logits, gamma (the official implementation's default: 0.01)", valid=NONNEG
    )


class FAMO(Method):
    """FAMO (Liu et al. 2023, Algorithm 1): the model steps on sum_k z_k log l_k / c (z = softmax of the task logits,
    weighting.famo_loss); then the losses of the same batch are computed again at the new parameters and the logits
    take one Adam step (lr w_lr, L2 decay gamma, as the official code) on z^T delta, delta = the decrease of each
    log-loss. The second forward pass neither draws random numbers nor moves BatchNorm's running statistics; the
    logits and their Adam moments are buffers, checkpointed with the method. `total` logs the plain sum of the task
    losses (FAMO's objective is a sum of log-losses)."""

    hparams_cls = FAMOHParams

    def __init__(self, model, tasks, hparams, lr, weight_decay, envs):
        super().__init__(model, tasks, hparams, lr, weight_decay, envs)
        device = next(model.parameters()).device
        for name in ("logits", "logit_avg", "logit_avg_sq"):
            self.register_buffer(name, torch.zeros(len(tasks), device=device))
        self.register_buffer("logit_steps", torch.zeros((), dtype=torch.long, device=device))

    def update(self, batches, step):
        x, y = concat(batches)
        losses = self.task_losses(self.model(x), y)
        terms = {f"task/{k}": v for k, v in losses.items()}
        check_finite(terms, step)
        before = torch.stack([v.detach() for v in losses.values()])
        weights = W.famo_loss_weights(before, self.logits)
        self.optimizer.zero_grad(set_to_none=True)
        W.famo_loss(torch.stack(list(losses.values())), self.logits).backward()
        self.step()
        stats = {n: b.clone() for n, b in self.model.named_buffers()}  # BatchNorm: this pass does not count
        with torch.no_grad():
            after = torch.stack(list(self.task_losses(self.model(x), y).values()))
            for n, b in self.model.named_buffers():
                b.copy_(stats[n])
            grad = W.famo_logit_grad(self.logits, before, after)
            self.logit_steps += 1
            new = W.adam_step(
                self.logits, grad, self.logit_avg, self.logit_avg_sq, int(self.logit_steps), self.hp.w_lr, self.hp.gamma
            )
            for buf, value in zip((self.logits, self.logit_avg, self.logit_avg_sq), new):
                buf.copy_(value)
        logs = {k: float(v.detach()) for k, v in terms.items()}
        return {"total": float(before.sum()), **logs, **{f"weight/{k}": float(w) for k, w in zip(losses, weights)}}


# -- vanilla MTL with its own knobs tuned --------------------------------------------------------------------------

MAX_WEIGHTED_TASKS = 8  # mtl-strong has a weight ratio for each task after the first, up to this many tasks


def _ratio(t: int):
    return hp(
        0.0,
        -2.3,
        2.3,
        f"ln(w_{t} / w_1): the loss weight of the dataset's task {t} over its first task's (0.1 to 10); ignored where "
        f"the dataset has fewer than {t} tasks",
        valid=FREE,
    )


@dataclass
class TunedMTLHParams:
    dropout: float = hp(
        0.0, 0.0, 0.5, "dropout probability on the shared representation during training steps", valid=FRACTION
    )
    log_w2: float = _ratio(2)
    log_w3: float = _ratio(3)
    log_w4: float = _ratio(4)
    log_w5: float = _ratio(5)
    log_w6: float = _ratio(6)
    log_w7: float = _ratio(7)
    log_w8: float = _ratio(8)


class TunedMTL(Method):
    """Vanilla MTL with the knobs that Kurin et al. (2022) and Xin et al. (2022) tune for unitary scalarization: fixed
    per-task loss weights (T - 1 free log-ratios, weights scaled to sum to T: weighting.ratio_weights), dropout on the
    shared representation, and weight decay over a wider range (run.config.WideDecayTrainConfig). At its defaults it
    is `mtl` step for step."""

    hparams_cls = TunedMTLHParams
    wide_weight_decay = True

    def __init__(self, model, tasks, hparams, lr, weight_decay, envs):
        super().__init__(model, tasks, hparams, lr, weight_decay, envs)
        if len(tasks) > MAX_WEIGHTED_TASKS:
            raise ValueError(
                f"mtl-strong has loss-weight ratios for up to {MAX_WEIGHTED_TASKS} tasks, the dataset has "
                f"{len(tasks)}; add fields log_w{MAX_WEIGHTED_TASKS + 1}... to TunedMTLHParams"
            )
        ratios = [getattr(hparams, f"log_w{t}") for t in range(2, MAX_WEIGHTED_TASKS + 1)]
        self.weights = W.ratio_weights(ratios, len(tasks))

    def objective(self, batches, step):
        x, y = concat(batches)
        h = self.model.representation(x)
        if self.hp.dropout > 0:  # no draw at 0, so that the defaults are mtl's random stream too
            h = nn.functional.dropout(h, self.hp.dropout, training=self.training)
        losses = self.task_losses({name: head(h) for name, head in self.model.heads.items()}, y)
        return {f"task/{k}": v if w == 1.0 else w * v for w, (k, v) in zip(self.weights, losses.items())}


@dataclass(frozen=True)
class MethodSpec:
    name: str
    cls: type
    defaults: dict
    doc: str
    not_searched: tuple = ()  # hyper-parameters with a range that have no effect in this variant
    label: str = ""  # the display name in tables and figures
    paper: bool = False  # a row of the paper's main table (the rest were added here: notebook 10)


METHODS: dict[str, MethodSpec] = {}


def register(name: str, cls: type, doc: str, label: str, paper: bool = False, not_searched: tuple = (), **defaults):
    """Add a method: its name, class, one-line description, display name, whether the paper's table has it, the
    hyper-parameters it ignores, and its defaults over the class's hparams dataclass. Search, tables, figures and
    the Makefile read this registry."""
    METHODS[name] = MethodSpec(name, cls, defaults, doc, tuple(not_searched), label, paper)


register("stl", STL, "single-task learning: one network per task, same backbone", "Single-task", paper=True)
register("mtl", ERM, "vanilla MTL: shared encoder, equal task weights", "MTL")
register("pcgrad", PCGrad, "vanilla MTL + PCGrad on the shared encoder", "PCGrad", paper=True)
register("gradvac", GradVac, "vanilla MTL + GradVac on the shared encoder", "GradVac", paper=True)
register("dann", DANN, "vanilla MTL + environment-adversarial DANN on the shared representation", "DANN", paper=True)
register("irm", IRM, "vanilla MTL + IRMv1 penalty per task and environment", "IRM", paper=True)
for _name, (_cls, _doc) in AGGREGATORS.items():
    _label = _doc.split(" (")[0]
    register(_name, Aggregated, f"vanilla MTL + {_doc} on the shared encoder (torchjd)", _label, aggregator=_name)
register("vrex", VREx, "vanilla MTL + V-REx: variance of each task's risk over environments", "VREx")
register(
    "mtcrl", MTCRLMethod, "MT-CRL with G-IRM Var (the paper's main method)", "MT-CRL, G-IRM Var", paper=True, girm="var"
)
register(
    "mtcrl-norm", MTCRLMethod, "MT-CRL with G-IRM Norm", "MT-CRL, G-IRM Norm", paper=True, girm="norm", lambda_girm=0.1
)
register(
    "mtcrl-nogirm",
    MTCRLMethod,
    "MT-CRL without G-IRM (modules + graph regularizer only)",
    "MT-CRL w/o G-IRM",
    paper=True,
    girm="none",
    not_searched=("lambda_girm", "anneal_steps"),
)
# beyond the paper, added later (registered after the rows above, so that their order in tables stays as it was)
register("cagrad", CAGradMethod, "vanilla MTL + CAGrad on the shared encoder (torchjd)", "CAGrad", aggregator="cagrad")
register(
    "nash-mtl",
    NashMTLMethod,
    "vanilla MTL + Nash-MTL on the shared encoder (torchjd)",
    "Nash-MTL",
    aggregator="nash-mtl",
)
register(
    "fairgrad",
    FairGradMethod,
    "vanilla MTL + FairGrad on the shared encoder (torchjd)",
    "FairGrad",
    aggregator="fairgrad",
)
register("dwa", DWA, "vanilla MTL + Dynamic Weight Average of the task losses", "DWA")
register("uw", UncertaintyWeighting, "vanilla MTL + uncertainty weighting (learned log-variances)", "UW")
register("famo", FAMO, "vanilla MTL + FAMO loss weighting", "FAMO")
register(
    "mtl-strong",
    TunedMTL,
    "vanilla MTL with tuned task-loss weights, dropout and a wider weight-decay range",
    "MTL (tuned weights)",
)


def get_method(name: str) -> MethodSpec:
    if name not in METHODS:
        raise KeyError(f"unknown method {name!r}; valid: {sorted(METHODS)}")
    return METHODS[name]


def default_hparams(name: str):
    spec = get_method(name)
    return spec.cls.hparams_cls(**spec.defaults)
