"""Interpretability helpers: exact checks on hand-made models and matrices."""

import numpy as np
import pytest
import torch
from test_movielens import SMALL, write_fixture
from torch import nn

from mtcrl_lite.analysis import interpret as I
from mtcrl_lite.analysis import plots
from mtcrl_lite.core.tasks import Task
from mtcrl_lite.data import movielens as M
from mtcrl_lite.models.networks import MTCRL, ModelConfig, SharedMTL


class WordsAreBlocks(nn.Module):
    """representation = 2 * the two bag-of-words columns (2, 3) + 1 * column 0: K = 2 blocks of d = 1."""

    def representation(self, x):
        return torch.stack([2 * x[:, 2] + x[:, 0], 3 * x[:, 3] + x[:, 0]], 1)


def test_word_activation_is_exact_on_a_hand_made_model():
    ref = torch.tensor([[1.0, 5.0, 1.0, 1.0], [3.0, 5.0, 0.0, 1.0]])
    scores = I.word_activation(WordsAreBlocks(), ref, (2, 4), 2)
    # empty title: blocks are |x0| = 1 and 3, mean 2; word 0 adds 2 to block 0; word 1 adds 3 to block 1
    assert np.allclose(scores, [[2.0, 0.0], [0.0, 3.0]])
    assert I.top_words(scores, ["club", "die"], 1) == [["club"], ["die"]]


def test_top_words_order_and_ties():
    scores = np.array([[0.1, 5.0], [0.3, 5.0], [0.2, 1.0]])
    assert I.top_words(scores, ["a", "b", "c"], 2) == [["b", "c"], ["a", "b"]]
    with pytest.raises(ValueError, match="vocabulary"):
        I.top_words(scores, ["a"], 1)


def test_task_usage_reads_A_or_head_block_norms():
    tasks = [Task("u", "regression", 1, "rmse"), Task("v", "regression", 1, "rmse")]
    cfg = ModelConfig(channels=(4,), width=4, n_modules=2)
    crl = MTCRL((3,), tasks, cfg)
    with torch.no_grad():
        crl.theta.copy_(torch.tensor([[0.0, 100.0], [-100.0, 0.0]]))
    assert np.allclose(I.task_usage(crl, ["u", "v"], 2), [[0.5, 1.0], [0.0, 0.5]])
    mtl = SharedMTL((3,), tasks, cfg)
    with torch.no_grad():
        mtl.heads["u"].weight.copy_(torch.tensor([[3.0, 4.0, 0.0, 1.0]]))  # block norms 5, 1
        mtl.heads["v"].weight.copy_(torch.tensor([[0.0, 0.0, 0.0, 2.0]]))  # block norms 0, 2
    usage = I.task_usage(mtl, ["u", "v"], 2)
    assert np.allclose(usage, [[1.0, 0.2], [0.0, 1.0]])
    assert I.users_of_module(usage, ["u", "v"], 1) == ["u (1.00)", "v (1.00)"]


def test_graph_similarity():
    a = np.array([[1.0, 0.0, 0.5], [0.8, 0.2, 0.5], [0.0, 1.0, 0.5], [0.4, 0.4, 0.4]])
    s = I.graph_similarity(a)
    assert s[0, 1] == pytest.approx(1.0) and s[0, 2] == pytest.approx(-1.0)
    assert s[3, 0] == 0.0 and s[3, 3] == 1.0 and np.allclose(s, s.T)


def test_spectral_order_groups_blocks():
    truth = np.array([0, 1, 0, 1, 2, 0, 2, 1])  # three clusters, interleaved
    s = np.where(truth[:, None] == truth[None, :], 0.9, -0.5)
    order = I.spectral_order(s)
    assert sorted(order.tolist()) == list(range(8))
    runs = [truth[order][0]] + [b for a, b in zip(truth[order][:-1], truth[order][1:]) if a != b]
    assert len(runs) == 3  # each cluster is one contiguous run
    assert I.spectral_order(np.eye(2)).tolist() == [0, 1]
    with pytest.raises(ValueError, match="square"):
        I.spectral_order(np.zeros((2, 3)))


def test_module_word_table_on_fixture(tmp_path):
    ratings, users, items = M.read_movielens(write_fixture(tmp_path / "ml"))
    data = M.build_from_tables(M.MovieLensConfig(**SMALL), ratings, users, items, "fixture")
    torch.manual_seed(0)
    model = MTCRL(data.model_input, data.tasks, ModelConfig(channels=(8,), width=8, n_modules=4))
    table = I.module_word_table(model, data, 4, n_words=3)
    assert list(table.index) == ["Z0", "Z1", "Z2", "Z3"]
    assert all(len(w.split(", ")) == 3 and set(w.split(", ")) <= set(data.info["vocab"]) for w in table.words)
    assert all(u.startswith(("drama", "childrens")) for u in table["tasks using it"])
    fig = plots.similarity_heatmap(I.graph_similarity(np.random.default_rng(0).random((3, 4))), list("abc"), [2, 0, 1])
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["c", "a", "b"]
    fig2 = plots.counts_by_year({"Drama": {1990: 3, 1995: 4}}, {"train": (1900, 1994.5)})
    assert len(fig2.axes[0].lines) == 1


def test_graph_selection_reads_final_graphs_and_skips_models_without_one(tmp_path):
    import json

    for name, a, hp in (("r1", [[0.05, 0.95], [0.5, 0.2]], {"lr_graph": 30.0}), ("r2", None, {})):
        d = tmp_path / name
        d.mkdir()
        (d / "config.json").write_text(json.dumps({"method": "mtcrl" if a else "mtl", "seed": 3, "hp": hp}))
        final = {"kind": "final", "selected_epoch": 0, "metrics": {}, "last10": {}, "primary": {}, "A": a}
        (d / "results.jsonl").write_text(json.dumps(final) + "\n")
    table = I.graph_selection([tmp_path / "r1", tmp_path / "r2"])
    assert len(table) == 1
    row = table.iloc[0]
    assert (row.method, row.seed, row.lr_graph) == ("mtcrl", 3, 30.0)
    assert (row.A_min, row.A_max, row.A_mean) == (0.05, 0.95, pytest.approx(0.425))
    assert row["share < 0.1"] == 0.25 and row["share > 0.9"] == 0.25
