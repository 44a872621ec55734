"""Models: a backbone per input type, vanilla MTL, single-task (STL) and MT-CRL.

Every model maps x -> {task: output}. The shared encoder ends in a representation of width W: a vector (B, W)
(Linear + ReLU after the trunk) for per-sample tasks, or a feature map (B, W, h, w) (1x1 conv + ReLU after conv
stages without flattening) for dense tasks, each of which then has its own decoder back to the input's H x W.
MT-CRL's K modules are K channel groups of that representation (d = W / K units or channels each), so it has
exactly the MTL parameters plus the T x K routing logits. `model.module_norm = "batch"` standardises every unit
or channel of the representation (BatchNorm without affine) in every model, so that MT-CRL's heads cannot undo
A's scale upstream and the baselines can be given the same architecture.

Dense backbone (ours): a plain encoder-decoder without skip connections (SegNet-like, without pooling indices).
Skips would hand every decoder unrouted shared features and bypass the routing graph A.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mtcrl_lite.core.hparams import hp
from mtcrl_lite.core.routing import GATES, HEAD_READS, RoutedModel  # noqa: F401  (models.RoutedModel)
from mtcrl_lite.core.tasks import Task
from mtcrl_lite.data.base import TabularSpec

MODULE_NORMS = ("none", "batch")
MODULE_FORMS = ("slices", "experts", "channels")


@dataclass
class ModelConfig:
    channels: tuple[int, ...] = (16, 32)  # trunk widths: conv channels for (C, H, W) inputs (5x5 conv, ReLU,
    # 2x2 max-pool each), hidden units for (D,) inputs (Linear, ReLU each)
    width: int = hp(
        64,
        choices=(32, 64, 128),
        doc="shared representation width W (= K * d for MT-CRL); "
        "searched for every method (not on datasets where search.PINNED fixes it)",
    )
    n_modules: int = hp(
        0,
        choices=(4, 8, 16),
        kinds=("mtcrl",),
        doc="K; 0 = max(4, 2T) (docs/METHOD §3, ours); searched for MT-CRL only (K < T or K not dividing W is redrawn)",
    )
    theta_init: float = 1.0  # routing logits start at Θ = 1, i.e. A = sigmoid(1) = 0.73
    module_norm: str = hp(
        "none",
        choices=MODULE_NORMS,
        doc="'batch' standardises the shared representation per unit / channel (BatchNorm, no "
        "affine), for every model (matched baselines); searched for every method",
    )
    decoder_channels: tuple[int, ...] = ()  # dense decoders: channels per upsampling stage; () = reversed channels
    # The MT-CRL design space (issue #11; compared in notebook 08, not searched; docs/DECISIONS.md):
    module_form: str = "slices"  # "slices": the K modules are K slices of one projection (Linear / 1x1 conv + ReLU)
    # of the trunk; "experts": K separate two-layer branches (trunk -> 2d -> d, ReLU
    # each; a block-diagonal second layer), so no unit is shared between modules;
    # "channels" (image inputs, per-sample tasks): the representation is a (W, h, w)
    # map (1x1 conv + ReLU on the last conv stage, not flattened), the modules are its
    # K channel groups (the dense stack's form) and each head is flatten + Linear
    head_read: str = "concat"  # MT-CRL: task t's head reads concat_k(A_tk Z_k) ("concat", width W) or
    # sum_k A_tk Z_k ("sum", width d: the modules compete for one head input)
    gate: str = "sigmoid"  # MT-CRL: A = sigmoid(Θ) ("sigmoid"), or a straight-through hard gate ("hard":
    # A = 1[sigmoid(Θ) > 0.5] forward, the sigmoid's gradient backward; exact zeros)


def n_modules(cfg: ModelConfig, n_tasks: int) -> int:
    k = cfg.n_modules or max(4, 2 * n_tasks)
    if k < n_tasks:
        raise ValueError(
            f"model.n_modules = {k} is smaller than the number of tasks ({n_tasks}); "
            f"use at least {n_tasks} (or 0 for the default max(4, 2T))"
        )
    if cfg.width % k:
        raise ValueError(f"model.width = {cfg.width} must be divisible by model.n_modules = {k}")
    return k


def conv_stages(input_shape: tuple[int, ...], channels: tuple[int, ...]) -> tuple[nn.Sequential, tuple[int, ...]]:
    """(conv5x5 -> ReLU -> maxpool2) per entry of `channels`. Returns (module, output shape (C, h, w))."""
    if len(input_shape) != 3:
        raise ValueError(f"conv trunk expects (C, H, W) inputs, got {input_shape}")
    c, h, w = input_shape
    layers: list[nn.Module] = []
    for out in channels:
        layers += [nn.Conv2d(c, out, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2)]
        c, h, w = out, h // 2, w // 2
    if h == 0 or w == 0:
        raise ValueError(f"input {input_shape} is too small for {len(channels)} pooling stages")
    return nn.Sequential(*layers), (c, h, w)


def conv_trunk(input_shape: tuple[int, ...], channels: tuple[int, ...]) -> tuple[nn.Module, int]:
    """conv_stages, then flatten. Returns (module, output dim)."""
    stages, (c, h, w) = conv_stages(input_shape, channels)
    return nn.Sequential(*stages, nn.Flatten()), c * h * w


def mlp_trunk(input_shape: tuple[int, ...], widths: tuple[int, ...]) -> tuple[nn.Module, int]:
    """(Linear -> ReLU) per entry of `widths` for vector inputs. Returns (module, output dim)."""
    (dim,) = input_shape
    layers: list[nn.Module] = []
    for out in widths:
        layers += [nn.Linear(dim, out), nn.ReLU()]
        dim = out
    return nn.Sequential(*layers), dim


class TabularTrunk(nn.Module):
    """One embedding per id column, concatenated with the other (dense) columns, then (Linear -> ReLU) per width.
    Ids are read back with .long(), so float32 inputs (train.to_batch) carry them exactly up to 2^24."""

    def __init__(self, spec: TabularSpec, widths: tuple[int, ...]):
        super().__init__()
        cols = [c for c, _ in spec.categorical]
        if len(set(cols)) != len(cols) or any(not 0 <= c < spec.n_features for c in cols):
            raise ValueError(f"id columns {cols} must be distinct columns of the {spec.n_features} features")
        self.register_buffer("id_cols", torch.tensor(cols, dtype=torch.long), persistent=False)
        self.register_buffer(
            "dense_cols",
            torch.tensor([c for c in range(spec.n_features) if c not in cols], dtype=torch.long),
            persistent=False,
        )
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


def is_dense(tasks: list[Task]) -> bool:
    """True if the tasks are per-pixel (then every one must be: one representation type per model)."""
    kinds = {t.dense for t in tasks}
    if len(kinds) > 1:
        raise ValueError(
            f"tasks mix dense and per-sample kinds ({[(t.name, t.kind) for t in tasks]}); "
            f"one model serves one of the two"
        )
    return kinds == {True}


class Encoder(nn.Module):
    """Shared encoder Φ: trunk, then Linear + ReLU to a vector of width W, or, for dense tasks, conv stages then
    1x1 conv + ReLU to a (W, h, w) feature map; then the optional standardisation (model.module_norm)."""

    def __init__(self, input_shape, cfg: ModelConfig, dense: bool = False, k: int = 1):
        super().__init__()
        for key, value, valid in (
            ("module_norm", cfg.module_norm, MODULE_NORMS),
            ("module_form", cfg.module_form, MODULE_FORMS),
        ):
            if value not in valid:
                raise ValueError(
                    f"model.{key} must be one of {valid}, got {value!r}; pass --set model.{key}={valid[0]}"
                )
        experts = cfg.module_form == "experts"
        hidden = 2 * cfg.width if experts else cfg.width  # experts: K branches of 2d hidden units
        self.head_map = None  # (h, w) of the map that per-sample heads flatten ("channels")
        if cfg.module_form == "channels" and not dense:
            if isinstance(input_shape, TabularSpec) or len(tuple(input_shape)) != 3:
                raise ValueError(
                    f"model.module_form = 'channels' needs image inputs (C, H, W), got {input_shape}; "
                    "pass --set model.module_form=slices"
                )
            dense = True  # the encoder of the dense stack; only the heads differ
        if dense:
            self.trunk, (c, *self.map_size) = conv_stages(tuple(input_shape), tuple(cfg.channels))
            self.proj = nn.Conv2d(c, hidden, 1)
            norm = nn.BatchNorm2d
            if cfg.module_form == "channels":
                self.head_map = tuple(self.map_size)
        else:
            self.trunk, c = trunk_for(input_shape, tuple(cfg.channels))
            self.proj = nn.Linear(c, hidden)
            norm = nn.BatchNorm1d
        # the experts' second layer: branch k maps its own 2d hidden units to its d outputs (grouped 1x1 conv)
        self.expert_out = nn.Conv1d(hidden, cfg.width, 1, groups=k) if experts else None
        self.norm = norm(cfg.width, affine=False) if cfg.module_norm == "batch" else nn.Identity()

    def forward(self, x):
        h = torch.relu(self.proj(self.trunk(x)))
        if self.expert_out is not None:
            shape = h.shape
            h = torch.relu(self.expert_out(h.reshape(shape[0], shape[1], -1))).reshape(shape[0], -1, *shape[2:])
        return self.norm(h)


class Decoder(nn.Module):
    """Dense head: (upsample x2 -> conv3x3 -> ReLU) per stage, then a 1x1 conv to the task's channels, resized to
    the input's H x W (exact when H, W are multiples of 2^stages)."""

    def __init__(self, in_channels: int, channels: tuple[int, ...], n_out: int, out_size: tuple[int, int]):
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for out in channels:
            layers += [
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(c, out, 3, padding=1),
                nn.ReLU(),
            ]
            c = out
        self.body = nn.Sequential(*layers, nn.Conv2d(c, n_out, 1))
        self.out_size = tuple(out_size)

    def forward(self, h):
        out = self.body(h)
        if tuple(out.shape[-2:]) != self.out_size:
            out = nn.functional.interpolate(out, size=self.out_size, mode="bilinear", align_corners=False)
        return out


