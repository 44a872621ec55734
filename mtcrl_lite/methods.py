"""One algorithm contract and the method registry (DomainBed-style).

A method owns its model and optimizer. Each training step it receives per-environment batches

    batches = {env_name: (x, {task: y})}      # every training environment, every step

and returns a dict of floats to log. Methods that ignore environments concatenate them. A new method is
one class here plus one `register(...)` line; methods that need per-task gradients of the shared
parameters (PCGrad, GradVac) override `update` and use `model.shared_parameters()`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from . import losses as L
from . import surgery as S
from .hparams import hp  # noqa: F401  (hp: the field declaration with a search range, methods.hp as before)
from .tasks import Task


class NonFiniteLossError(FloatingPointError):
    pass


@dataclass
class NoHParams:
    pass


@dataclass
class MTCRLHParams:
    lambda_dec: float = hp(0.1, 1e-3, 1.0, "weight of the module decorrelation loss L_dec")
    dec_kind: str = hp("corr", doc="L_dec: 'corr' (the squared cross-correlation between modules, ours) or "
                       "'kernel' (Gaussian-kernel CKA between modules, losses.kernel_dependence; design space, "
                       "not searched)")
    lambda_sps: float = hp(0.01, 1e-4, 0.1, "weight of ||A||_1 in L_graph (sparsity)")
    lambda_bal: float = hp(0.1, 1e-3, 1.0, "weight of the column-balance entropy in L_graph")
    lambda_girm: float = hp(1.0, 1e-2, 1e2, "weight of the G-IRM penalty once annealed in")
    girm: str = hp("var", doc="'var' (paper), 'norm' (ours, IRMv1 analogue) or 'none'")
    anneal_steps: int = hp(100, 0, 1000, "G-IRM weight is 0 for this many steps, then lambda_girm")
    lr_graph: float = hp(1.0, 1.0, 100.0, "learning rate of the routing logits Θ as a multiple of train.lr")
    girm_grad: str = hp("exact", doc="'exact': dR_t^e/dA by double backward through the heads, the penalty's "
                        "gradient reaches every parameter; 'first_order' (ours, for dense decoders): the same dR_t^e/dA "
                        "values read off the main backward pass, the penalty's gradient reaching the encoder through "
                        "the modules Z only (the heads' second derivatives are dropped)")
    graph_trainable: bool = hp(True, doc="False: the routing logits Θ stay at model.theta_init (the frozen-A "
                               "control: MT-CRL's architecture and losses with A fixed; G-IRM still penalises "
                               "dR/dA through the encoder and heads)")


class Method(nn.Module):
    model_kind = "mtl"
    hparams_cls = NoHParams

    def __init__(self, model: nn.Module, tasks: list[Task], hparams, lr: float, weight_decay: float,
                 envs: list[str]):
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
        self.optimizer.step()
        return {"total": float(total.detach()), **{k: float(v.detach()) for k, v in terms.items()}}

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
                f"loss term {name!r} is {float(v.detach())} at step {step}; lower train.lr, or the weight of that term, "
                f"and check the inputs of that step")


def concat(batches):
    xs, ys = zip(*batches.values())
    return torch.cat(xs), {t: torch.cat([y[t] for y in ys]) for t in ys[0]}


class ERM(Method):
    """Vanilla MTL (Caruana 1997): sum of equally weighted task losses on the pooled environments.
    With model_kind = 'stl' the same objective trains one independent network per task."""

    def objective(self, batches, step):
        x, y = concat(batches)
        return {f"task/{k}": v for k, v in self.task_losses(self.model(x), y).items()}


class STL(ERM):
    model_kind = "stl"


class MTCRLMethod(Method):
    """MT-CRL (Hu et al. 2022): Σ_t R_t + λ_dec L_dec + L_graph + λ_G L_G-IRM (METHOD.md §3).

    The task risk is the mean over environments of the per-environment risks R_t^e (over the environments whose
    batch holds labels of task t; see Task for missing labels). For G-IRM the graph A
    is repeated once per environment and each sample reads its environment's copy, so one call of
    autograd.grad(Σ R, copies, create_graph=True) yields every dR_t^e/dA_t, shape (E, T, K).
    """
    model_kind = "mtcrl"
    hparams_cls = MTCRLHParams

    def __init__(self, model, tasks, hparams, lr, weight_decay, envs):
        super().__init__(model, tasks, hparams, lr, weight_decay, envs)
        if hparams.lr_graph <= 0:
            raise ValueError(f"hp.lr_graph must be > 0 (a multiple of train.lr), got {hparams.lr_graph}")
        # Adam moves each parameter by about lr per step, so at lr 1e-3 the logits Θ can travel at most ~1 in
        # 1,000 steps: A = sigmoid(Θ) then cannot leave its start. hp.lr_graph gives Θ its own learning rate.
        model.theta.requires_grad_(bool(hparams.graph_trainable))     # frozen-A control: Θ never moves
        theta = [model.theta]
        rest = [p for p in model.parameters() if p is not model.theta]
        self.optimizer = torch.optim.Adam([{"params": rest}, {"params": theta, "lr": lr * hparams.lr_graph}],
                                          lr=lr, weight_decay=weight_decay)

    def _forward(self, batches, per_sample_graph: bool):
        """Task, decorrelation and graph terms, and what G-IRM needs: (terms, env, risks, present, z, graph copies
        or None, head inputs {task: u_t})."""
        h = self.hp
        if h.girm not in ("none", *L.GIRM_PENALTIES):
            raise ValueError(f"hp.girm must be 'var', 'norm' or 'none', got {h.girm!r}")
        if h.girm_grad not in ("exact", "first_order"):
            raise ValueError(f"hp.girm_grad must be 'exact' or 'first_order', got {h.girm_grad!r}")
        if h.girm_grad == "first_order" and getattr(self.model, "head_read", "concat") != "concat":
            raise ValueError("hp.girm_grad = 'first_order' reads dR/dA off concatenated head inputs; with "
                             "model.head_read = 'sum' pass --set hp.girm_grad=exact")
        x, y = concat(batches)
        env = torch.cat([torch.full((len(b[0]),), i, dtype=torch.long, device=x.device)
                         for i, b in enumerate(batches.values())])
        m = self.model
        z = m.modules_of(x)
        a = m.graph
        copies = a.unsqueeze(0).repeat(len(batches), 1, 1) if per_sample_graph else None   # (E, T, K)
        if copies is not None and not copies.requires_grad:      # frozen A: G-IRM still needs dR/dA
            copies.requires_grad_(True)
        inputs = m.route(z, copies[env] if per_sample_graph else a)       # per-sample graph (B, T, K) or (T, K)
        logits = {name: m.heads[name](u) for name, u in inputs.items()}
        per_sample = torch.stack([t.per_sample_loss(logits[t.name], y[t.name]) for t in self.tasks], 1)
        labelled = torch.stack([t.labelled(y[t.name]) for t in self.tasks], 1)          # (B, T)
        risks = L.env_task_risks(per_sample, env, len(batches), labelled)             # (E, T)
        present = L.env_task_counts(labelled, env, len(batches)) > 0                  # (E, T)
        w = present.to(risks.dtype)
        task_risk = (risks * w).sum(0) / w.sum(0).clamp_min(1)        # mean over environments with labels
        terms = {f"task/{t.name}": task_risk[i] for i, t in enumerate(self.tasks)}
        if h.dec_kind not in L.DECORRELATIONS:
            raise ValueError(f"hp.dec_kind must be one of {sorted(L.DECORRELATIONS)}, got {h.dec_kind!r}; "
                             "pass --set hp.dec_kind=corr")
        terms["dec"] = h.lambda_dec * L.DECORRELATIONS[h.dec_kind](z)
        terms["graph"] = L.graph_regularizer(a, h.lambda_sps, h.lambda_bal)
        return terms, env, risks, present, z, copies, inputs

    def girm_weight(self, step: int) -> float:
        h = self.hp
        return 0.0 if h.girm == "none" or step < h.anneal_steps else float(h.lambda_girm)

    def objective(self, batches, step):
        weight = self.girm_weight(step)
        terms, _, risks, present, _, copies, _ = self._forward(batches, per_sample_graph=weight > 0)
        if weight > 0:
            grads, = torch.autograd.grad(risks.sum(), copies, create_graph=True)
            terms["girm"] = weight * L.GIRM_PENALTIES[self.hp.girm](grads, present)
        return terms

    def update(self, batches, step):
        if self.girm_weight(step) == 0 or self.hp.girm_grad == "exact":
            return super().update(batches, step)
        terms = self.first_order_backward(batches, step)
        self.optimizer.step()
        total = sum(v.detach() for v in terms.values())
        return {"total": float(total), **{k: float(v.detach()) for k, v in terms.items()}}

    def first_order_backward(self, batches, step) -> dict[str, torch.Tensor]:
        """Fill every .grad for first-order G-IRM with one backward pass through the heads and one through the
        encoder (the cost of an MTL step plus the penalty's arithmetic).

        1. Backward of the task risks to the heads' parameters and inputs u_t only: with Total = sum_t mean_{e in E_t}
           R_t^e, |E_t| * dTotal/du_t(b) = dR_t^{e(b)}/du_t(b), so dR_t^e/dA_tk = sum_{b in e} <dR_t^e/du_t(b), Z_k(b)>
           exactly (losses.graph_grads_from_inputs), differentiable through Z.
        2. Backward of sum_t <dTotal/du_t (held constant), u_t> + L_dec + L_graph + λ_G G-IRM through A and the
           encoder: the first term gives A and the encoder the task gradients they would get from a full backward.
        """
        weight = self.girm_weight(step)
        terms, env, risks, present, z, _, inputs = self._forward(batches, per_sample_graph=False)
        check_finite(terms, step)
        us = list(inputs.values())
        heads = [p for p in self.model.heads.parameters() if p.requires_grad]
        task_total = sum(v for k, v in terms.items() if k.startswith("task/"))
        self.optimizer.zero_grad(set_to_none=True)
        grads = torch.autograd.grad(task_total, us + heads, allow_unused=True)
        for p, g in zip(heads, grads[len(us):]):
            p.grad = g
        deltas = grads[:len(us)]
        n_envs = present.sum(0).clamp_min(1).to(z.dtype)                # |E_t|
        head_grads = torch.stack([d.view_as(z) * n_envs[i] for i, d in enumerate(deltas)])
        graph_grads = L.graph_grads_from_inputs(head_grads, z, env, len(present))
        terms["girm"] = weight * L.GIRM_PENALTIES[self.hp.girm](graph_grads, present)
        check_finite({"girm": terms["girm"]}, step)
        surrogate = sum((d * u).sum() for d, u in zip(deltas, us)) + terms["dec"] + terms["graph"] + terms["girm"]
        surrogate.backward()
        return terms


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
            rows.append(torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1)
                                   for g, p in zip(grads[:len(shared)], shared)]))
            for p, g in zip(own[t], grads[len(shared):]):
                p.grad = g
        combined = self.combine(torch.stack(rows), step)
        offset = 0
        for p in shared:
            p.grad = combined[offset:offset + p.numel()].view_as(p).clone()
            offset += p.numel()
        self.optimizer.step()
        return {"total": float(sum(losses.values()).detach()), **{k: float(v.detach()) for k, v in terms.items()}}

    def combine(self, grads: torch.Tensor, step: int) -> torch.Tensor:
        raise NotImplementedError


class PCGrad(SurgeryMethod):
    """PCGrad (Yu et al. 2020) on the shared encoder; the random task order is seeded by the step."""

    def combine(self, grads, step):
        return S.pcgrad(grads, generator=torch.Generator().manual_seed(step))


@dataclass
class GradVacHParams:
    beta: float = hp(0.01, 1e-3, 0.1, "EMA rate of the target cosine similarity (GradVac paper: 1e-2)")


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
class IRMHParams:
    lambda_irm: float = hp(1.0, 1e-1, 1e4, "IRMv1 penalty weight once annealed in")
    anneal_steps: int = hp(100, 0, 1000, "penalty weight is 1 for this many steps, then lambda_irm (range as "
                           "MT-CRL's: both datasets train for < 1,500 steps)")


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
                    continue                          # no label of this task in this environment's batch
                risks.append(t.loss(lg, yy))
                pens.append(L.irm_penalty(lg, yy, t.loss))
            if not risks:
                risks = pens = [logits[t.name].sum() * 0.0]
            terms[f"task/{t.name}"] = scale * torch.stack(risks).mean()
            terms[f"irm/{t.name}"] = scale * w * torch.stack(pens).mean()
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
    lambda_dann: float = hp(0.1, 1e-2, 1.0, "weight of the environment-adversarial loss")
    disc_width: int = hp(64, 16, 256, "hidden width of the environment discriminator")


class DANN(Method):
    """DANN (Ganin et al. 2016) with the training environments as domains: an MLP discriminator predicts each
    sample's environment from the shared representation (a feature map is average-pooled over its positions),
    through a gradient-reversal layer (one optimizer, one backward; DomainBed alternates discriminator and
    feature steps instead)."""
    hparams_cls = DANNHParams

    def __init__(self, model, tasks, hparams, lr, weight_decay, envs):
        super().__init__(model, tasks, hparams, lr, weight_decay, envs)
        width = model.width
        self.discriminator = nn.Sequential(nn.Linear(width, hparams.disc_width), nn.ReLU(),
                                           nn.Linear(hparams.disc_width, len(envs)))
        self.optimizer = torch.optim.Adam(list(model.parameters()) + list(self.discriminator.parameters()),
                                          lr=lr, weight_decay=weight_decay)

    def objective(self, batches, step):
        x, y = concat(batches)
        env = torch.cat([torch.full((len(b[0]),), i, dtype=torch.long) for i, b in enumerate(batches.values())])
        h = self.model.representation(x)
        logits = {name: head(h) for name, head in self.model.heads.items()}
        terms = {f"task/{k}": v for k, v in self.task_losses(logits, y).items()}
        pooled = h.flatten(2).mean(2) if h.dim() > 2 else h
        d = self.discriminator(_GradReverse.apply(pooled))
        terms["dann"] = self.hp.lambda_dann * nn.functional.cross_entropy(d, env)
        return terms


@dataclass(frozen=True)
class MethodSpec:
    name: str
    cls: type
    defaults: dict
    doc: str
    not_searched: tuple = ()      # hyper-parameters with a range that have no effect in this variant


METHODS: dict[str, MethodSpec] = {}


def register(name: str, cls: type, doc: str, not_searched: tuple = (), **defaults) -> None:
    METHODS[name] = MethodSpec(name, cls, defaults, doc, tuple(not_searched))


register("stl", STL, "single-task learning: one network per task, same backbone")
register("mtl", ERM, "vanilla MTL: shared encoder, equal task weights")
register("pcgrad", PCGrad, "vanilla MTL + PCGrad on the shared encoder")
register("gradvac", GradVac, "vanilla MTL + GradVac on the shared encoder")
register("dann", DANN, "vanilla MTL + environment-adversarial DANN on the shared representation")
register("irm", IRM, "vanilla MTL + IRMv1 penalty per task and environment")
register("mtcrl", MTCRLMethod, "MT-CRL with G-IRM Var (the paper's main method)", girm="var")
register("mtcrl-norm", MTCRLMethod, "MT-CRL with G-IRM Norm", girm="norm", lambda_girm=0.1)
register("mtcrl-nogirm", MTCRLMethod, "MT-CRL without G-IRM (modules + graph regularizer only)", girm="none",
         not_searched=("lambda_girm", "anneal_steps"))


def get_method(name: str) -> MethodSpec:
    if name not in METHODS:
        raise KeyError(f"unknown method {name!r}; valid: {sorted(METHODS)}")
    return METHODS[name]


def default_hparams(name: str):
    spec = get_method(name)
    return spec.cls.hparams_cls(**spec.defaults)
