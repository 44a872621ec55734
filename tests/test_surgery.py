"""PCGrad, GradVac and IRMv1 on vectors small enough to check by hand."""

import math

import pytest
import torch

from mtcrl_lite.baselines import surgery as S
from mtcrl_lite.core import losses as L


def test_pcgrad_without_conflict_is_the_plain_sum():
    g = torch.tensor([[1.0, 2.0, 0.0], [0.5, 0.0, 3.0]])
    assert torch.equal(S.pcgrad(g), g.sum(0))


def test_pcgrad_two_conflicting_vectors_by_hand():
    g = torch.tensor([[1.0, 0.0], [-1.0, 1.0]])  # dot = -1
    # g1' = g1 - (-1/2) g2 = (0.5, 0.5); g2' = g2 - (-1/1) g1 = (0, 1); sum = (0.5, 1.5)
    assert torch.allclose(S.pcgrad(g), torch.tensor([0.5, 1.5]))
    out = S.pcgrad(g)
    assert out @ g[0] >= 0 and out @ g[1] >= 0  # no task is made worse to first order


def test_pcgrad_projections_use_the_given_order():
    g = torch.tensor([[1.0, 0.0], [-1.0, 1.0], [-1.0, -1.0]])
    a = S.pcgrad(g, orders=[[1, 2], [0, 2], [0, 1]])
    b = S.pcgrad(g, orders=[[2, 1], [2, 0], [1, 0]])
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match=r"\(T, P\)"):
        S.pcgrad(torch.zeros(3))


def test_gradvac_with_zero_target_acts_like_pcgrad_on_conflicts():
    # target 0: a conflicting pair is moved to cosine exactly 0 (the PCGrad projection)
    g = torch.tensor([[1.0, 0.0], [-1.0, 1.0]])
    out, target = S.gradvac(g, torch.zeros(2, 2), beta=0.5, orders=[[1], [0]])
    assert torch.allclose(out, S.pcgrad(g, orders=[[1], [0]]), atol=1e-6)
    cos = -1 / math.sqrt(2)
    assert torch.allclose(target, torch.tensor([[0.0, 0.5 * cos], [0.5 * cos, 0.0]]), atol=1e-6)


def test_gradvac_raises_similarity_to_a_positive_target_by_hand():
    g = torch.tensor([[1.0, 0.0], [0.0, 2.0]])  # orthogonal: phi = 0 < target 0.5
    target = torch.tensor([[0.0, 0.5], [0.0, 0.0]])
    out, new = S.gradvac(g, target, beta=0.1, orders=[[1], [0]])
    # task 0: coef = |g0| (0.5 * 1 - 0) / (|g1| sqrt(0.75)) = 0.5 / (2 * 0.8660) ; g0' = (1, 2 coef)
    coef = 0.5 / (2 * math.sqrt(0.75))
    g0 = torch.tensor([1.0, 2 * coef])
    assert torch.nn.functional.cosine_similarity(g0, g[1], 0) == pytest.approx(0.5, abs=1e-6)
    assert torch.allclose(out, g0 + g[1], atol=1e-6)  # task 1's target 0 is met already: unchanged
    assert torch.allclose(new, torch.tensor([[0.0, 0.45], [0.0, 0.0]]), atol=1e-6)  # EMA: 0.9*0.5 + 0.1*0


def test_irm_penalty_is_zero_at_a_stationary_scale():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 3.0]])
    y = torch.tensor([0, 1, 0, 0])  # margins 2, 1, 1, -3: one confident mistake gives the risk an interior optimum
    scales = torch.linspace(0.01, 3, 30001)
    risks = torch.stack([torch.nn.functional.cross_entropy(logits * s, y) for s in scales])
    best = scales[risks.argmin()]
    assert 0.05 < best < 2.9
    assert L.irm_penalty(logits * best, y).item() == pytest.approx(0.0, abs=1e-6)
    assert L.irm_penalty(logits * 2.9, y).item() > 1e-3
