"""The torchjd aggregators behind one adapter, on matrices small enough to check by hand; our PCGrad and GradVac
(surgery.py) checked against torchjd's."""

import pytest
import torch
from torchjd.aggregation import GradVac as JDGradVac
from torchjd.aggregation import PCGrad as JDPCGrad

from mtcrl_lite.baselines import surgery as S
from mtcrl_lite.baselines.aggregators import AGGREGATORS, AGGREGATORS_WITH_HP, make_aggregator
from mtcrl_lite.baselines.methods import METHODS, Aggregated, default_hparams

G = torch.tensor([[-4.0, 1.0, 1.0], [6.0, 1.0, 1.0]], dtype=torch.float64)  # g1 . g2 = -22: a conflict


def test_mgda_two_tasks_is_the_min_norm_point_by_hand():
    # min_{a in [0,1]} |a g1 + (1-a) g2|: a = (g2 - g1).g2 / |g1 - g2|^2 = 60 / 100 = 0.6 -> (0, 1, 1)
    assert torch.allclose(make_aggregator("mgda")(G), torch.tensor([0.0, 1.0, 1.0], dtype=G.dtype), atol=1e-4)


def test_upgrad_two_tasks_is_half_the_pcgrad_sum():
    # each row projected onto the dual cone of both = the PCGrad projection when two rows conflict; UPGrad averages:
    # g1' = g1 + 22/38 g2, g2' = g2 + 22/18 g1, mean = (0.2924, 1.9006, 1.9006) (up to torchjd's 1e-4 regularisation)
    out = make_aggregator("upgrad")(G)
    assert torch.allclose(out, S.pcgrad(G) / 2, atol=2e-3)
    assert out @ G[0] >= 0 and out @ G[1] >= 0


def test_imtlg_has_equal_projections_on_every_task_direction():
    out = make_aggregator("imtl-g")(G)
    proj = G @ out / G.norm(dim=1)
    assert torch.allclose(proj[0], proj[1], atol=1e-6) and proj[0] > 0


def test_aligned_mtl_is_the_mean_row_of_the_aligned_matrix():
    # Aligned-MTL: G = U S V^T is replaced by s_min U V^T (all singular values equal to the smallest), then averaged
    out = make_aggregator("aligned-mtl")(G)
    u, s, vh = torch.linalg.svd(G, full_matrices=False)
    assert torch.allclose(out, s.min() * (u @ vh).mean(0), atol=1e-8)


def test_unknown_aggregator_names_the_valid_ones():
    with pytest.raises(ValueError, match="upgrad"):
        make_aggregator("famo")  # a loss weighting, not an aggregator
    with pytest.raises(ValueError, match="needs the number of tasks"):
        make_aggregator("nash-mtl")


# Orthogonal task gradients g1 = (2, 0), g2 = (0, 1): Gram matrix diag(4, 1), every solution by hand.
ORTHO = torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=torch.float64)


@pytest.mark.parametrize("c", [0.0, 0.4, 0.9])
def test_cagrad_is_the_mean_plus_c_norm_g0_along_the_worst_task_by_hand(c):
    # CAGrad (Liu et al. 2021, Alg. 1): w = argmin_w g_w . g0 + c |g0| |g_w| over the simplex,
    # d = g0 + c |g0| g_w / |g_w|.
    # g0 = (1, 1/2); g_w = (2a, 1-a): F'(0) = 1.5 - c |g0| > 0 for c < 1.34, so w = (0, 1), g_w = g2 and
    # d = (1, 1/2 + c sqrt(1.25)).
    out = make_aggregator("cagrad", c=c)(ORTHO)
    assert torch.allclose(out, torch.tensor([1.0, 0.5 + c * 1.25**0.5], dtype=torch.float64), atol=1e-6)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_fairgrad_solves_the_alpha_fair_stationarity_by_hand(alpha):
    # FairGrad (Ban & Ji 2024, eq. 4): (G G^T w)_i = w_i^(-1/alpha); with diag(4, 1): w1 = 4^(-alpha/(alpha+1)), w2 = 1
    out = make_aggregator("fairgrad", alpha=alpha)(ORTHO)
    assert torch.allclose(out, torch.tensor([2 * 4 ** (-alpha / (alpha + 1)), 1.0], dtype=torch.float64), atol=1e-6)


