"""Run configuration: one dataclass per concern, resolved as

    scale "default":     defaults <- dataset/method defaults <- PRESETS[dataset]["default"] <- tuned <- overrides
    scale smoke / full:  defaults <- dataset/method defaults <- tuned <- PRESETS[dataset][scale] <- overrides

"tuned" is the entry of (dataset, method) in tuning/tuned.json (written by `python -m mtcrl_lite.grid.search
--write-tuning`, i.e. `make tune`), found by a search that started from the default preset: at the default scale
the tuned values replace the preset's; a smoke or full preset still sets its own geometry (data sizes, epochs,
widths, anneal steps) over them, and the tuned keys it does not mention carry over. No file or no entry: nothing
changes. `make_config(..., tuned=False)` (CLI `--untuned`) ignores the file; the run config records the values it
took from it in `tuned` (empty = none).

Overrides are `section.key=value` strings (`data.n_val=500`, `train.epochs=3`, `hp.lambda_girm=100`) or a bare
`key=value` when the key names exactly one field. Unknown keys are errors that list the valid ones.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import hashlib
import json
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path

from mtcrl_lite.baselines.methods import default_hparams, get_method
from mtcrl_lite.core.hparams import hp
from mtcrl_lite.data import DATASETS
from mtcrl_lite.models.networks import ModelConfig
from mtcrl_lite.paths import REPO_ROOT
from mtcrl_lite.run.rundir import CorruptFileError, read_json
from mtcrl_lite.run.schedule import SCHEDULES

TUNED_PATH = REPO_ROOT / "tuning" / "tuned.json"  # {dataset: {method: {"values": {key: value}, provenance...}}}
ENVS = ("dataset", "random")


@dataclass
class TrainConfig:
    epochs: int = 15
    batch_size: int = 128  # per step, split equally over the training environments
    lr: float = hp(1e-3, 1e-4, 1e-2, "Adam learning rate (every parameter; MT-CRL's Θ: times hp.lr_graph)")
    weight_decay: float = hp(0.0, 1e-6, 1e-2, "Adam L2 weight decay (0 at the default, log-uniform when searched)")
    eval_train_max: int = 2000  # train metrics are computed on the first N samples of the pooled environments
    device: str = "cpu"  # "cpu", "cuda", or "auto"
    threads: int = 2  # torch intra-op threads of the run (fixed, so numbers never depend on the machine load)
    num_workers: int = 0  # DataLoader worker processes (on-disk datasets; 0 = read in the training process)
    eval_batch_size: int = 256  # samples per evaluation batch (metrics stream, so any size gives the same numbers)
    envs: str = "dataset"  # training environments: "dataset" (its attribute groups) or "random" (the pooled
    # training data dealt at random into environments of the same sizes, seeded by the
    # run's seed: the control under which G-IRM, IRM and DANN should lose their effect)
    schedule: str = (
        "constant"  # learning-rate schedule over all steps: "constant" or "cosine" (decays to 0; schedule.py)
    )


@dataclass
class WideDecayTrainConfig(TrainConfig):
    """TrainConfig of the methods that search weight decay over a wider range (Method.wide_weight_decay: mtl-strong,
    tuning the knobs of Kurin et al. 2022 and Xin et al. 2022); the same fields, so the same config keys."""

    weight_decay: float = hp(
        0.0, 1e-6, 1e-1, "Adam L2 weight decay (0 at the default; searched log-uniform over a range ten times wider)"
    )


# Scale presets per dataset. "default" is the CPU scale of `make reproduce`; "smoke" is for CI;
# "full" is the paper geometry for a GPU (documented in the notebooks and README).
PRESETS: dict[str, dict[str, dict[str, object]]] = {
    # Multi-MNIST: 20 epochs with a cosine schedule (notebook 08: validation plateaus by epoch ~12 for the standardised
    # models), one thread per run so that two runs share the 2 CPU cores (--jobs 2); every method gets the
    # standardised representation (model.module_norm = batch: MT-CRL's heads cannot undo A, and the baselines are
    # architecture-matched); plain MTL (module_norm = none) is the paper's comparison, shown beside it. The graph
    # moves at 20x the learning rate (hp.lr_graph). docs/DECISIONS.md "Multi-MNIST defaults".
    "multimnist": {
        "default": {
            "train.epochs": 20,
            "train.schedule": "cosine",
            "train.threads": 1,
            "model.module_norm": "batch",
            "hp.lr_graph": 20.0,
        },
        "smoke": {
            "data.n_train_per_env": 512,
            "data.n_val": 256,
            "data.n_test": 256,
            "train.epochs": 2,
            "train.eval_train_max": 256,
            "hp.anneal_steps": 4,
            "train.schedule": "cosine",
            "model.module_norm": "batch",
            "hp.lr_graph": 20.0,
        },
        "full": {
            "data.downsample": 1,
            "data.n_train_per_env": 25000,
            "data.n_val": 5000,
            "data.n_test": 10000,
            "model.channels": (32, 64),
            "model.width": 128,
            "train.epochs": 30,
            "train.device": "auto",
            "hp.anneal_steps": 400,
            "train.schedule": "cosine",
            "model.module_norm": "batch",
            "hp.lr_graph": 20.0,
        },
    },
    # Multi-SEM (data/sem.py): MLP trunk of 32 units, then a narrow shared bottleneck of 8 units (the width at
    # which a shared encoder hands one task the other's factor; notebook 02 varies it).
    "multisem": {
        "default": {"model.channels": (32,), "model.width": 8, "train.epochs": 10, "hp.anneal_steps": 64},
        "smoke": {
            "model.channels": (32,),
            "model.width": 8,
            "data.n_train_per_env": 256,
            "data.n_val": 256,
            "data.n_test": 256,
            "train.epochs": 2,
            "train.eval_train_max": 256,
            "hp.anneal_steps": 4,
        },
        "full": {
            "model.channels": (64,),
            "model.width": 8,
            "data.n_train_per_env": 20000,
            "data.n_val": 5000,
            "data.n_test": 10000,
            "train.epochs": 30,
            "train.device": "auto",
            "hp.anneal_steps": 300,
        },
    },
    "debug": {"default": {"train.epochs": 2}, "smoke": {"train.epochs": 1}, "full": {"train.epochs": 2}},
    # MovieLens: 8 genre tasks, K = 8 modules of d = 8 (the slide shows 8 "views"); an epoch is ~80 steps
    "movielens": {
        "default": {
            "model.channels": (128,),
            "model.width": 64,
            "model.n_modules": 8,
            "train.batch_size": 768,
            "train.epochs": 8,
            "train.eval_train_max": 100_000,
            "hp.anneal_steps": 80,
        },
        "smoke": {
            "data.max_train_per_env": 600,
            "model.channels": (32,),
            "model.width": 16,
            "model.n_modules": 8,
            "train.batch_size": 96,
            "train.epochs": 2,
            "train.eval_train_max": 100_000,
            "hp.anneal_steps": 4,
        },
        "full": {
            "model.channels": (256, 128),
            "model.width": 128,
            "model.n_modules": 8,
            "train.batch_size": 768,
            "train.epochs": 30,
            "train.eval_train_max": 100_000,
            "hp.anneal_steps": 160,
            "train.device": "auto",
        },
    },
    # Dense (notebook 03). Encoder conv 16/32 -> an 8x8 map of W = 40 channels (K = 2T = 10 modules of 4 channels),
    # one decoder per task. Every method gets the standardised representation (model.module_norm = batch, so the
    # baselines are architecture-matched to MT-CRL); G-IRM's graph gradients are first order (hp.girm_grad; the
    # exact double backward through five decoders costs ~3x a step); the graph moves at 20x the learning rate
    # (hp.lr_graph, the Multi-MNIST lead of the fidelity issue, not tuned here). docs/DECISIONS.md.
    "scenes": {
        "default": {
            "model.channels": (16, 32),
            "model.width": 40,
            "model.decoder_channels": (16, 8),
            "train.batch_size": 64,
            "train.lr": 3e-3,
            "train.eval_train_max": 256,
            "hp.anneal_steps": 32,
        },
        "smoke": {
            "data.buildings_per_env": 1,
            "data.images_per_building": 16,
            "data.n_val": 16,
            "data.n_test": 16,
            "data.val_buildings": 1,
            "data.test_buildings": 1,
            "data.size": 16,
            "model.width": 10,
            "train.batch_size": 16,
            "train.epochs": 2,
            "train.eval_train_max": 16,
        },
        "full": {
            "data.size": 64,
            "data.buildings_per_env": 16,
            "data.images_per_building": 256,
            "data.n_val": 1024,
            "data.n_test": 2048,
            "data.val_buildings": 8,
            "data.test_buildings": 16,
            "model.channels": (32, 64, 128),
            "model.width": 80,
            "model.decoder_channels": (64, 32, 16),
            "train.batch_size": 64,
            "train.epochs": 40,
            "train.eval_train_max": 1024,
            "hp.anneal_steps": 500,
        },
    },
    # Taskonomy, the real layout (data.root): 64x64 on a CPU, 256x256 (native) on a GPU with DataLoader workers.
    "taskonomy": {
        "default": {
            "data.size": 64,
            "data.max_per_building": 200,
            "model.channels": (16, 32, 64),
            "model.width": 40,
            "model.decoder_channels": (32, 16, 8),
            "train.batch_size": 48,
            "train.eval_train_max": 512,
            "hp.anneal_steps": 200,
        },
        "smoke": {
            "data.size": 16,
            "data.n_envs": 2,
            "model.width": 10,
            "train.batch_size": 4,
            "train.epochs": 1,
            "train.eval_train_max": 8,
        },
        "full": {
            "data.size": 256,
            "model.channels": (32, 64, 128, 256),
            "model.width": 160,
            "model.decoder_channels": (128, 64, 32, 16),
            "train.batch_size": 64,
            "train.epochs": 30,
            "train.num_workers": 8,
            "train.eval_train_max": 2048,
            "hp.anneal_steps": 1000,
        },
    },
    # NYUv2 (MTAN layout, data.root): 72x96 on a CPU, 288x384 (as stored) on a GPU; 13 classes, depth, normal.
    "nyuv2": {
        "default": {
            "data.size": 72,
            "model.channels": (16, 32, 64),
            "model.width": 48,
            "model.decoder_channels": (32, 16, 8),
            "train.batch_size": 24,
            "train.eval_train_max": 512,
            "hp.anneal_steps": 200,
        },
        "smoke": {
            "data.size": 8,
            "data.max_items": 8,
            "model.width": 12,
            "train.batch_size": 6,
            "train.epochs": 1,
            "train.eval_train_max": 8,
        },
        "full": {
            "data.size": 0,
            "model.channels": (32, 64, 128, 256),
            "model.width": 192,
            "model.decoder_channels": (128, 64, 32, 16),
            "train.batch_size": 8,
            "train.epochs": 200,
            "train.num_workers": 8,
            "train.eval_train_max": 1024,
            "hp.anneal_steps": 2000,
        },
    },
    # CityScapes (data.root, data.layout = mtan | official): 32x64 on a CPU, 128x256 (MTAN's size) on a GPU.
    "cityscapes": {
        "default": {
            "data.size": 32,
            "model.channels": (16, 32, 64),
            "model.width": 32,
            "model.decoder_channels": (32, 16, 8),
            "train.batch_size": 48,
            "train.eval_train_max": 512,
            "hp.anneal_steps": 200,
        },
        "smoke": {
            "data.size": 8,
            "data.max_items": 8,
            "model.width": 8,
            "train.batch_size": 6,
            "train.epochs": 1,
            "train.eval_train_max": 8,
        },
        "full": {
            "data.size": 128,
            "model.channels": (32, 64, 128, 256),
            "model.width": 128,
            "model.decoder_channels": (128, 64, 32, 16),
            "train.batch_size": 8,
            "train.epochs": 200,
            "train.num_workers": 8,
            "train.eval_train_max": 1024,
            "hp.anneal_steps": 2000,
        },
    },
}
# The dense family (scenes, and the real Taskonomy, NYUv2, CityScapes layouts) shares these values; each dataset's
# entry above holds only what differs (its geometry, batch, epochs at full scale, workers).
DENSE_FAMILY = ("scenes", "taskonomy", "nyuv2", "cityscapes")
DENSE_BASE = {"model.module_norm": "batch", "hp.girm_grad": "first_order", "hp.lr_graph": 20.0}
DENSE_SCALE = {
    "default": {"train.epochs": 12},
    "smoke": {"model.channels": (4, 8), "model.decoder_channels": (4, 4), "hp.anneal_steps": 1},
    "full": {"train.device": "auto"},
}
for _name in DENSE_FAMILY:
    PRESETS[_name] = {sc: {**DENSE_BASE, **DENSE_SCALE[sc], **v} for sc, v in PRESETS[_name].items()}
# Multi-Fashion and Fashion+MNIST are Multi-MNIST's generator on other 28x28 images, with its model: they take its
# presets and, until a search writes entries of their own into tuning/tuned.json, its tuned values (tuned_values).
BORROWS = {"multifashion": "multimnist", "fashionmnist": "multimnist"}
PRESETS.update({name: copy.deepcopy(PRESETS[source]) for name, source in BORROWS.items()})
SCALES = ("smoke", "default", "full")


@dataclass
class RunConfig:
    dataset: str
    method: str
    seed: int
    data: object
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    hp: object = None
    tuned: dict = field(default_factory=dict)  # the values taken from tuning/tuned.json (provenance, not hashed)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def digest(self) -> str:
        """Hash of everything that affects the numbers (method and seed included). Where the values came from
        (`tuned`) is not hashed; fields added after results were first published are omitted while at their
        default (LATER_FIELDS), so that older run directories keep their names and are reused."""
        d = self.to_dict()
        d.pop("tuned")
        for key, default in LATER_FIELDS.items():
            section, name = key.split(".", 1)
            if isinstance(d.get(section), dict) and name in d[section] and d[section][name] == default:
                del d[section][name]
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:10]


LATER_FIELDS = {
    "hp.graph_trainable": True,
    "train.envs": "dataset",
    "train.schedule": "constant",
    "model.module_form": "slices",
    "model.head_read": "concat",
    "model.gate": "sigmoid",
    "data.style": "taskonomy",
    "hp.dec_kind": "corr",
}


SECTIONS = ("data", "model", "train", "hp")


def _fields(obj) -> dict[str, type]:
    hints = typing.get_type_hints(type(obj))
    return {f.name: hints[f.name] for f in dataclasses.fields(obj)}


def parse_value(text, typ):
    """Parse a --set value for a field of type `typ` (bool, int, float, str, tuple[...])."""
    if not isinstance(text, str):
        return tuple(text) if typing.get_origin(typ) is tuple else text
    origin = typing.get_origin(typ)
    if origin is tuple:
        (inner, *_) = typing.get_args(typ)
        items = [s for s in text.strip("()[] ").split(",") if s.strip()]
        return tuple(parse_value(s.strip(), inner) for s in items)
    if typ is bool:
        if text.lower() in ("1", "true", "yes"):
            return True
        if text.lower() in ("0", "false", "no"):
            return False
        raise ValueError(f"expected a boolean, got {text!r}")
    return typ(text)


def apply_overrides(cfg: RunConfig, overrides: dict[str, object]) -> RunConfig:
    for key, value in overrides.items():
        section, name = _locate(cfg, key)
        obj = getattr(cfg, section)
        typ = _fields(obj)[name]
        try:
            setattr(obj, name, parse_value(value, typ))
        except (TypeError, ValueError) as e:
            raise ValueError(f"--set {key}={value!r}: cannot parse as {typ}: {e}") from None
    return cfg


def _locate(cfg: RunConfig, key: str) -> tuple[str, str]:
    valid = [f"{s}.{n}" for s in SECTIONS for n in _fields(getattr(cfg, s))]
    if "." in key:
        if key in valid:
            return tuple(key.split(".", 1))
        matches = []
    else:
        matches = [v for v in valid if v.split(".", 1)[1] == key]
        if len(matches) == 1:
            return tuple(matches[0].split(".", 1))
    hint = difflib.get_close_matches(key, valid + [v.split(".", 1)[1] for v in valid], n=3)
    why = f"ambiguous key {key!r} (matches {matches})" if matches else f"unknown config key {key!r}"
    raise KeyError(f"{why}; did you mean {hint}? valid keys for {cfg.dataset}/{cfg.method}: {valid}")


def parse_sets(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"--set expects key=value, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def get_value(cfg: RunConfig, key: str):
    section, name = _locate(cfg, key)
    return getattr(getattr(cfg, section), name)


def typed(cfg: RunConfig, key: str, value):
    """`value` (e.g. read from JSON or CSV) as the type of field `key` (an int stays an int, 1 becomes 1.0 for a
    float field), so that the digest does not depend on how a number was written."""
    section, name = _locate(cfg, key)
    typ = _fields(getattr(cfg, section))[name]
    if isinstance(value, str) or typing.get_origin(typ) is tuple:
        return parse_value(value, typ)
    if typ is float:
        return float(value)
    if typ is int and not isinstance(value, bool):
        if float(value) != int(value):
            raise ValueError(f"{key} must be an integer, got {value!r}")
        return int(value)
    if typ is bool:
        return parse_value(str(value), bool)
    return typ(value)


def read_tuned(path=None) -> dict:
    """The table of tuning/tuned.json ({} if there is none); a damaged file is an error that names a fix that works
    (--force does not: the file is not part of a run)."""
    path = TUNED_PATH if path is None else Path(path)
    fix = (
        f"restore it from git (git checkout -- {path}); to train without it meanwhile, pass --untuned "
        f"(the registry defaults)"
    )
    try:
        table = read_json(path, fix)
    except FileNotFoundError:
        return {}
    if not (isinstance(table, dict) and all(isinstance(e, dict) for e in table.values())):
        raise CorruptFileError(f"{path} is not a table {{dataset: {{method: {{...}}}}}}: it is damaged; {fix}")
    return table


def tuned_values(dataset: str, method: str, path=None) -> dict[str, object]:
    """{key: value} of (dataset, method) in tuning/tuned.json ({} if the file or the entry is absent); a method
    without an entry of its own on a dataset that BORROWS reads the entry of the dataset it borrows from."""
    table = read_tuned(path)
    entry = (table.get(dataset) or {}).get(method) or (table.get(BORROWS.get(dataset, dataset)) or {}).get(method)
    return dict((entry or {}).get("values") or {})


# Valid values of every numeric config field, checked by validate_config before anything is written (make_config
# calls it, so a sweep checks all of its configs before its first run). One explicit rule per "section.field" (for a
# tuple, per entry), plus: every float is finite, the seeds are >= 0 (numpy seeds), and train.batch_size is at least
# the number of training environments where the data config states it (n_train_envs). Data fields: counts of
# samples, buildings, tasks, dimensions and environments are >= 1; caps and sizes where 0 means "all" / "as
# stored" / "default" are >= 0; correlations, confounder strengths and probabilities are in [0, 1]; seeds, shifts
# and years are free. A new numeric field needs a rule here (tests/test_faults.py checks that every field of every
# dataset and method has one).
from mtcrl_lite.core.hparams import COUNT, FRACTION, FREE, NONNEG, POSITIVE, validity  # noqa: E402

RANGES: dict[str, str] = {
    "train.epochs": COUNT,
    "train.batch_size": COUNT,
    "train.lr": POSITIVE,
    "train.weight_decay": NONNEG,
    "train.eval_train_max": COUNT,
    "train.threads": COUNT,
    "train.num_workers": NONNEG,
    "train.eval_batch_size": COUNT,
    "model.channels": COUNT,
    "model.width": COUNT,
    "model.n_modules": NONNEG,
    "model.theta_init": FREE,
    "model.decoder_channels": COUNT,
    "data.n_train_per_env": COUNT,
    "data.n_val": COUNT,
    "data.n_test": COUNT,
    "data.n_pair_envs": COUNT,
    "data.n_tasks": COUNT,
    "data.d_causal": COUNT,
    "data.buildings_per_env": COUNT,
    "data.images_per_building": COUNT,
    "data.val_buildings": COUNT,
    "data.test_buildings": COUNT,
    "data.downsample": COUNT,
    "data.min_title_count": COUNT,
    "data.min_ratings": COUNT,
    "data.emb_dim": COUNT,
    "data.d_noise": NONNEG,
    "data.max_train_per_env": NONNEG,
    "data.max_per_building": NONNEG,
    "data.n_envs": NONNEG,
    "data.size": NONNEG,
    "data.depth_invalid_from": NONNEG,
    "data.data_seed": NONNEG,
    "data.train_corrs": FRACTION,
    "data.val_corr": FRACTION,
    "data.test_corr": FRACTION,
    "data.train_mc": FRACTION,
    "data.val_mc": FRACTION,
    "data.test_mc": FRACTION,
    "data.env_strengths": FRACTION,
    "data.val_strength": FRACTION,
    "data.test_strength": FRACTION,
    "data.missing_depth": FRACTION,
    "data.max_items": NONNEG,
    "data.corr_shift": FREE,
    "data.mu": FREE,
    "data.hue_shift": FREE,
    "data.train_max_year": FREE,
    "data.val_max_year": FREE,
    "data.env_edges": FREE,
}
RANGES_BY_DATASET: dict[str, dict[str, str]] = {"scenes": {"data.size": COUNT}}  # Taskonomy: size 0 = as stored


def _in_range(v, rule: str) -> bool:
    if isinstance(v, float) and not math.isfinite(v):
        return False
    return {COUNT: v >= 1, NONNEG: v >= 0, POSITIVE: v > 0, FRACTION: 0 <= v <= 1, FREE: True}[rule]


def n_train_envs(cfg: RunConfig) -> int | None:
    """Number of training environments the data config asks for, where it states it (None: known once built)."""
    d = cfg.data
    if hasattr(d, "train_corrs"):  # Multi-MNIST, debug
        return len(d.train_corrs) if d.shift == "corr" else d.n_pair_envs
    for name in ("train_mc", "env_strengths"):  # Multi-SEM, scenes
        if hasattr(d, name):
            return len(getattr(d, name))
    if hasattr(d, "env_edges"):  # MovieLens: buckets cut at the edges
        return len(d.env_edges) + 1
    return getattr(d, "n_envs", 0) or None  # Taskonomy (0 = one per building)


def validate_config(cfg: RunConfig) -> RunConfig:
    """Raise ValueError naming every numeric field outside its rule (the `valid` of its hp() field, else RANGES) and
    the --set that fixes it."""
    declared = {f"{s}.{n}": rule for s in SECTIONS for n, rule in validity(getattr(cfg, s)).items()}
    rules = {**RANGES, **declared, **RANGES_BY_DATASET.get(cfg.dataset, {})}
    bad = [] if cfg.seed >= 0 else [f"seed = {cfg.seed} is out of range (must be >= 0); pass --seed 0 or more"]
    for section in SECTIONS:
        obj = getattr(cfg, section)
        for name in _fields(obj):
            key, value = f"{section}.{name}", getattr(obj, name)
            values = value if isinstance(value, tuple) else (value,)
            numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
            if key in rules and not all(_in_range(v, rules[key]) for v in numbers):
                each, what = ("every entry ", "values") if isinstance(value, tuple) else ("", "a value")
                finite = all(math.isfinite(v) for v in numbers)
                rule = rules[key] if finite or rules[key] == FREE else f"finite and {rules[key]}"
                bad.append(
                    f"{key} = {value!r} is out of range ({each}must be {rule}); "
                    f"pass --set {key}=<{'a finite value' if rules[key] == FREE else f'{what} {rules[key]}'}>"
                )
    from mtcrl_lite.core.losses import DECORRELATIONS  # the one list of L_dec kinds

    dec_kind = getattr(cfg.hp, "dec_kind", None)
    if dec_kind is not None and dec_kind not in DECORRELATIONS:
        bad.append(f"hp.dec_kind = {dec_kind!r} is not one of {tuple(DECORRELATIONS)}; pass --set hp.dec_kind=corr")
    aggregator = getattr(cfg.hp, "aggregator", None)  # methods.Aggregated: the registry name picks it
    if aggregator is not None and aggregator != cfg.method:
        bad.append(
            f"hp.aggregator = {aggregator!r} differs from the method {cfg.method!r} (each aggregator is its own "
            f"method); pass --method {aggregator} instead of --set hp.aggregator"
        )
    if cfg.train.schedule not in SCHEDULES:
        bad.append(
            f"train.schedule = {cfg.train.schedule!r} is not one of {SCHEDULES}; "
            f"pass --set train.schedule=cosine (or constant)"
        )
    n_envs = n_train_envs(cfg)
    if not bad and n_envs and cfg.train.batch_size < n_envs:
        bad.append(
            f"train.batch_size = {cfg.train.batch_size} is smaller than the number of training environments "
            f"({n_envs}; every step holds batch_size // {n_envs} samples of each); "
            f"pass --set train.batch_size=<at least {n_envs}>"
        )
    if bad:
        raise ValueError(f"{cfg.dataset}/{cfg.method}: " + "; ".join(bad))
    return cfg


def make_config(
    dataset: str,
    method: str,
    seed: int = 0,
    scale: str = "default",
    overrides: dict[str, object] | None = None,
    tuned: bool = True,
) -> RunConfig:
    """The resolved run config (order in the module docstring). tuned=False ignores tuning/tuned.json."""
    if dataset not in DATASETS:
        raise KeyError(f"unknown dataset {dataset!r}; valid: {sorted(DATASETS)}")
    get_method(method)
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; valid: {SCALES}")
    train = WideDecayTrainConfig() if get_method(method).cls.wide_weight_decay else TrainConfig()
    cfg = RunConfig(dataset, method, int(seed), DATASETS[dataset][0](), train=train, hp=default_hparams(method))
    preset = {
        k: v
        for k, v in PRESETS.get(dataset, {}).get(scale, {}).items()
        if not (k.startswith("hp.") and k.split(".", 1)[1] not in _fields(cfg.hp))
    }
    from_file = {k: typed(cfg, k, v) for k, v in tuned_values(dataset, method).items()} if tuned else {}
    for layer in (preset, from_file) if scale == "default" else (from_file, preset):
        apply_overrides(cfg, layer)
    apply_overrides(cfg, dict(overrides or {}))
    cfg.tuned = {k: v for k, v in from_file.items() if get_value(cfg, k) == v}  # those that were not replaced
    return validate_config(cfg)


def config_from_dict(d: dict) -> RunConfig:
    """Rebuild a RunConfig from a run's config.json (extra provenance keys are ignored; `tuned` is kept as
    written, the values themselves are in the sections)."""
    over = {f"{sec}.{k}": v for sec in SECTIONS for k, v in (d.get(sec) or {}).items()}
    cfg = make_config(d["dataset"], d["method"], d["seed"], "default", over, tuned=False)
    cfg.tuned = dict(d.get("tuned") or {})
    return cfg
