"""MovieLens-100k (Harper & Konstan 2015) under a release-year shift: one task per genre (docs/METHOD §5).

Files (recbole's atomic format: tab-separated, header fields `name:type`, fetched by `sources.fetch("movielens")`):
  ml-100k.inter  user_id, item_id, rating (1-5), timestamp          100,000 ratings
  ml-100k.user   user_id, age, gender, occupation, zip_code         943 users
  ml-100k.item   item_id, movie_title, release_year, class          1,682 movies (class = space-separated genres)

Dirty rows: item 267 has title, year and genre `unkonwn`/`unknown` (dropped: no year, no genre); item 1412 has
release_year `V` and its year in the title, "(1995)" (recovered from the title, which is then stripped of it).

Samples are ratings of movies with at least one of the task genres. Task t (a genre) = predict the rating
(`target="rating"`, regression, RMSE; the target is the rating minus the mean training rating, which
leaves RMSE and MAE unchanged) or whether it is >= 4 (`target="like"`, binary, AUC) for movies of genre t;
a rating is labelled for the genres of its movie only (NaN / -1 elsewhere, see tasks.Task).
Inputs, one float32 row per rating: [user index, occupation index, gender (F=1), age / 100,
(release year - 1990) / 10, bag of title words (binary, vocabulary of training titles only)];
the two index columns are embedded by models.TabularTrunk.
Shift: release year <= train_max_year trains, (train_max_year, val_max_year] validates, later tests;
training environments are release-year buckets cut at `env_edges`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mtcrl_lite.core.tasks import Task
from mtcrl_lite.data.base import ArraySplit, MTLData, TabularSpec
from mtcrl_lite.data.sources import verify

GENRES = ("Drama", "Film-Noir", "Mystery", "Romance", "Children's", "Animation", "Musical", "Adventure")
DENSE = ("gender", "age", "year")
N_ID_COLS = 2  # user, occupation
TITLE_YEAR = re.compile(r"\s*\((\d{4})\)\s*$")


def task_name(genre: str) -> str:
    """'Children's' -> 'childrens', 'Film-Noir' -> 'film_noir'."""
    return re.sub(r"[^a-z0-9]+", "_", genre.lower().replace("'", "")).strip("_")


def read_atomic(path) -> pd.DataFrame:
    """One recbole atomic file as strings, header suffixes (`:token`, `:float`, `:token_seq`) stripped."""
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=3)
    df.columns = [c.split(":", 1)[0] for c in df.columns]
    return df


def parse_items(df: pd.DataFrame) -> pd.DataFrame:
    """item_id, title, year (float, NaN if unknown), year_from_title (bool), genres (tuple of str).

    A non-numeric release_year is coerced to NaN, then recovered from a trailing "(YYYY)" in the title if there
    is one (the title is then stripped of it)."""
    year = pd.to_numeric(df["release_year"], errors="coerce")
    found = df["movie_title"].str.extract(TITLE_YEAR, expand=False)
    from_title = year.isna() & found.notna()
    year = year.where(~from_title, pd.to_numeric(found, errors="coerce"))
    title = df["movie_title"].where(~from_title, df["movie_title"].str.replace(TITLE_YEAR, "", regex=True))
    return pd.DataFrame(
        {
            "item_id": df["item_id"].astype(int),
            "title": title,
            "year": year.astype(float),
            "year_from_title": from_title,
            "genres": df["class"].str.split().apply(tuple),
        }
    )


def parse_users(df: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": df["user_id"].astype(int),
            "age": df["age"].astype(int),
            "gender": df["gender"],
            "occupation": df["occupation"],
        }
    )


def parse_ratings(df: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": df["user_id"].astype(int),
            "item_id": df["item_id"].astype(int),
            "rating": df["rating"].astype(float),
        }
    )