def make_heads(
    input_shape,
    tasks: list[Task],
    cfg: ModelConfig,
    in_width: int | None = None,
    head_map: tuple[int, int] | None = None,
) -> nn.ModuleDict:
    """A Linear head per task on a (B, W) representation, flatten + Linear on a (B, W, h, w) map of per-sample tasks
    (head_map = (h, w)), or a Decoder per task for dense tasks (in_width: the heads' input width when it is not W)."""
    in_width = in_width or cfg.width
    if not is_dense(tasks):
        if head_map:
            n_in = in_width * head_map[0] * head_map[1]
            return nn.ModuleDict({t.name: nn.Sequential(nn.Flatten(), nn.Linear(n_in, t.n_out)) for t in tasks})
        return nn.ModuleDict({t.name: nn.Linear(in_width, t.n_out) for t in tasks})
    channels = tuple(cfg.decoder_channels) or tuple(reversed(tuple(cfg.channels)))
    if len(channels) != len(tuple(cfg.channels)):
        raise ValueError(
            f"model.decoder_channels {channels} needs one entry per encoder stage "
            f"({len(tuple(cfg.channels))}, model.channels = {tuple(cfg.channels)})"
        )
    return nn.ModuleDict({t.name: Decoder(in_width, channels, t.n_out, tuple(input_shape)[1:]) for t in tasks})


