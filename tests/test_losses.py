"""Specification of the MT-CRL losses on tensors small enough to check by hand."""

import math

import pytest
import torch

from mtcrl_lite.core import losses as L

X = torch.tensor([1.0, -1.0, 1.0, -1.0])
W = torch.tensor([1.0, 1.0, -1.0, -1.0])  # orthogonal to X, same mean and variance


def modules(*cols):
    """(B, K, d=1) from K column vectors."""
    return torch.stack(cols, 1)[:, :, None]


@pytest.mark.parametrize(
    "other, expected",
    [
        (X, 1.0),  # identical modules: correlation 1 in both ordered pairs
        (-X, 1.0),  # sign does not matter (squared)
        (W, 0.0),  # orthogonal
        (X + math.sqrt(3) * W, 0.25),  # correlation 1/2, squared 1/4
        (5 * X + 2, 1.0),  # standardization removes scale and offset
    ],
)
def test_decorrelation_two_modules(other, expected):
    assert L.decorrelation(modules(X, other)).item() == pytest.approx(expected, abs=1e-4)  # eps=1e-5 in the std


def test_decorrelation_is_mean_over_ordered_off_block_entries():
    # K=3, d=1: modules 0 and 1 equal, 2 orthogonal -> entries (0,1),(1,0) are 1, four others 0 -> 2/6
    assert L.decorrelation(modules(X, X, W)).item() == pytest.approx(2 / 6, abs=1e-4)


def test_decorrelation_ignores_within_module_correlation():
    z = torch.stack([torch.stack([X, X], 1), torch.stack([W, -W], 1)], 1)  # (4, K=2, d=2)
    assert L.decorrelation(z).item() == pytest.approx(0.0, abs=1e-6)


def test_decorrelation_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"\(B, K, d"):
        L.decorrelation(torch.zeros(4, 3))
    assert L.decorrelation(torch.randn(8, 1, 3)).item() == 0.0  # a single module has nothing to decorrelate


def test_graph_regularizer_by_hand():
    a = torch.full((2, 2), 0.5)  # ||A||_1 = 2, p = (1/2, 1/2), entropy = log 2
    assert L.graph_regularizer(a, 0.1, 1.0).item() == pytest.approx(0.2 - math.log(2))
    one_module = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # p = (1, 0): entropy 0
    assert L.graph_regularizer(one_module, 0.5, 3.0).item() == pytest.approx(1.0)


def test_balance_entropy_is_maximal_for_balanced_columns():
    torch.manual_seed(0)
    k = 5
    for _ in range(20):
        a = torch.rand(3, k)
        assert L.balance_entropy(a).item() <= math.log(k) + 1e-6
    balanced = torch.rand(3, 1).repeat(1, k)  # every column sums to the same value
    assert L.balance_entropy(balanced).item() == pytest.approx(math.log(k), abs=1e-6)


def test_girm_var_and_norm_by_hand():
    g = torch.tensor([[[1.0, 0.0]], [[3.0, 2.0]]])  # E=2, T=1, K=2; mean (2, 1)
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
    assert L.env_means(losses, env, 2).tolist() == [[2.0, 20.0], [5.0, 50.0]]
    with pytest.raises(ValueError, match="every environment"):
        L.env_means(losses, env, 3)


def test_penalties_are_differentiable_through_the_graph_logits():
    theta = torch.zeros(2, 3, requires_grad=True)
    a = torch.sigmoid(theta)
    copies = a.unsqueeze(0).repeat(2, 1, 1)
    z = torch.randn(6, 3)
    y = torch.randn(6, 2)
    env = torch.tensor([0, 0, 0, 1, 1, 1])
    pred = (copies[env] * z[:, None, :]).sum(-1)  # (B, T): task t reads sum_k A_tk z_k
    risks = L.env_means((pred - y * torch.tensor([1.0, 2.0])) ** 2, env, 2)
    (grads,) = torch.autograd.grad(risks.sum(), copies, create_graph=True)
    for pen in (L.girm_var, L.girm_norm):
        (g,) = torch.autograd.grad(pen(grads), theta, retain_graph=True)
        assert g.abs().sum() > 0
    (g,) = torch.autograd.grad(L.graph_regularizer(a, 0.1, 0.5), theta)
    assert g.abs().sum() > 0


