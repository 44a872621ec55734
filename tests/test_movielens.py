"""MovieLens: parser (on tiny fixture files in recbole's atomic format), features, split, environments, errors;
checks on the real ml-100k run only when it has been fetched."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from mtcrl_lite.data import DataMissingError
from mtcrl_lite.data import movielens as M
from mtcrl_lite.data import sources as F
from mtcrl_lite.data.base import TabularSpec
from mtcrl_lite.models.networks import TabularTrunk, trunk_for
from mtcrl_lite.run import train as T
from mtcrl_lite.run.config import make_config

ITEMS = """item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq
1\tToy Story\t1965\tAnimation Children's Comedy
2\tDark Club, The\t1975\tDrama Film-Noir
3\tClub Night\t1990\tDrama Romance
4\tDark Night\t1995\tDrama Mystery
5\tunkonwn\tunkonwn\tunknown
6\tLand Before Time III: The Time of the Great Giving (1995)\tV\tAnimation Children's
7\tToy Club\t1997\tChildren's Drama
8\tJust Comedy\t1960\tComedy
"""
USERS = """user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token
1\t24\tM\ttechnician\t85711
2\t53\tF\tother\t94043
"""


def write_fixture(folder, n_per_pair=3):
    """Every user rates every movie `n_per_pair` times (ratings cycle 1..5)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ml-100k.item").write_text(ITEMS)
    (folder / "ml-100k.user").write_text(USERS)
    rows, k = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"], 0
    for u in (1, 2):
        for i in range(1, 9):
            for _ in range(n_per_pair):
                rows.append(f"{u}\t{i}\t{k % 5 + 1}\t{880000000 + k}")
                k += 1
    (folder / "ml-100k.inter").write_text("\n".join(rows) + "\n")
    return folder


SMALL = dict(
    genres=("Drama", "Children's"),
    train_max_year=1990,
    val_max_year=1995,
    env_edges=(1970,),
    min_title_count=1,
    min_ratings=1,
)


def fixture_data(tmp_path, **over):
    ratings, users, items = M.read_movielens(write_fixture(tmp_path / "ml"))
    return M.build_from_tables(M.MovieLensConfig(**{**SMALL, **over}), ratings, users, items, "fixture")


def test_read_atomic_strips_type_suffixes(tmp_path):
    folder = write_fixture(tmp_path / "ml")
    assert list(M.read_atomic(folder / "ml-100k.item").columns) == ["item_id", "movie_title", "release_year", "class"]
    assert list(M.read_atomic(folder / "ml-100k.inter").columns) == ["user_id", "item_id", "rating", "timestamp"]


def test_unkonwn_item_has_no_year_and_no_genre_and_is_dropped(tmp_path):
    _, _, items = M.read_movielens(write_fixture(tmp_path / "ml"))
    row = items.set_index("item_id").loc[5]
    assert math.isnan(row.year) and row.genres == ("unknown",) and not row.year_from_title
    data = fixture_data(tmp_path)
    assert data.info["dropped"]["items without a release year"] == 1


def test_V_year_is_recovered_from_the_title(tmp_path):
    _, _, items = M.read_movielens(write_fixture(tmp_path / "ml"))
    row = items.set_index("item_id").loc[6]
    assert row.year == 1995.0 and row.year_from_title
    assert row.title == "Land Before Time III: The Time of the Great Giving"
    assert items.set_index("item_id").loc[1].title == "Toy Story" and not items.year_from_title[0]


def test_parse_items_without_year_anywhere_gives_nan():
    df = pd.DataFrame({"item_id": ["1"], "movie_title": ["Nothing Here"], "release_year": ["V"], "class": ["Drama"]})
    assert math.isnan(M.parse_items(df).year[0])


