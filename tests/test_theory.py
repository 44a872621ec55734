"""Proposition 1 pieces: the closed-form Bayes log-odds, its weight on the other task's factor, logistic fits."""

import itertools
import math

import numpy as np
import pytest

from mtcrl_lite.analysis import theory as T


def brute_force_logodds(s, m, mu, task=0):
    """P(Y_task | s) by enumerating the joint over (C, Y_1..Y_T) with Gaussian densities of the projections."""
    n_tasks = len(s)
    dens = lambda v, y: math.exp(-0.5 * (v - (2 * y - 1) * mu) ** 2)
    post = [0.0, 0.0]
    for c in (0, 1):
        for ys in itertools.product((0, 1), repeat=n_tasks):
            p = 0.5 * np.prod([m if y == c else 1 - m for y in ys]) * np.prod([dens(v, y) for v, y in zip(s, ys)])
            post[ys[task]] += p
    return math.log(post[1] / post[0])


@pytest.mark.parametrize("m", [0.2, 0.5, 0.7, 0.95])
@pytest.mark.parametrize("n_tasks", [2, 3])
def test_closed_form_equals_enumeration(m, n_tasks):
    s = np.random.default_rng(0).normal(0, 2, (5, n_tasks))
    for task in range(n_tasks):
        closed = T.bayes_logodds(s, m, 1.3, task)
        assert closed == pytest.approx([brute_force_logodds(row, m, 1.3, task) for row in s], rel=1e-9, abs=1e-9)


def test_weight_on_other_factor_is_zero_exactly_at_half():
    s = np.random.default_rng(1).normal(0, 2, (50, 2))
    assert T.bayes_logodds(s, 0.5, 1.5) == pytest.approx(3.0 * s[:, 0], abs=1e-12)
    assert T.bayes_slope_other(0.5, 1.5) == 0.0
    for m in (0.6, 0.9, 0.3):
        assert T.bayes_slope_other(m, 1.5) > 0
        assert np.ptp(T.bayes_logodds(s, m, 1.5) - 3.0 * s[:, 0]) > 1e-3
    assert T.bayes_slope_other(0.3, 1.5) == pytest.approx(T.bayes_slope_other(0.7, 1.5))  # m <-> 1 - m


@pytest.mark.parametrize("m", [0.6, 0.9])
def test_two_task_decomposition_and_slope_at_origin(m):
    s = np.random.default_rng(2).normal(0, 1, (20, 2))
    assert T.bayes_logodds(s, m, 1.5) == pytest.approx(3.0 * s[:, 0] + T.bayes_g(3.0 * s[:, 1], m))
    h = 1e-6
    fd = (T.bayes_logodds([[0.0, h]], m, 1.5) - T.bayes_logodds([[0.0, -h]], m, 1.5))[0] / (2 * h)
    assert fd == pytest.approx(T.bayes_slope_other(m, 1.5), rel=1e-6)
    assert T.bayes_slope_other(m, 1.5) == pytest.approx(2 * 1.5 * (2 * m - 1) ** 2)


def test_fit_logistic_recovers_a_logistic_model_and_honours_weights():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(100_000, 3))
    y = (rng.random(100_000) < 1 / (1 + np.exp(-(x @ [1.0, -2.0, 0.0] + 0.5)))).astype(float)
    beta, b = T.fit_logistic(x, y)
    assert beta == pytest.approx([1.0, -2.0, 0.0], abs=0.04) and b == pytest.approx(0.5, abs=0.04)
    xs, ys = x[:300], y[:300]
    w = rng.integers(1, 4, 300)
    bw, b0 = T.fit_logistic(xs, ys, sample_weight=w)
    bd, b1 = T.fit_logistic(np.repeat(xs, w, 0), np.repeat(ys, w))
    assert bw == pytest.approx(bd, abs=1e-8) and b0 == pytest.approx(b1, abs=1e-8)
    with pytest.raises(RuntimeError, match="separable"):
        T.fit_logistic(np.array([[-1.0], [-2.0], [1.0], [2.0]]), np.array([0, 0, 1, 1]))


def test_population_logistic_zero_at_half_and_matches_a_large_sample_fit():
    w, b = T.population_logistic(0.5, 1.5)
    assert w[1] == pytest.approx(0.0, abs=1e-10) and b == pytest.approx(0, abs=1e-9)
    assert w[0] == pytest.approx(3.0, abs=1e-4)  # LDA: exactly 2 mu; the rest is quadrature error
    w9, _ = T.population_logistic(0.9, 1.5)
    assert 0 < w9[1] < T.bayes_slope_other(0.9, 1.5)
    fit = T.fitted_weight_other(200_000, 0.9, 1.5, d_causal=2, d_noise=0, seed=0)
    assert fit["w_other_u"] == pytest.approx(w9[1], abs=0.04)


def test_finite_sample_weights_shrink_and_loglog_slope():
    assert T.loglog_slope([10, 100, 1000], [3.0, 0.3, 0.03]) == pytest.approx(-1.0)
    df = T.finite_sample_weights([500, 50_000], range(6), m=0.5, d_causal=2, d_noise=0)
    assert len(df) == 12 and set(df.n) == {500, 50_000}
    rms = df.groupby("n").w_other_u.apply(lambda v: np.sqrt(np.mean(v**2)))
    assert rms[50_000] < rms[500] / 3
    with pytest.raises(ValueError):
        T.loglog_slope([1, 2], [0.0, 1.0])
