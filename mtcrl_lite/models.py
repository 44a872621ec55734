"""Models: a backbone per input type, vanilla MTL, single-task (STL) and MT-CRL.

Every model maps x -> {task: logits}. Parameter counts match by construction: vanilla MTL projects the
trunk's features to a shared width W with one Linear+ReLU; MT-CRL splits that same layer into K modules of
d = W / K units (a block of rows each), so it has exactly the MTL parameters plus the T x K routing logits.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .tasks import Task


@dataclass
class ModelConfig:
    channels: tuple[int, ...] = (16, 32)  # trunk widths: conv channels for (C, H, W) inputs (5x5 conv, ReLU,
                                          # 2x2 max-pool each), hidden units for (D,) inputs (Linear, ReLU each)
    width: int = 64                       # shared representation width W (= K * d for MT-CRL)
    n_modules: int = 0                    # K; 0 = max(4, 2T) (METHOD.md §3, ours)
    theta_init: float = 1.0               # routing logits start at Θ = 1, i.e. A = sigmoid(1) = 0.73


def n_modules(cfg: ModelConfig, n_tasks: int) -> int:
    k = cfg.n_modules or max(4, 2 * n_tasks)
    if k < n_tasks:
        raise ValueError(f"model.n_modules = {k} is smaller than the number of tasks ({n_tasks}); "
                         f"use at least {n_tasks} (or 0 for the default max(4, 2T))")
    if cfg.width % k:
        raise ValueError(f"model.width = {cfg.width} must be divisible by model.n_modules = {k}")
    return k


def conv_trunk(input_shape: tuple[int, ...], channels: tuple[int, ...]) -> tuple[nn.Module, int]:
    """(conv5x5 -> ReLU -> maxpool2) per entry of `channels`, then flatten. Returns (module, output dim)."""
    if len(input_shape) != 3:
        raise ValueError(f"conv trunk expects (C, H, W) inputs, got {input_shape}")
    c, h, w = input_shape
    layers: list[nn.Module] = []
    for out in channels:
        layers += [nn.Conv2d(c, out, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2)]
        c, h, w = out, h // 2, w // 2
    if h == 0 or w == 0:
        raise ValueError(f"input {input_shape} is too small for {len(channels)} pooling stages")
    return nn.Sequential(*layers, nn.Flatten()), c * h * w


def mlp_trunk(input_shape: tuple[int, ...], widths: tuple[int, ...]) -> tuple[nn.Module, int]:
    """(Linear -> ReLU) per entry of `widths` for vector inputs. Returns (module, output dim)."""
    (dim,) = input_shape
    layers: list[nn.Module] = []
    for out in widths:
        layers += [nn.Linear(dim, out), nn.ReLU()]
        dim = out
    return nn.Sequential(*layers), dim


@dataclass(frozen=True)
class TabularSpec:
    """Vector inputs (D,) some of whose columns hold integer ids stored as floats (e.g. a user id): a dataset
    passes this as `MTLData.input_spec` instead of a plain shape to get `TabularTrunk`."""
    n_features: int                              # D
    categorical: tuple[tuple[int, int], ...]     # (column, cardinality) per id column
    emb_dim: int = 16                            # embedding size of every id column


class TabularTrunk(nn.Module):
    """One embedding per id column, concatenated with the other (dense) columns, then (Linear -> ReLU) per width.
    Ids are read back with .long(), so float32 inputs (train.to_batch) carry them exactly up to 2^24."""

    def __init__(self, spec: TabularSpec, widths: tuple[int, ...]):
        super().__init__()
        cols = [c for c, _ in spec.categorical]
        if len(set(cols)) != len(cols) or any(not 0 <= c < spec.n_features for c in cols):
            raise ValueError(f"id columns {cols} must be distinct columns of the {spec.n_features} features")
        self.register_buffer("id_cols", torch.tensor(cols, dtype=torch.long), persistent=False)
        self.register_buffer("dense_cols", torch.tensor([c for c in range(spec.n_features) if c not in cols],
                                                        dtype=torch.long), persistent=False)
        self.embeddings = nn.ModuleList(nn.Embedding(n, spec.emb_dim) for _, n in spec.categorical)
        self.mlp, self.out_dim = mlp_trunk((len(self.dense_cols) + spec.emb_dim * len(cols),), widths)

    def forward(self, x):
        ids = x[:, self.id_cols].long()
        parts = [emb(ids[:, i]) for i, emb in enumerate(self.embeddings)] + [x[:, self.dense_cols]]
        return self.mlp(torch.cat(parts, 1))


def trunk_for(input_shape, widths: tuple[int, ...]) -> tuple[nn.Module, int]:
    """Conv trunk for (C, H, W), MLP for (D,), TabularTrunk for a TabularSpec."""
    if isinstance(input_shape, TabularSpec):
        trunk = TabularTrunk(input_shape, widths)
        return trunk, trunk.out_dim
    input_shape = tuple(input_shape)
    if len(input_shape) == 3:
        return conv_trunk(input_shape, widths)
    if len(input_shape) == 1:
        return mlp_trunk(input_shape, widths)
    raise ValueError(f"no backbone for inputs of shape {input_shape}: expected (C, H, W) images or (D,) vectors")


class Encoder(nn.Module):
    """Shared encoder Φ: trunk, then Linear + ReLU to the representation of width W."""

    def __init__(self, input_shape, cfg: ModelConfig):
        super().__init__()
        self.trunk, dim = trunk_for(input_shape, tuple(cfg.channels))
        self.proj = nn.Linear(dim, cfg.width)

    def forward(self, x):
        return torch.relu(self.proj(self.trunk(x)))


class SharedMTL(nn.Module):
    """Vanilla MTL: one shared encoder, one linear head per task."""

    def __init__(self, input_shape, tasks: list[Task], cfg: ModelConfig):
        super().__init__()
        self.encoder = Encoder(input_shape, cfg)
        self.heads = nn.ModuleDict({t.name: nn.Linear(cfg.width, t.n_out) for t in tasks})

    def representation(self, x):
        return self.encoder(x)

    def forward(self, x):
        h = self.encoder(x)
        return {t: head(h) for t, head in self.heads.items()}

    def shared_parameters(self):
        return list(self.encoder.parameters())


class SingleTask(nn.Module):
    """STL: an independent SharedMTL with a single head per task; trained jointly, nothing is shared."""

    def __init__(self, input_shape, tasks: list[Task], cfg: ModelConfig):
        super().__init__()
        self.nets = nn.ModuleDict({t.name: SharedMTL(input_shape, [t], cfg) for t in tasks})

    def forward(self, x):
        return {t: net(x)[t] for t, net in self.nets.items()}

    def shared_parameters(self):
        return []


class MTCRL(nn.Module):
    """Encoder -> K modules Z_k (B, K, d) -> routing graph A = sigmoid(Θ) (T, K) -> heads.

    Task t's head reads concat_k(A_tk * Z_k). `routed_logits(z, a)` accepts a per-sample graph (B, T, K) so
    that per-environment gradients dR_t^e/dA come out of one autograd call (see methods.MTCRLMethod).
    """

    def __init__(self, input_shape, tasks: list[Task], cfg: ModelConfig):
        super().__init__()
        self.task_names = [t.name for t in tasks]
        self.k = n_modules(cfg, len(tasks))
        self.d = cfg.width // self.k
        self.encoder = Encoder(input_shape, cfg)
        self.theta = nn.Parameter(torch.full((len(tasks), self.k), float(cfg.theta_init)))
        self.heads = nn.ModuleDict({t.name: nn.Linear(cfg.width, t.n_out) for t in tasks})

    @property
    def graph(self) -> torch.Tensor:
        return torch.sigmoid(self.theta)

    def modules_of(self, x) -> torch.Tensor:
        h = self.encoder(x)
        return h.view(h.shape[0], self.k, self.d)

    def routed_logits(self, z: torch.Tensor, a: torch.Tensor) -> dict[str, torch.Tensor]:
        b = z.shape[0]
        out = {}
        for i, name in enumerate(self.task_names):
            w = a[i] if a.dim() == 2 else a[:, i]          # (K,) or (B, K)
            out[name] = self.heads[name]((w[..., None] * z).reshape(b, -1))
        return out

    def representation(self, x):
        return self.encoder(x)

    def forward(self, x):
        return self.routed_logits(self.modules_of(x), self.graph)

    def shared_parameters(self):
        return list(self.encoder.parameters())


MODELS = {"mtl": SharedMTL, "stl": SingleTask, "mtcrl": MTCRL}


def build_model(kind: str, input_shape, tasks: list[Task], cfg: ModelConfig) -> nn.Module:
    if kind not in MODELS:
        raise KeyError(f"unknown model kind {kind!r}; valid: {sorted(MODELS)}")
    return MODELS[kind](input_shape, tasks, cfg)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
