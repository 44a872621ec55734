"""rho_spur, saliency and the counterfactual measure on models whose answer is known (`spurious`), the
datasets' spurious masks (`spurious_data`) and the run analyses and tables of notebook 02 (`spurious_experiments`)."""

import numpy as np
import pandas as pd
import pytest
import torch

from mtcrl_lite.analysis import reliance as S
from mtcrl_lite.data.sem import label_agreement
from mtcrl_lite.experiments import reliance_data as D
from mtcrl_lite.experiments import reliance_study as E
from mtcrl_lite.run.config import make_config
from mtcrl_lite.run.train import load_data


class Linear(torch.nn.Module):
    def __init__(self, w, b=None):
        super().__init__()
        self.w = torch.tensor(w, dtype=torch.float32)
        self.b = torch.zeros(len(w)) if b is None else torch.tensor(b, dtype=torch.float32)

    def forward(self, x):
        return {"a": x.flatten(1) @ self.w.T + self.b}


def test_linear_model_gives_rho_from_its_weights():
    w = [[1.0, -2.0, 3.0, 0.5], [0.0, 4.0, -1.0, 1.0]]  # class 0 row, class 1 row
    x = torch.randn(7, 4)
    y = torch.tensor([0, 1, 1, 0, 1, 1, 1])  # 2 of class 0, 5 of class 1
    mask = np.array([False, False, True, True])
    n0, n1 = 2, 5
    abs_w = np.abs(np.array(w))
    expect = (n0 * abs_w[0, 2:].sum() + n1 * abs_w[1, 2:].sum()) / (n0 * abs_w[0].sum() + n1 * abs_w[1].sum())
    assert S.rho_spur(Linear(w), x, y, "a", mask) == pytest.approx(expect, rel=1e-6)
    sal = S.saliency(Linear(w), x, y, "a")
    assert sal == pytest.approx((n0 * abs_w[0] + n1 * abs_w[1]) / 7, rel=1e-6)
    # log-probability output of a binary linear model: gradient (1 - p_y)(w_y - w_other), so rho uses |w_1 - w_0|
    d = np.abs(abs_w[1] * np.sign(w[1]) - np.array(w[0]))
    assert S.rho_spur(Linear(w), x, y, "a", mask, output="logprob") == pytest.approx(d[2:].sum() / d.sum(), rel=1e-5)


def test_model_that_ignores_the_spurious_half_has_rho_zero_and_never_flips():
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(2 * 6 * 6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 10)
    )
    mask = np.zeros((2, 6, 6), bool)
    mask[..., :3] = True  # the "left half" is spurious

    def model(x):
        return {"right": net(x * torch.from_numpy(~mask))}

    x, y = torch.rand(50, 2, 6, 6), torch.randint(0, 10, (50,))
    assert S.rho_spur(model, x, y, "right", mask) == 0.0
    assert S.rho_spur(model, x, y, "right", ~mask) == pytest.approx(1.0, abs=1e-12)
    cf = S.counterfactual(model, x, y, "right", mask, seed=3)
    assert cf["flip_rate"] == 0.0 and cf["acc_drop"] == 0.0 and cf["acc"] == cf["acc_cf"]


def test_model_that_reads_only_the_spurious_part_flips_as_its_donors_say():
    mask = np.array([True, True, False])
    model = Linear([[1.0, 1.0, 0.0], [-1.0, -1.0, 0.0]])
    x = torch.randn(200, 3)
    y = torch.randint(0, 2, (200,))
    cf = S.counterfactual(model, x, y, "a", mask, seed=5)
    donor = S.derangement(200, np.random.default_rng(5))
    pred = lambda v: model(v)["a"].argmax(1)
    assert cf["flip_rate"] == pytest.approx(float((pred(x) != pred(x[donor])).float().mean()))
    assert cf["flip_rate"] > 0.3
    assert S.rho_spur(model, x, y, "a", mask) == pytest.approx(1.0, abs=1e-12)


def test_derangement_and_swap():
    for seed in range(20):
        p = S.derangement(5, np.random.default_rng(seed))
        assert sorted(p) == list(range(5)) and (p != np.arange(5)).all()
    assert (S.derangement(100, np.random.default_rng(1)) == S.derangement(100, np.random.default_rng(1))).all()
    with pytest.raises(ValueError):
        S.derangement(1, np.random.default_rng(0))
    x = torch.arange(6.0).view(3, 2)
    out = S.swap_spurious(x, np.array([True, False]), np.array([2, 0, 1]))
    assert out.tolist() == [[4.0, 1.0], [0.0, 3.0], [2.0, 5.0]]
    with pytest.raises(ValueError, match="mask shape"):
        S.swap_spurious(x, np.array([True]), np.array([2, 0, 1]))


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="output"):
        S.saliency(Linear([[1.0]]), torch.ones(2, 1), torch.zeros(2), "a", output="prob")
    with pytest.raises(ValueError, match="labels"):
        S.saliency(Linear([[1.0]]), torch.ones(2, 1), torch.zeros(3), "a")
    with pytest.raises(KeyError, match="task"):
        S.saliency(Linear([[1.0]]), torch.ones(2, 1), torch.zeros(2), "b")
    with pytest.raises(ValueError, match="zero everywhere"):
        S.rho_from_saliency(np.zeros(3), np.array([True, False, False]))