class SharedMTL(nn.Module):
    """Vanilla MTL: one shared encoder, one head per task (linear, or a decoder for dense tasks)."""

    def __init__(self, input_shape, tasks: list[Task], cfg: ModelConfig):
        super().__init__()
        self.width = cfg.width
        self.encoder = Encoder(
            input_shape, cfg, is_dense(tasks), k=n_modules(cfg, len(tasks)) if cfg.module_form == "experts" else 1
        )
        self.heads = make_heads(input_shape, tasks, cfg, head_map=self.encoder.head_map)

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


class MTCRL(RoutedModel):
    """The package's MT-CRL model: the shared Encoder of the other models (the same trunk and width W = K * d, so
    exactly the MTL parameters plus the T x K routing logits), routed to the package's heads."""

    def __init__(self, input_shape, tasks: list[Task], cfg: ModelConfig):
        k = n_modules(cfg, len(tasks))
        encoder = Encoder(input_shape, cfg, is_dense(tasks), k=k)
        heads = make_heads(
            input_shape, tasks, cfg, cfg.width // k if cfg.head_read == "sum" else cfg.width, encoder.head_map
        )
        super().__init__(encoder, heads, k, cfg.theta_init, cfg.head_read, cfg.gate)


MODELS = {"mtl": SharedMTL, "stl": SingleTask, "mtcrl": MTCRL}


def build_model(kind: str, input_shape, tasks: list[Task], cfg: ModelConfig) -> nn.Module:
    if kind not in MODELS:
        raise KeyError(f"unknown model kind {kind!r}; valid: {sorted(MODELS)}")
    return MODELS[kind](input_shape, tasks, cfg)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
