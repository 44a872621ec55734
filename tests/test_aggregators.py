"""The torchjd aggregators behind one adapter, on matrices small enough to check by hand; our PCGrad and GradVac
(surgery.py) checked against torchjd's."""

import pytest
import torch
from torchjd.aggregation import GradVac as JDGradVac
from torchjd.aggregation import PCGrad as JDPCGrad

from mtcrl_lite.baselines import surgery as S
from mtcrl_lite.baselines.aggregators import AGGREGATORS, make_aggregator
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
        make_aggregator("cagrad")


@pytest.mark.parametrize("name", sorted(AGGREGATORS))
def test_each_aggregator_is_a_registered_method_through_one_adapter(name):
    assert METHODS[name].cls is Aggregated and default_hparams(name).aggregator == name


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