def test_spurious_masks_of_both_datasets():
    debug = load_data(make_config("debug", "mtl", 0))
    right = D.spurious_mask(debug, "right")
    assert right.shape == debug.input_shape and right[..., :8].all() and not right[..., 8:].any()
    assert (D.spurious_mask(debug, "left") == ~right).all()
    sem = load_data(make_config("multisem", "mtl", 0, "smoke", {"data.n_tasks": 3, "data.d_causal": 2}))
    assert np.flatnonzero(D.spurious_mask(sem, "t2")).tolist() == [0, 1, 4, 5]
    with pytest.raises(KeyError):
        D.spurious_mask(sem, "left")


def test_rho_is_computed_on_factors_under_orthogonal_mixing():
    cfg = make_config("multisem", "mtl", 0, "smoke", {"data.mixing": "orthogonal"})
    data = load_data(cfg)
    m = torch.tensor(data.info["mixing_matrix"], dtype=torch.float32)
    w_lat = torch.zeros(2, 20)
    w_lat[1, :5], w_lat[1, 5:10] = 1.0, 0.25  # reads its own factor and, less, the other's

    def model(x):  # a model of the mixed inputs
        return {"t1": (x @ m) @ w_lat.T}

    x, ys = D.inputs_of(data, data.val)
    assert x == pytest.approx(torch.from_numpy(data.val.x) @ m)
    rho = S.rho_spur(D.model_in_mask_coords(model, data), x, ys["t1"], "t1", D.spurious_mask(data, "t1"))
    frac1 = float((ys["t1"] == 1).float().mean())
    assert rho == pytest.approx(frac1 * 1.25 / (frac1 * 6.25), rel=1e-5)


def test_iid_strength_matches_the_training_agreement():
    m = D.iid_strength("multisem", [0.95, 0.85])
    assert label_agreement(m) == pytest.approx((label_agreement(0.95) + label_agreement(0.85)) / 2)
    assert D.iid_strength("multimnist", [0.9, 0.7]) == pytest.approx(0.8)


def test_analyze_run_and_table1_end_to_end(tmp_path):
    from mtcrl_lite.grid.sweep import run_grid

    dirs = run_grid("multisem", ["stl", "mtl"], [0, 1], tmp_path, "smoke", progress=False)
    df = E.analyze_runs(dirs, n_max=200)
    assert len(df) == 2 * 2 * 2 * 2  # methods x seeds x tasks x sets
    assert df.rho_spur.between(0, 1).all() and df.flip_rate.between(0, 1).all()
    assert set(df.set) == {"shifted", "iid"}
    again = E.analyze_runs(dirs, n_max=200)  # cached, identical
    pd.testing.assert_frame_equal(df, again)
    t1 = E.table1(df)
    assert ("multisem", "stl") in t1.columns and "(paper 0.128)" in t1.loc["rho_spur", ("multisem", "stl")]
    mean = df[(df.set == "shifted") & (df.method == "mtl")].groupby("seed").rho_spur.mean().mean()
    assert t1.loc["rho_spur", ("multisem", "mtl")].startswith(f"{mean:.3f}")
    ex = E.excess_over_control(df, df)
    assert (ex.xs("excess", axis=1, level=1) == 0).all().all()
    checks = E.direction_checks(df, df)["multisem"]
    sh = df[df.set == "shifted"].groupby("method").mean(numeric_only=True)
    assert checks["MTL val < STL val"] == (sh.acc_val["mtl"] < sh.acc_val["stl"])
    assert checks["rho_spur mtl"] == pytest.approx(sh.rho_spur["mtl"]) and checks["rho excess mtl"] == 0


def test_single_environment_control_keeps_the_training_size():
    over = E.single_env_overrides("multisem", 0.5, "smoke", {"model.width": 4})
    assert over == {"model.width": 4, "data.train_mc": (0.5,), "data.n_train_per_env": 512}
    cfg = make_config("multisem", "stl", 0, "smoke", over)
    assert list(load_data(cfg).train_envs) == ["m=0.5"]
    assert E.single_env_overrides("multimnist", 0.0, "default")["data.n_train_per_env"] == 12000