def _cka_by_loops(a, b):
    """Kernel CKA of two (B,) samples written out entry by entry (Gaussian kernel, median-distance bandwidth)."""
    n = len(a)

    def kernel(x):
        d2 = [[(x[i] - x[j]) ** 2 for j in range(n)] for i in range(n)]
        off = sorted(d2[i][j] for i in range(n) for j in range(n) if i != j)
        m = off[len(off) // 2] if len(off) % 2 else off[len(off) // 2 - 1]  # torch.median: the lower middle
        k = [[math.exp(-d2[i][j] / (2 * m)) for j in range(n)] for i in range(n)]
        row = [sum(r) / n for r in k]
        tot = sum(row) / n
        return [[k[i][j] - row[i] - row[j] + tot for j in range(n)] for i in range(n)]

    ka, kb = kernel(a), kernel(b)
    dot = lambda p, q: sum(p[i][j] * q[i][j] for i in range(n) for j in range(n))
    return dot(ka, kb) / math.sqrt(dot(ka, ka) * dot(kb, kb))


def test_kernel_dependence_by_loops_and_its_invariances():
    a, b = [0.0, 1.0, 3.0, -2.0, 0.5], [1.0, -1.0, 0.0, 2.0, 4.0]
    z = torch.tensor([a, b], dtype=torch.float64).T.unsqueeze(-1)  # (B = 5, K = 2, d = 1)
    assert L.kernel_dependence(z).item() == pytest.approx(_cka_by_loops(a, b), rel=1e-10)
    same = torch.tensor([a, [3 * v + 1 for v in a]], dtype=torch.float64).T.unsqueeze(-1)
    assert L.kernel_dependence(same).item() == pytest.approx(1.0)  # shift and scale do not hide a copy


def test_kernel_dependence_sees_what_the_correlation_misses():
    x = torch.linspace(-1, 1, 41, dtype=torch.float64)
    z = torch.stack([x, x**2], 1).unsqueeze(-1)  # Z_2 = Z_1^2: uncorrelated, dependent
    assert L.decorrelation(z).item() == pytest.approx(0.0, abs=1e-12)
    assert L.kernel_dependence(z).item() > 0.2
    g = torch.Generator().manual_seed(0)
    indep = torch.randn(400, 2, 1, generator=g, dtype=torch.float64)
    assert L.kernel_dependence(indep).item() < 0.02
    theta = torch.randn(6, 3, 2, 4, 4, generator=g, dtype=torch.float64, requires_grad=True)  # feature-map modules
    L.kernel_dependence(theta, max_rows=50).backward()
    assert torch.isfinite(theta.grad).all() and theta.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="at least 3"):
        L.kernel_dependence(torch.zeros(2, 2, 1))


def test_kernel_dependence_keeps_a_gradient_for_mostly_zero_modules():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 1, generator=g, dtype=torch.float64)
    z = torch.relu(torch.cat([x, x + 0.1 * torch.randn(64, 1, generator=g, dtype=torch.float64)], 1) - 1.2)
    z = z.unsqueeze(-1).requires_grad_(True)  # most rows 0 in both modules: median distance 0
    loss = L.kernel_dependence(z)
    loss.backward()
    assert loss.item() > 0.3 and z.grad.abs().sum() > 0


def test_vrex_penalty_by_hand():
    r = torch.tensor([[1.0, 2.0], [3.0, 2.0], [5.0, 8.0]])  # E = 3 environments, T = 2 tasks
    # task 0: mean 3, variance (4 + 0 + 4) / 3; task 1: mean 4, variance (4 + 4 + 16) / 3
    assert L.vrex_penalty(r).item() == pytest.approx(8 / 3 + 24 / 3)
    present = torch.tensor([[True, True], [True, True], [False, True]])  # task 0 unlabelled in environment 2
    assert L.vrex_penalty(r, present).item() == pytest.approx(1.0 + 24 / 3)  # task 0 over {1, 3}: variance 1
    assert L.vrex_penalty(r[:1]).item() == 0.0  # one environment: identically 0
    with pytest.raises(ValueError, match="E, T"):
        L.vrex_penalty(torch.zeros(3))
