"""Multi-SEM: the labels, factors, mixing and environments follow the equations of data/sem.py."""

import numpy as np
import pytest

from mtcrl_lite.data import build_dataset
from mtcrl_lite.data.sem import (
    MultiSEMConfig,
    build_multisem,
    label_agreement,
    mixing_matrix,
    sample_labels,
    sample_latents,
)
from mtcrl_lite.run.config import make_config


@pytest.mark.parametrize("m", [0.0, 0.5, 0.8, 1.0])
def test_label_agreement_matches_the_confounder_model(m):
    y = sample_labels(200_000, 3, m, np.random.default_rng(0))
    assert y.dtype == np.int64 and set(np.unique(y)) <= {0, 1}
    for s, t in [(0, 1), (0, 2), (1, 2)]:
        assert np.mean(y[:, s] == y[:, t]) == pytest.approx(label_agreement(m), abs=0.005)
    assert y.mean(0) == pytest.approx([0.5] * 3, abs=0.005)  # each label is balanced for every m


def test_labels_are_independent_exactly_at_half():
    y = sample_labels(400_000, 2, 0.5, np.random.default_rng(1))
    joint = np.array([[np.mean((y[:, 0] == a) & (y[:, 1] == b)) for b in (0, 1)] for a in (0, 1)])
    assert joint == pytest.approx(np.full((2, 2), 0.25), abs=0.003)
    assert label_agreement(0.5) == 0.5 and label_agreement(0.9) == pytest.approx(0.82)
    assert label_agreement(0.2) == pytest.approx(label_agreement(0.8))
    with pytest.raises(ValueError, match="m_C"):
        sample_labels(10, 2, 1.2, np.random.default_rng(0))


def test_factors_depend_only_on_their_own_label():
    rng = np.random.default_rng(2)
    y = sample_labels(200_000, 2, 0.5, rng)
    lat = sample_latents(y, 4, 3, 1.5, rng)
    assert lat.shape == (200_000, 11)
    s1, s2 = lat[:, :4].sum(1) / 2, lat[:, 4:8].sum(1) / 2  # u . Z_t with u = 1/sqrt(4)
    for s, yt in ((s1, y[:, 0]), (s2, y[:, 1])):
        assert s[yt == 1].mean() == pytest.approx(1.5, abs=0.02) and s[yt == 0].mean() == pytest.approx(-1.5, abs=0.02)
        assert s[yt == 1].std() == pytest.approx(1.0, abs=0.02)
    # at m = 0.5 the other task's factor and the noise carry nothing about Y_1
    assert abs(s2[y[:, 0] == 1].mean() - s2[y[:, 0] == 0].mean()) < 0.03
    assert np.abs(lat[y[:, 0] == 1, 8:].mean(0) - lat[y[:, 0] == 0, 8:].mean(0)).max() < 0.03


def test_builder_shapes_info_and_determinism():
    cfg = MultiSEMConfig(n_tasks=3, d_causal=2, d_noise=4, n_train_per_env=300, n_val=200, n_test=100)
    data = build_multisem(cfg)
    assert data.input_shape == (10,) and [t.name for t in data.tasks] == ["t1", "t2", "t3"]
    assert list(data.train_envs) == ["m=0.95", "m=0.85"] and len(data.val) == 200 and len(data.test) == 100
    assert data.val.x.dtype == np.float32 and all(t.n_out == 2 for t in data.tasks)
    assert data.info["causal_coords"] == {"t1": [0, 1], "t2": [2, 3], "t3": [4, 5]}
    assert data.info["noise_coords"] == [6, 7, 8, 9]
    again = build_multisem(cfg)
    assert (again.train_envs["m=0.95"].x == data.train_envs["m=0.95"].x).all()
    other = build_multisem(MultiSEMConfig(**{**vars(cfg), "data_seed": 1}))
    assert not np.allclose(other.val.x, data.val.x)
    # training environments differ in label agreement as the equations say
    big = build_multisem(MultiSEMConfig(n_train_per_env=50_000, n_val=50_000, n_test=10))
    agree = big.info["P(t1=t2)"]
    assert agree["m=0.95"] == pytest.approx(label_agreement(0.95), abs=0.006)
    assert agree["m=0.85"] == pytest.approx(label_agreement(0.85), abs=0.006)
    assert agree["val"] == pytest.approx(0.5, abs=0.006)


def test_orthogonal_mixing_rotates_the_same_latents():
    cfg = MultiSEMConfig(n_train_per_env=100, n_val=100, n_test=100)
    ident = build_multisem(cfg)
    mixed = build_multisem(MultiSEMConfig(**{**vars(cfg), "mixing": "orthogonal"}))
    m = mixed.info["mixing_matrix"]
    assert m @ m.T == pytest.approx(np.eye(20), abs=1e-12)
    assert not np.allclose(m, np.eye(20))
    assert mixed.val.x @ m == pytest.approx(ident.val.x, abs=1e-5)
    assert (mixed.val.y["t1"] == ident.val.y["t1"]).all()
    assert mixing_matrix("orthogonal", 5, 3) == pytest.approx(mixing_matrix("orthogonal", 5, 3))


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"n_tasks": 1}, "n_tasks"),
        ({"mixing": "random"}, "mixing"),
        ({"train_mc": (0.9, 0.9)}, "distinct"),
        ({"val_mc": -0.1}, "m_C"),
        ({"d_causal": 0}, "d_causal"),
    ],
)
def test_bad_configs_raise_clear_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        build_multisem(MultiSEMConfig(**bad))


def test_registered_with_presets():
    cfg = make_config("multisem", "mtcrl", 0, "smoke", {"data.train_mc": "0.9,0.6"})
    assert cfg.data.train_mc == (0.9, 0.6) and cfg.train.epochs == 2
    data = build_dataset("multisem", cfg.data)
    assert list(data.train_envs) == ["m=0.9", "m=0.6"] and len(data.val) == 256