def test_tokenize_vocab_and_bag_of_words():
    assert M.tokenize("Children's Club, The (1995)") == ["childrens", "club", "the", "1995"]
    assert M.build_vocab(["Dark Club", "Club Night", "dark dark"], 2) == ["club", "dark"]
    assert M.build_vocab(["a b", "b c"], 1) == ["a", "b", "c"]
    bow = M.bag_of_words(["Dark Club Club", "Unknown words"], ["club", "dark"])
    assert bow.tolist() == [[1.0, 1.0], [0.0, 0.0]] and bow.dtype == np.float32


def test_task_names():
    assert [M.task_name(g) for g in M.GENRES] == [
        "drama",
        "film_noir",
        "mystery",
        "romance",
        "childrens",
        "animation",
        "musical",
        "adventure",
    ]


def test_year_split_and_environments():
    years = np.array([1930, 1970, 1971, 1990, 1994, 1995, 1996, 1998])
    assert M.year_split(years, 1994, 1995).tolist() == ["train"] * 5 + ["val", "test", "test"]
    assert M.year_env(years[:5], (1970, 1985)).tolist() == [0, 0, 1, 2, 2]
    assert M.env_names((1970, 1985), 1994) == ["<=1970", "1971-1985", "1986-1994"]
    with pytest.raises(ValueError, match="train_max_year"):
        M.year_split(years, 1995, 1995)
    with pytest.raises(ValueError, match="env_edges"):
        M.env_names((1985, 1970), 1994)


def test_build_from_fixture_labels_inputs_and_splits(tmp_path):
    data = fixture_data(tmp_path)
    assert [t.name for t in data.tasks] == ["drama", "childrens"]
    assert list(data.train_envs) == ["<=1970", "1971-1990"]
    # movies with a task genre: train 1 (1965), 2, 3 (1975, 1990); val 4, 6 (1995); test 7 (1997). 2 users x 3.
    assert {e: len(s) for e, s in data.train_envs.items()} == {"<=1970": 6, "1971-1990": 12}
    assert (len(data.val), len(data.test)) == (12, 6)
    counts = pd.DataFrame(data.info["counts"])
    assert counts.loc["drama"].to_dict() == {"<=1970": 0, "1971-1990": 12, "val": 6, "test": 6, "train": 12}
    assert counts.loc["childrens"].to_dict() == {"<=1970": 6, "1971-1990": 0, "val": 6, "test": 6, "train": 6}
    # vocabulary from training titles only: "dark" is in a training title, "just" (Comedy, no task) is not
    assert data.info["vocab"] == ["club", "dark", "night", "story", "the", "toy"]
    lo, hi = data.info["bow_columns"]
    assert hi - lo == 6 and data.input_spec.n_features == hi
    env0 = data.train_envs["<=1970"]
    assert (env0.x[:, lo:hi] == np.array([0, 0, 0, 1, 0, 1], np.float32)).all()  # "Toy Story"
    assert np.isnan(env0.y["drama"]).all()
    # target: rating minus the training mean; ratings cycle 1..5
    assert set(np.round(env0.y["childrens"] + data.info["rating_offset"], 4)) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    users = data.val.x[:, 0]
    assert set(users) == {0.0, 1.0} and (data.val.x[users == 1, 2] == 1).all()  # user 2 is F
    assert np.allclose(data.val.x[:, 4], 0.5)  # (1995 - 1990) / 10


def test_like_target_is_binary_with_missing_minus_one(tmp_path):
    data = fixture_data(tmp_path, target="like")
    y = data.train_envs["<=1970"].y
    assert set(np.unique(y["drama"])) == {-1} and set(np.unique(y["childrens"])) <= {0, 1}
    assert all(t.kind == "classification" and t.primary == "auc" for t in data.tasks)


def test_too_few_test_ratings_is_an_error_naming_the_fix(tmp_path):
    with pytest.raises(ValueError, match=r"fewer than data.min_ratings = 7 ratings in the test split \({'drama': 0}\)"):
        fixture_data(tmp_path, genres=("Drama",), val_max_year=1997, min_ratings=7)  # no test movie left
    with pytest.raises(ValueError, match="childrens.*fewer than data.min_ratings = 7 ratings in the train split"):
        fixture_data(tmp_path, min_ratings=7)
    with pytest.raises(ValueError, match="unknown genres"):
        fixture_data(tmp_path, genres=("Drama", "Westerns"))
    with pytest.raises(ValueError, match="data.target"):
        fixture_data(tmp_path, target="stars")


