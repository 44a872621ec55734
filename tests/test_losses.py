"""Specification of the MT-CRL losses on tensors small enough to check by hand."""
import math

import pytest
import torch

from mtcrl_lite import losses as L

X = torch.tensor([1.0, -1.0, 1.0, -1.0])
W = torch.tensor([1.0, 1.0, -1.0, -1.0])   # orthogonal to X, same mean and variance


def modules(*cols):
    """(B, K, d=1) from K column vectors."""
    return torch.stack(cols, 1)[:, :, None]


@pytest.mark.parametrize("other, expected", [
    (X, 1.0),                       # identical modules: correlation 1 in both ordered pairs
    (-X, 1.0),                      # sign does not matter (squared)
    (W, 0.0),                       # orthogonal
    (X + math.sqrt(3) * W, 0.25),   # correlation 1/2, squared 1/4
    (5 * X + 2, 1.0),               # standardization removes scale and offset
])
def test_decorrelation_two_modules(other, expected):
    assert L.decorrelation(modules(X, other)).item() == pytest.approx(expected, abs=1e-4)  # eps=1e-5 in the std


def test_decorrelation_is_mean_over_ordered_off_block_entries():
    # K=3, d=1: modules 0 and 1 equal, 2 orthogonal -> entries (0,1),(1,0) are 1, four others 0 -> 2/6
    assert L.decorrelation(modules(X, X, W)).item() == pytest.approx(2 / 6, abs=1e-4)


def test_decorrelation_ignores_within_module_correlation():
    z = torch.stack([torch.stack([X, X], 1), torch.stack([W, -W], 1)], 1)   # (4, K=2, d=2)
    assert L.decorrelation(z).item() == pytest.approx(0.0, abs=1e-6)


def test_decorrelation_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"\(B, K, d"):
        L.decorrelation(torch.zeros(4, 3))
    assert L.decorrelation(torch.randn(8, 1, 3)).item() == 0.0  # a single module has nothing to decorrelate


def test_graph_regularizer_by_hand():
    a = torch.full((2, 2), 0.5)      # ||A||_1 = 2, p = (1/2, 1/2), entropy = log 2
    assert L.graph_regularizer(a, 0.1, 1.0).item() == pytest.approx(0.2 - math.log(2))
    one_module = torch.tensor([[1.0, 0.0], [1.0, 0.0]])   # p = (1, 0): entropy 0
    assert L.graph_regularizer(one_module, 0.5, 3.0).item() == pytest.approx(1.0)


def test_balance_entropy_is_maximal_for_balanced_columns():
    torch.manual_seed(0)
    k = 5
    for _ in range(20):
        a = torch.rand(3, k)
        assert L.balance_entropy(a).item() <= math.log(k) + 1e-6
    balanced = torch.rand(3, 1).repeat(1, k)   # every column sums to the same value
    assert L.balance_entropy(balanced).item() == pytest.approx(math.log(k), abs=1e-6)


def test_girm_var_and_norm_by_hand():
    g = torch.tensor([[[1.0, 0.0]], [[3.0, 2.0]]])   # E=2, T=1, K=2; mean (2, 1)
    assert L.girm_var(g).item() == pytest.approx(((1 + 1) + (1 + 1)) / 2)
    assert L.girm_norm(g).item() == pytest.approx(1 + 0 + 9 + 4)


def test_girm_var_is_zero_iff_environments_agree():
    g = torch.randn(1, 3, 4).repeat(3, 1, 1)
    assert L.girm_var(g).item() == pytest.approx(0.0, abs=1e-10)
    assert L.girm_norm(g).item() > 0
    g[1, 2, 0] += 0.1
    assert L.girm_var(g).item() > 0
    with pytest.raises(ValueError, match=r"\(E, T, K\)"):
        L.girm_var(torch.zeros(3, 4))


def test_env_task_risks_by_hand():
    losses = torch.tensor([[1.0, 10.0], [3.0, 30.0], [5.0, 50.0]])
    env = torch.tensor([0, 0, 1])
    assert L.env_task_risks(losses, env, 2).tolist() == [[2.0, 20.0], [5.0, 50.0]]
    with pytest.raises(ValueError, match="every environment"):
        L.env_task_risks(losses, env, 3)


def test_penalties_are_differentiable_through_the_graph_logits():
    theta = torch.zeros(2, 3, requires_grad=True)
    a = torch.sigmoid(theta)
    copies = a.unsqueeze(0).repeat(2, 1, 1)
    z = torch.randn(6, 3)
    y = torch.randn(6, 2)
    env = torch.tensor([0, 0, 0, 1, 1, 1])
    pred = (copies[env] * z[:, None, :]).sum(-1)            # (B, T): task t reads sum_k A_tk z_k
    risks = L.env_task_risks((pred - y * torch.tensor([1.0, 2.0])) ** 2, env, 2)
    grads, = torch.autograd.grad(risks.sum(), copies, create_graph=True)
    for pen in (L.girm_var, L.girm_norm):
        g, = torch.autograd.grad(pen(grads), theta, retain_graph=True)
        assert g.abs().sum() > 0
    g, = torch.autograd.grad(L.graph_regularizer(a, 0.1, 0.5), theta)
    assert g.abs().sum() > 0
