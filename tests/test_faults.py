"""Fault injection: every bad input or damaged file a new user may meet ends in a clear error (naming the file, the
value and the fix) or a correct result. Each case is one line of a table below; adding a case is adding a line."""
import pytest
import torch

from mtcrl_lite import surgery as S


# -- silent wrong results ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype, seed", [(torch.float32, 0), (torch.float64, 4)])
def test_gradvac_on_exactly_opposite_gradients_is_finite(dtype, seed):
    """cos(g, -g) rounds to just below -1 for these vectors (sqrt(1 - cos^2) was NaN); the correct result: each
    gradient is projected onto the other's normal plane, i.e. to 0, and the EMA targets move towards -1."""
    g = torch.randn(1, 7, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    grads = torch.cat([g, -g])
    cos = (grads[0] @ grads[1]) / (grads[0].norm() * grads[1].norm())
    assert cos < -1                                      # the fault this case reproduces
    out, target = S.gradvac(grads, torch.zeros(2, 2, dtype=dtype), beta=0.01, orders=[[1], [0]])
    assert torch.isfinite(out).all() and torch.isfinite(target).all()
    assert torch.allclose(out, torch.zeros_like(out), atol=1e-6)
    assert torch.allclose(target, torch.tensor([[0.0, -0.01], [-0.01, 0.0]], dtype=dtype))