def test_fixture_is_deterministic_and_seeded(tmp_path):
    a, b = fixture_data(tmp_path), fixture_data(tmp_path)
    assert (a.test.x == b.test.x).all()
    c = fixture_data(tmp_path, data_seed=1)
    assert sorted(map(tuple, c.test.x)) == sorted(map(tuple, a.test.x))


def test_tabular_trunk_embeds_id_columns():
    spec = TabularSpec(5, ((0, 3), (2, 4)), emb_dim=2)
    trunk, dim = trunk_for(spec, (7,))
    assert isinstance(trunk, TabularTrunk) and dim == 7
    assert trunk.mlp[0].in_features == 3 + 2 * 2
    x = torch.tensor([[2.0, 0.5, 3.0, 1.0, -1.0]])
    torch.manual_seed(0)
    with torch.no_grad():
        trunk.embeddings[0].weight.copy_(torch.arange(6.0).view(3, 2))
        trunk.embeddings[1].weight.copy_(10 + torch.arange(8.0).view(4, 2))
    feats = torch.cat([torch.tensor([[4.0, 5.0, 16.0, 17.0]]), x[:, [1, 3, 4]]], 1)
    assert torch.allclose(trunk(x), trunk.mlp(feats))
    with pytest.raises(ValueError, match="id columns"):
        TabularTrunk(TabularSpec(3, ((0, 2), (0, 2))), (4,))


def test_every_method_runs_on_the_fixture(tmp_path, monkeypatch):
    data = fixture_data(tmp_path)
    for method in ("mtl", "mtcrl", "irm", "stl"):
        cfg = make_config("movielens", method, 0, "smoke")
        m = T.build_method(cfg, data, torch.device("cpu"))
        plan = T.epoch_plan({e: len(s) for e, s in data.train_envs.items()}, 8, 0, 0)
        for step, idx in enumerate(plan):
            logs = m.update({e: T.to_batch(data.train_envs[e], ix, "cpu") for e, ix in idx.items()}, step + 10)
            assert all(math.isfinite(v) for v in logs.values())
        ev = T.evaluate(m, data, data.test, "cpu")
        assert set(ev) == {"drama", "childrens"} and all(math.isfinite(v["rmse"]) for v in ev.values())


def test_missing_data_error_prints_the_fetch_command(tmp_path):
    with pytest.raises(DataMissingError, match="python -m mtcrl_lite.data fetch movielens"):
        M.load_movielens(tmp_path)


def real_or_skip():
    try:
        return M.load_movielens()
    except DataMissingError:
        pytest.skip("ml-100k not fetched (python -m mtcrl_lite.data fetch movielens)")


def test_real_files_shape_and_dirty_rows():
    ratings, users, items = real_or_skip()
    assert (len(ratings), len(users), len(items)) == (100_000, 943, 1682)
    assert sorted(ratings.rating.unique()) == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert items.year.isna().sum() == 1 and items.year_from_title.sum() == 1
    assert items.set_index("item_id").loc[1412].year == 1995
    assert set(M.GENRES) <= {g for gs in items.genres for g in gs}
    assert set(F.CHECKSUMS["movielens"]) == {"ml-100k.inter", "ml-100k.item", "ml-100k.user"}


def test_real_default_split_counts():
    real_or_skip()
    data = T.load_data(make_config("movielens", "mtl"))
    counts = pd.DataFrame(data.info["counts"])
    assert counts[["train", "val", "test"]].to_numpy().min() >= 50
    assert counts.loc["drama", "test"] == 14003 and counts.loc["film_noir", "val"] == 57
    assert list(data.train_envs) == ["<=1970", "1971-1985", "1986-1994"]
