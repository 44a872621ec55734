"""What the modules learn (the paper's MovieLens figure) and the task similarity read from the routing graph A.

* Words per module. The shared representation h (width W) is cut into K blocks of d = W / K units: for MT-CRL these
  are its modules Z_k; for vanilla MTL (no modules) the same contiguous blocks of its shared layer, for comparison.
  A word's activation of block k is the mean, over reference inputs (real training rows), of ||Z_k|| when the
  title holds that word only, minus the same with an empty title (`word_activation`). The words that most
  activate a block are listed beside the tasks that use it (`task_usage`): A[:, k] for MT-CRL; for MTL, the norm of
  each head's weights on block k, divided by that head's largest block norm (in [0, 1] like A).
* Task similarity. Two tasks are similar when they read the same modules: the correlation between their rows of A
  (`graph_similarity`, the cosine of the rows centred on their means; 1 = same preference, -1 = opposite).
  `spectral_order` orders tasks so that similar ones sit together (numpy only: the Fiedler vector of the graph
  Laplacian of the affinity (S + 1) / 2).
* Does A select? `graph_selection` summarises the final A of runs: its range and the share of entries that are
  switched off (< 0.1) or on (> 0.9); with Adam at lr 1e-3 A hardly leaves its start (see hp.lr_graph).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from mtcrl_lite.run.rundir import final_graphs


def blocks(model, x: torch.Tensor, k: int) -> torch.Tensor:
    """(N, K, d) blocks of the shared representation of inputs x."""
    h = model.representation(x)
    if h.shape[1] % k:
        raise ValueError(f"representation width {h.shape[1]} is not divisible into {k} blocks")
    return h.view(h.shape[0], k, h.shape[1] // k)


@torch.no_grad()
def word_activation(model, reference: torch.Tensor, bow_columns: tuple[int, int], k: int) -> np.ndarray:
    """(V, K): mean over reference rows of ||Z_k(row with only word v in the title)|| - ||Z_k(row, empty title)||."""
    lo, hi = bow_columns
    base = reference.clone()
    base[:, lo:hi] = 0
    empty = blocks(model, base, k).norm(dim=2).mean(0)  # (K,)
    out = np.zeros((hi - lo, k))
    for v in range(hi - lo):
        x = base.clone()
        x[:, lo + v] = 1
        out[v] = (blocks(model, x, k).norm(dim=2).mean(0) - empty).numpy()
    return out


def top_words(scores: np.ndarray, vocab: list[str], n: int = 5) -> list[list[str]]:
    """Per block (column of scores), the n words with the largest activation (ties: vocabulary order)."""
    if scores.shape[0] != len(vocab):
        raise ValueError(f"scores have {scores.shape[0]} rows for a vocabulary of {len(vocab)} words")
    return [[vocab[i] for i in np.argsort(-scores[:, j], kind="stable")[:n]] for j in range(scores.shape[1])]


def task_usage(model, task_names: list[str], k: int) -> np.ndarray:
    """(T, K): A for MT-CRL; for a shared-encoder model, ||head_t weights on block k|| / max_k of the same."""
    graph = getattr(model, "graph", None)
    if graph is not None:
        return graph.detach().cpu().numpy()
    rows = []
    for name in task_names:
        w = model.heads[name].weight.detach().cpu()  # (n_out, W)
        norms = w.view(w.shape[0], k, -1).pow(2).sum((0, 2)).sqrt().numpy()
        rows.append(norms / max(norms.max(), 1e-12))
    return np.stack(rows)


def users_of_module(usage: np.ndarray, task_names: list[str], n: int = 2) -> list[str]:
    """Per module, its n heaviest users as 'task (weight)', heaviest first."""
    return [
        ", ".join(f"{task_names[i]} ({usage[i, j]:.2f})" for i in np.argsort(-usage[:, j], kind="stable")[:n])
        for j in range(usage.shape[1])
    ]


def module_word_table(model, data, k: int, n_words: int = 5, n_reference: int = 64, seed: int = 0) -> pd.DataFrame:
    """One row per module: its top title words and its heaviest task users (MovieLens; `data.info` holds the
    vocabulary and the bag-of-words columns). Reference rows: n_reference training rows drawn with `seed`."""
    train = data.train_all()
    rows = np.random.default_rng(seed).choice(len(train), min(n_reference, len(train)), replace=False)
    reference = torch.from_numpy(train.x[np.sort(rows)]).float()
    scores = word_activation(model, reference, tuple(data.info["bow_columns"]), k)
    names = [t.name for t in data.tasks]
    return pd.DataFrame(
        {
            "words": [", ".join(w) for w in top_words(scores, data.info["vocab"], n_words)],
            "tasks using it": users_of_module(task_usage(model, names, k), names),
        },
        index=pd.Index([f"Z{j}" for j in range(k)], name="module"),
    )


def graph_similarity(a: np.ndarray) -> np.ndarray:
    """(T, T) correlation between the rows of A (T, K); a constant row has correlation 0 with every other."""
    a = np.asarray(a, dtype=float)
    c = a - a.mean(1, keepdims=True)
    norm = np.linalg.norm(c, axis=1)
    safe = np.where(norm > 0, norm, 1.0)
    s = (c @ c.T) / np.outer(safe, safe)
    s[norm == 0, :] = 0.0
    s[:, norm == 0] = 0.0
    np.fill_diagonal(s, 1.0)
    return s


def spectral_order(s: np.ndarray) -> np.ndarray:
    """A permutation that puts similar items next to each other: argsort of the Fiedler vector of the Laplacian
    of the affinity W = (S + 1) / 2 (zero diagonal). Sign fixed so that item 0 comes in the first half."""
    s = np.asarray(s, dtype=float)
    if s.ndim != 2 or s.shape[0] != s.shape[1]:
        raise ValueError(f"similarity must be square, got {s.shape}")
    n = s.shape[0]
    if n < 3:
        return np.arange(n)
    w = (s + s.T) / 4 + 0.5
    np.fill_diagonal(w, 0.0)
    lap = np.diag(w.sum(1)) - w
    _, vecs = np.linalg.eigh(lap)
    f = vecs[:, 1]
    if f[0] > np.median(f):
        f = -f
    return np.argsort(f, kind="stable")


def graph_selection(run_dirs, off: float = 0.1, on: float = 0.9) -> pd.DataFrame:
    """One row per run with a routing graph: method, seed, hp.lr_graph, min / mean / max of its final A and the
    share of entries below `off` and above `on`."""
    rows = []
    for cfg, a in final_graphs(run_dirs):
        a = np.asarray(a, dtype=float)
        rows.append(
            {
                "method": cfg["method"],
                "seed": cfg["seed"],
                "lr_graph": cfg["hp"].get("lr_graph", 1.0),
                "A_min": a.min(),
                "A_mean": a.mean(),
                "A_max": a.max(),
                f"share < {off}": float((a < off).mean()),
                f"share > {on}": float((a > on).mean()),
            }
        )
    return pd.DataFrame(rows)
