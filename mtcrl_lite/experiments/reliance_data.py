"""Dataset adapters of the spurious-feature measures (`mtcrl_lite.analysis.reliance`): which input features are spurious
for which task of which dataset, and the inputs, model and held-out sets in the coordinates those masks use.

* `spurious_mask(data, task)`: Multi-MNIST (its debug twin, Multi-Fashion, Fashion+MNIST): the other item's half
  of the canvas; Multi-SEM: the other tasks' causal factors, in latent coordinates.
* `inputs_of(data, split)`: float inputs and integer labels of a split (an `ArraySplit` of `mtcrl_lite.data.base`),
  in mask coordinates (uint8 images scaled to [0, 1]; Multi-SEM inputs mapped back to latents when mixed).
* `model_in_mask_coords(model, data)`: the model as a function of those coordinates (`spurious.latent_model`).
* `iid_strength`, `iid_split`: an in-distribution held-out split, drawn like the training mixture of environments.
"""

from __future__ import annotations

import numpy as np
import torch

from mtcrl_lite.analysis.reliance import latent_model

# datasets of the Multi-MNIST generator (mnist.build_from_pools): one item per half of the canvas
TWO_HALVES = ("multimnist", "debug", "multifashion", "fashionmnist")


def spurious_mask(data, task: str) -> np.ndarray:
    """Boolean mask of the spurious features of `task`, in the coordinates the measures use.

    Multi-MNIST (its debug twin, Multi-Fashion, Fashion+MNIST): the other item's half of the canvas (task 'right':
    the left half).
    Multi-SEM: the other tasks' causal factors, in latent coordinates (= input coordinates with identity mixing).
    """
    if data.name in TWO_HALVES:
        shape = data.input_shape
        mask = np.zeros(shape, dtype=bool)
        half = shape[-1] // 2
        if task == "right":
            mask[..., :half] = True
        elif task == "left":
            mask[..., half:] = True
        else:
            raise KeyError(f"Multi-MNIST has tasks 'left' and 'right', not {task!r}")
        return mask
    if data.name == "multisem":
        causal = data.info["causal_coords"]
        if task not in causal:
            raise KeyError(f"Multi-SEM has tasks {sorted(causal)}, not {task!r}")
        mask = np.zeros(data.info["latent_dim"], dtype=bool)
        for t, coords in causal.items():
            if t != task:
                mask[coords] = True
        return mask
    raise ValueError(f"no spurious-feature definition for dataset {data.name!r}")


def inputs_of(data, split) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Float inputs (uint8 images scaled to [0, 1], as in training) and labels of a split, in the coordinates
    of `spurious_mask` (Multi-SEM inputs are mapped back to latents: L = x @ M)."""
    x = torch.from_numpy(split.x)
    x = x.float().div(255.0) if x.dtype == torch.uint8 else x.float()
    if data.name == "multisem" and not data.info["features_identifiable"]:
        x = x @ torch.as_tensor(data.info["mixing_matrix"], dtype=torch.float32)
    return x, {t: torch.from_numpy(v).long() for t, v in split.y.items()}


def model_in_mask_coords(model, data):
    """The model as a function of the coordinates of `inputs_of` / `spurious_mask`."""
    if data.name == "multisem" and not data.info["features_identifiable"]:
        return latent_model(model, data.info["mixing_matrix"])
    return model


# In-distribution sets: the dataset rebuilt with its validation split drawn like the training mixture.
_IID_KEYS = {**{name: ("train_corrs", "val_corr") for name in TWO_HALVES}, "multisem": ("train_mc", "val_mc")}


def iid_strength(dataset: str, strengths) -> float:
    """The one strength whose label agreement equals the training environments' average agreement.

    Multi-MNIST's agreement p + (1 - p)/10 is linear in p, so that is the mean p. Multi-SEM's agreement
    m^2 + (1 - m)^2 is not: m = (1 + sqrt(2 q - 1)) / 2 for the mean agreement q (taking the m >= 0.5 root)."""
    s = np.asarray(strengths, dtype=float)
    if dataset == "multisem":
        q = np.mean(s**2 + (1 - s) ** 2)
        return float((1 + np.sqrt(max(2 * q - 1, 0.0))) / 2)
    return float(s.mean())


def iid_split(cfg, n: int | None = None):
    """A fresh held-out split from (approximately) the training distribution: the same data config with the
    validation strength set by `iid_strength`. Training environments are unchanged (they are drawn first)."""
    from mtcrl_lite.run.config import make_config  # local: config imports the data registry
    from mtcrl_lite.run.train import load_data

    train_key, val_key = _IID_KEYS[cfg.dataset]
    strength = iid_strength(cfg.dataset, getattr(cfg.data, train_key))
    over = {f"data.{k}": v for k, v in vars(cfg.data).items()}
    over[f"data.{val_key}"] = strength
    if n is not None:
        over["data.n_val"] = n
    c = make_config(cfg.dataset, cfg.method, cfg.seed, "default", over)
    return load_data(c).val
