"""MT-CRL's architecture around any encoder and heads: K modules (channel groups of the encoder's output) routed
to one head per task by the graph A = sigmoid(Θ) (T, K). Imports torch only."""

from __future__ import annotations

import torch
from torch import nn

HEAD_READS = ("concat", "sum")
GATES = ("sigmoid", "hard")


class _StraightThrough(torch.autograd.Function):
    """Forward 1[s > 0.5] (exact zeros and ones), backward the identity (the straight-through estimator)."""

    @staticmethod
    def forward(ctx, s):
        return (s > 0.5).to(s.dtype)

    @staticmethod
    def backward(ctx, grad):
        return grad


class RoutedModel(nn.Module):
    """Any encoder x -> (B, W) or (B, W, h, w), its output split into K modules Z_k (K channel groups of d = W / K:
    (B, K, d) for vectors, (B, K, d, h, w) for feature maps), routed by the graph A = sigmoid(Θ) (T, K) to one head
    per task. This is MT-CRL's architecture around any PyTorch encoder and heads (`mtcrl_lite.core.objective`).

    Task t's head reads concat_k(A_tk * Z_k) (every pixel of module k scaled by A_tk; shaped like the encoder's
    output), or with head_read = "sum" sum_k A_tk * Z_k (width d). `route(z, a)` also accepts a per-sample graph
    (B, T, K), so that per-environment gradients dR_t^e/dA come out of one autograd call (mtcrl.forward).
    gate = "hard": A = 1[sigmoid(Θ) > 0.5] forward, the sigmoid's gradient backward (exact zeros).
    """

    def __init__(
        self,
        encoder: nn.Module,
        heads,
        n_modules: int,
        theta_init: float = 1.0,
        head_read: str = "concat",
        gate: str = "sigmoid",
    ):
        super().__init__()
        for key, value, valid in (("head_read", head_read, HEAD_READS), ("gate", gate, GATES)):
            if value not in valid:
                raise ValueError(
                    f"model.{key} must be one of {valid}, got {value!r}; pass --set model.{key}={valid[0]}"
                )
        heads = heads if isinstance(heads, nn.ModuleDict) else nn.ModuleDict(dict(heads))
        if n_modules < 1 or not len(heads):
            raise ValueError(
                f"a routed model needs n_modules >= 1 and at least one head, got n_modules = "
                f"{n_modules} and heads {list(heads)}"
            )
        self.task_names, self.k = list(heads), int(n_modules)
        self.head_read, self.gate = head_read, gate
        self.encoder = encoder
        self.theta = nn.Parameter(torch.full((len(heads), self.k), float(theta_init)))
        self.heads = heads

    @property
    def graph(self) -> torch.Tensor:
        soft = torch.sigmoid(self.theta)
        return _StraightThrough.apply(soft) if self.gate == "hard" else soft

    def modules_of(self, x) -> torch.Tensor:
        h = self.encoder(x)
        if h.dim() < 2 or h.shape[1] % self.k:
            raise ValueError(
                f"the encoder's output {tuple(h.shape)} must be (B, W) or (B, W, h, w) with W divisible "
                f"by n_modules = {self.k}; change the encoder's width or n_modules"
            )
        return h.view(h.shape[0], self.k, h.shape[1] // self.k, *h.shape[2:])

    def route(self, z: torch.Tensor, a: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each task's head input u_t = concat_k(A_tk * Z_k), shaped like the representation (B, W[, h, w]), or
        with head_read = "sum" u_t = sum_k A_tk * Z_k, (B, d[, h, w]). a: (T, K), or (B, T, K) per sample."""
        b, width, spatial = z.shape[0], z.shape[1] * z.shape[2], z.shape[3:]
        out = {}
        for i, name in enumerate(self.task_names):
            w = a[i] if a.dim() == 2 else a[:, i]  # (K,) or (B, K)
            w = w.reshape(*w.shape, *([1] * (1 + len(spatial))))
            out[name] = (w * z).sum(1) if self.head_read == "sum" else (w * z).reshape(b, width, *spatial)
        return out

    def routed_logits(self, z: torch.Tensor, a: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: self.heads[name](u) for name, u in self.route(z, a).items()}

    def representation(self, x):
        return self.encoder(x)

    def forward(self, x):
        return self.routed_logits(self.modules_of(x), self.graph)

    def shared_parameters(self):
        return list(self.encoder.parameters())