def read_movielens(folder) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(ratings, users, items) parsed from a folder holding the three ml-100k files (no checksum check)."""
    folder = Path(folder)
    return (
        parse_ratings(read_atomic(folder / "ml-100k.inter")),
        parse_users(read_atomic(folder / "ml-100k.user")),
        parse_items(read_atomic(folder / "ml-100k.item")),
    )


def load_movielens(root=None):
    """(ratings, users, items), sha256-verified. Raises DataMissingError (with the fetch command) if absent."""
    return read_movielens(verify("movielens", root))


def tokenize(title: str) -> list[str]:
    """Lower-case alphanumeric words; apostrophes are dropped inside words ("Children's" -> "childrens")."""
    return re.findall(r"[a-z0-9]+", title.lower().replace("'", ""))


def build_vocab(titles, min_count: int = 2) -> list[str]:
    """Sorted words that occur in at least `min_count` of `titles` (each title counts a word once)."""
    counts: dict[str, int] = {}
    for t in titles:
        for w in set(tokenize(t)):
            counts[w] = counts.get(w, 0) + 1
    return sorted(w for w, c in counts.items() if c >= min_count)


def bag_of_words(titles, vocab: list[str]) -> np.ndarray:
    """(N, V) float32, 1 where the title holds the word; words outside the vocabulary are ignored."""
    index = {w: i for i, w in enumerate(vocab)}
    out = np.zeros((len(titles), len(vocab)), np.float32)
    for r, t in enumerate(titles):
        for w in tokenize(t):
            if w in index:
                out[r, index[w]] = 1.0
    return out


def year_split(years: np.ndarray, train_max_year: int, val_max_year: int) -> np.ndarray:
    """'train' for year <= train_max_year, 'val' up to val_max_year, 'test' after."""
    if not train_max_year < val_max_year:
        raise ValueError(f"data.train_max_year ({train_max_year}) must be < data.val_max_year ({val_max_year})")
    return np.where(years <= train_max_year, "train", np.where(years <= val_max_year, "val", "test"))


def env_names(edges: tuple[int, ...], train_max_year: int) -> list[str]:
    """Names of the release-year buckets: edges (1970, 1985) and 1994 -> ['<=1970', '1971-1985', '1986-1994']."""
    if list(edges) != sorted(set(edges)) or (edges and edges[-1] >= train_max_year):
        raise ValueError(
            f"data.env_edges {edges} must increase strictly and stay below train_max_year ({train_max_year})"
        )
    bounds = [None, *edges, train_max_year]
    return [f"<={bounds[1]}" if lo is None else f"{lo + 1}-{hi}" for lo, hi in zip(bounds[:-1], bounds[1:])]


def year_env(years: np.ndarray, edges: tuple[int, ...]) -> np.ndarray:
    """Index of the bucket of every (training) year: bucket i holds edges[i-1] < year <= edges[i]."""
    return np.searchsorted(np.asarray(edges), years, side="left")


@dataclass
class MovieLensConfig:
    """Data parameters of MovieLens (all overridable with --set data.KEY=VALUE)."""

    target: str = "rating"  # "rating" (regression, RMSE) or "like" (rating >= 4, AUC)
    genres: tuple[str, ...] = GENRES  # one task per genre (the paper's slide)
    train_max_year: int = 1994  # release year <= this: training
    val_max_year: int = 1995  # (train_max_year, this]: validation; later: test
    env_edges: tuple[int, ...] = (1970, 1985)  # training environments: release-year buckets cut here
    min_title_count: int = 2  # vocabulary: words in >= this many training titles
    min_ratings: int = 50  # every task needs this many ratings in train, val and test
    emb_dim: int = 16  # embedding size of the user and occupation ids
    max_train_per_env: int = 0  # > 0: subsample each training environment (smoke scale)
    data_seed: int = 0  # row order and subsampling
    root: str = ""  # data cache ("" = default)


def make_tasks(cfg: MovieLensConfig) -> list[Task]:
    if cfg.target == "rating":
        return [Task(task_name(g), "regression", 1, "rmse") for g in cfg.genres]
    if cfg.target == "like":
        return [Task(task_name(g), "classification", 2, "auc") for g in cfg.genres]
    raise ValueError(f"data.target must be 'rating' or 'like', got {cfg.target!r}")


def build_from_tables(
    cfg: MovieLensConfig, ratings: pd.DataFrame, users: pd.DataFrame, items: pd.DataFrame, name: str = "movielens"
) -> MTLData:
    tasks = make_tasks(cfg)
    genres = list(cfg.genres)
    if len(set(genres)) != len(genres) or not genres:
        raise ValueError(f"data.genres must be distinct and non-empty, got {cfg.genres}")
    known = set(g for gs in items.genres for g in gs)
    if set(genres) - known:
        raise ValueError(f"unknown genres {sorted(set(genres) - known)}; valid: {sorted(known)}")
    dropped = {
        "items without a release year": int(items.year.isna().sum()),
        "items with the year taken from the title": int(items.year_from_title.sum()),
    }
    items = items[items.year.notna()]
    df = ratings.merge(items, on="item_id", how="inner").merge(users, on="user_id", how="inner")
    member = np.array([[g in gs for g in genres] for gs in df.genres], dtype=bool).reshape(len(df), len(genres))
    dropped["ratings of movies without a task genre or year"] = int(len(ratings) - member.any(1).sum())
    df, member = df[member.any(1)].reset_index(drop=True), member[member.any(1)]
    split = year_split(df.year.to_numpy(), cfg.train_max_year, cfg.val_max_year)
    names = env_names(tuple(cfg.env_edges), cfg.train_max_year)

    user_index = {u: i for i, u in enumerate(sorted(users.user_id))}
    occ_index = {o: i for i, o in enumerate(sorted(users.occupation.unique()))}
    train_titles = df.loc[split == "train"].drop_duplicates("item_id").title
    vocab = build_vocab(train_titles, cfg.min_title_count)
    title_bow = dict(zip(items.item_id, bag_of_words(list(items.title), vocab)))
    x = np.concatenate(
        [
            np.stack(
                [
                    df.user_id.map(user_index),
                    df.occupation.map(occ_index),
                    (df.gender == "F").astype(float),
                    df.age / 100.0,
                    (df.year - 1990.0) / 10.0,
                ],
                1,
            ).astype(np.float32),
            np.stack([title_bow[i] for i in df.item_id]) if len(df) else np.zeros((0, len(vocab)), np.float32),
        ],
        1,
    )
    offset = float(df.rating[split == "train"].mean()) if cfg.target == "rating" else 0.0
    if cfg.target == "rating":  # centred on the training mean: RMSE and MAE are unchanged, heads start near it
        ys = {
            t.name: np.where(member[:, j], df.rating - offset, np.nan).astype(np.float32) for j, t in enumerate(tasks)
        }
    else:
        ys = {t.name: np.where(member[:, j], (df.rating >= 4).astype(np.int64), -1) for j, t in enumerate(tasks)}
    rng = np.random.default_rng(cfg.data_seed)

    def take(mask: np.ndarray, cap: int = 0) -> ArraySplit:
        idx = rng.permutation(np.flatnonzero(mask))
        if cap > 0:
            idx = idx[:cap]
        return ArraySplit(x[idx], {t: y[idx] for t, y in ys.items()})

    env = year_env(df.year.to_numpy(), tuple(cfg.env_edges))
    train_envs = {n: take((split == "train") & (env == i), cfg.max_train_per_env) for i, n in enumerate(names)}
    data_splits = {**train_envs, "val": take(split == "val"), "test": take(split == "test")}
    counts = pd.DataFrame(
        {
            s: {t.name: int(t.labelled(torch.from_numpy(sp.y[t.name])).sum()) for t in tasks}
            for s, sp in data_splits.items()
        }
    )
    counts["train"] = counts[names].sum(1)
    for s in ("train", "val", "test"):
        low = counts.index[counts[s] < cfg.min_ratings].tolist()
        if low:
            raise ValueError(
                f"{name}: tasks {low} have fewer than data.min_ratings = {cfg.min_ratings} ratings in "
                f"the {s} split ({counts.loc[low, s].to_dict()}); move data.train_max_year / "
                f"data.val_max_year, drop those genres (data.genres) or lower data.min_ratings"
            )
    years = df.assign(split=split)
    info = {
        "target": cfg.target,
        "rating_offset": offset,
        "genres": dict(zip([t.name for t in tasks], genres)),
        "vocab": vocab,
        "columns": ["user", "occupation", *DENSE] + [f"word:{w}" for w in vocab],
        "bow_columns": (N_ID_COLS + len(DENSE), N_ID_COLS + len(DENSE) + len(vocab)),
        "counts": counts.to_dict(),
        "dropped": dropped,
        "split_years": {
            "train": f"<= {cfg.train_max_year}",
            "val": (
                f"{cfg.val_max_year}"
                if cfg.val_max_year == cfg.train_max_year + 1
                else f"{cfg.train_max_year + 1}-{cfg.val_max_year}"
            ),
            "test": f">= {cfg.val_max_year + 1}",
        },
        "ratings_per_year": pd.DataFrame(member, columns=genres)
        .groupby(df.year.astype(int).to_numpy())
        .sum()
        .to_dict(),
        "n_movies": years.groupby("split").item_id.nunique().to_dict(),
    }
    spec = TabularSpec(x.shape[1], ((0, len(user_index)), (1, len(occ_index))), cfg.emb_dim)
    return MTLData(name, tasks, train_envs, data_splits["val"], data_splits["test"], info, input_spec=spec)


def build_movielens(cfg: MovieLensConfig) -> MTLData:
    return build_from_tables(cfg, *load_movielens(cfg.root or None))