def test_nash_mtl_is_the_bargaining_solution_by_hand_then_clipped():
    # Nash-MTL (Navon et al. 2022): alpha_i (G G^T alpha)_i = 1 -> alpha = (1/2, 1), d = (1, 1) (FairGrad at alpha = 1);
    # torchjd clips |d| to max_norm (1 by default)
    assert torch.allclose(make_aggregator("nash-mtl", 2, max_norm=0.0)(ORTHO), torch.ones(2, dtype=torch.float64))
    assert torch.allclose(make_aggregator("nash-mtl", 2)(ORTHO), torch.ones(2, dtype=torch.float64) / 2**0.5)
    g = torch.randn(3, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    d = make_aggregator("nash-mtl", 3, max_norm=0.0)(g)
    alpha = torch.linalg.lstsq(g.T, d.unsqueeze(1)).solution.squeeze(1)  # d = alpha G, rows independent
    assert (alpha > 0).all() and torch.allclose(alpha * (g @ d), torch.ones(3, dtype=torch.float64), atol=2e-3)
    assert torch.allclose(make_aggregator("fairgrad", alpha=1.0)(g), d, atol=2e-3)


def test_nash_mtl_reuses_its_weights_between_updates():
    agg = make_aggregator("nash-mtl", 2, update_weights_every=3, max_norm=0.0)
    agg(ORTHO)  # solves: alpha = (1/2, 1)
    later = torch.tensor([[1.0, 0.0], [0.0, 3.0]], dtype=torch.float64)
    assert torch.allclose(agg(later), torch.tensor([0.5, 3.0], dtype=torch.float64), atol=1e-6)  # same alpha
    assert torch.allclose(agg(later), torch.tensor([0.5, 3.0], dtype=torch.float64), atol=1e-6)
    assert torch.allclose(agg(later), torch.tensor([1.0, 1.0], dtype=torch.float64), atol=1e-3)  # solved again


def test_nash_mtl_state_is_saved_with_the_method():
    from mtcrl_lite.run.config import make_config
    from mtcrl_lite.run.train import build_method, load_data

    cfg = make_config("debug", "nash-mtl", 0)
    a, b = (build_method(cfg, load_data(cfg), torch.device("cpu")) for _ in range(2))
    gen = torch.Generator().manual_seed(1)
    for step in range(3):
        a.combine(torch.randn(2, 6, generator=gen), step)
    b.load_state_dict(a.state_dict())
    assert float(b.nash_step) == 3.0 and b.aggregate.weighting.step == 0.0  # put back at the next step
    g = torch.randn(2, 6, generator=gen)
    assert torch.equal(a.combine(g, 3), b.combine(g, 3))


SEARCHED = [("cagrad", "c", 0.1, 0.9), ("fairgrad", "alpha", 0.5, 5.0), ("nash-mtl", "optim_niter", 5, 50)]


@pytest.mark.parametrize("name, field, lo, hi", SEARCHED)
def test_aggregator_hyper_parameters_are_searched(name, field, lo, hi):
    from mtcrl_lite.grid import search as GS

    space = {r.key: r for r in GS.search_space("debug", name)}
    assert (space[f"hp.{field}"].lo, space[f"hp.{field}"].hi) == (lo, hi) and "hp.aggregator" not in space
    values = {GS.draw_overrides("debug", name, d)[f"hp.{field}"] for d in range(1, 9)}
    assert len(values) > 1 and all(lo <= v <= hi for v in values)
    assert set(space["hp.update_weights_every"].choices) == {1, 5, 25, 50, 100} if name == "nash-mtl" else True


@pytest.mark.parametrize("name", sorted(AGGREGATORS))
def test_each_aggregator_is_a_registered_method_through_one_adapter(name):
    assert METHODS[name].cls is Aggregated and default_hparams(name).aggregator == name


@pytest.mark.parametrize("name", sorted(AGGREGATORS_WITH_HP))
def test_aggregators_with_hyper_parameters_use_the_same_adapter(name):
    spec = METHODS[name]
    assert issubclass(spec.cls, Aggregated) and spec.cls is not Aggregated and not spec.paper
    assert default_hparams(name).aggregator == name and spec.label


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_our_pcgrad_equals_torchjds_with_the_same_task_orders(seed):
    g = torch.randn(4, 7, generator=torch.Generator().manual_seed(10 + seed), dtype=torch.float64)
    ours = S.pcgrad(g, generator=torch.Generator().manual_seed(seed))
    torch.manual_seed(seed)  # torchjd draws its orders from the global generator, in the same sequence as ours
    assert torch.allclose(ours, JDPCGrad()(g), atol=1e-8)


def test_our_gradvac_equals_torchjds_with_four_tasks_and_the_same_orders():
    g = torch.randn(4, 9, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    g[1] -= 2 * g[0]
    target = torch.full((4, 4), 0.3, dtype=torch.float64)
    torch.manual_seed(5)  # torchjd: for each i, a permutation of the other tasks from the global generator
    orders = [[[j for j in range(4) if j != i][k] for k in torch.randperm(3).tolist()] for i in range(4)]
    ours, new_target = S.gradvac(g, target, beta=0.01, orders=orders)
    jd = JDGradVac(beta=0.01)
    jd(g[:, :1])  # creates its state (lazily, at the first call), then set it to our target
    jd.gramian_weighting._phi_t.copy_(target)
    torch.manual_seed(5)
    assert torch.allclose(ours, jd(g), atol=1e-8)
    assert torch.allclose(new_target, jd.gramian_weighting._phi_t, atol=1e-10)


def test_aggregator_failures_end_the_run_like_a_non_finite_loss(monkeypatch):
    from mtcrl_lite.baselines.methods import NonFiniteLossError
    from mtcrl_lite.run.config import make_config
    from mtcrl_lite.run.train import build_method, load_data

    cfg = make_config("debug", "upgrad", 0)
    m = build_method(cfg, load_data(cfg), torch.device("cpu"))
    with pytest.raises(NonFiniteLossError, match="non-finite task gradient entering upgrad"):
        m.combine(torch.tensor([[1.0, float("nan")], [0.0, 1.0]]), 7)

    def fail(grads):
        raise ValueError("Failed to solve the quadratic programming problem.")

    monkeypatch.setattr(m.aggregate, "forward", fail)
    with pytest.raises(NonFiniteLossError, match="step 7: upgrad failed: Failed to solve"):
        m.combine(torch.eye(2), 7)


def test_the_aggregator_is_fixed_by_the_method_name():
    from mtcrl_lite.run.config import make_config

    with pytest.raises(ValueError, match=r"hp.aggregator = 'mgda' differs from the method 'upgrad'.*--method mgda"):
        make_config("debug", "upgrad", 0, overrides={"hp.aggregator": "mgda"})


def test_our_gradvac_equals_torchjds_over_steps_with_the_ema_state():
    gen = torch.Generator().manual_seed(0)
    jd, target = JDGradVac(beta=0.01), torch.zeros(2, 2, dtype=torch.float64)
    for _ in range(5):  # two tasks: the order of the other tasks is fixed, so only the EMA state matters
        g = torch.randn(2, 6, generator=gen, dtype=torch.float64)
        g[1] -= 1.5 * g[0]  # make them conflict
        ours, target = S.gradvac(g, target, beta=0.01)
        assert torch.allclose(ours, jd(g), atol=1e-8)
    assert torch.allclose(target, jd.gramian_weighting._phi_t, atol=1e-10) and target[0, 1] < 0
