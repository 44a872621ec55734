"""The README's "Use MT-CRL in your model" block runs exactly as printed, and does what it says."""

import contextlib
import io
import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_block(heading: str) -> str:
    text = README.read_text()
    section = text[text.index(heading) :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_use_mtcrl_in_your_model_block_runs_as_printed():
    code = readme_block("## Use MT-CRL in your model")
    scope: dict = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(README), "exec"), scope)
    terms, model = scope["terms"], scope["model"]
    assert set(terms) == {"task/left", "task/right", "dec", "graph", "girm"}
    assert all(torch.isfinite(v) for v in terms.values()) and terms["girm"].item() > 0
    # one step moved A (Θ at lr 3e-2) away from its start sigmoid(1) = 0.7311, and the output names every term
    assert not torch.allclose(model.graph, torch.full((2, 4), torch.sigmoid(torch.tensor(1.0)).item()))
    assert "'girm'" in out.getvalue() and "tensor(" in out.getvalue()


def test_routed_model_equals_the_package_model_on_the_same_weights():
    """RoutedModel around the package's own encoder and heads computes what models.MTCRL computes."""
    from mtcrl_lite.core.objective import RoutedModel, Task
    from mtcrl_lite.models.networks import MTCRL, ModelConfig

    tasks = [Task("a", "classification", 3), Task("b", "regression", 1)]
    torch.manual_seed(0)
    ours = MTCRL((1, 8, 8), tasks, ModelConfig(channels=(4,), width=8, n_modules=4))
    wrapped = RoutedModel(ours.encoder, ours.heads, n_modules=4)
    wrapped.theta.data.copy_(torch.tensor([[2.0, -1.0, 0.5, 0.0], [-3.0, 1.0, 1.0, 4.0]]))
    ours.theta.data.copy_(wrapped.theta.data)
    x = torch.randn(5, 1, 8, 8)
    for name, out in ours(x).items():
        assert torch.equal(out, wrapped(x)[name])


def test_routed_model_names_a_width_that_does_not_split():
    import pytest
    from torch import nn

    from mtcrl_lite.core.objective import RoutedModel

    model = RoutedModel(nn.Linear(4, 6), {"a": nn.Linear(6, 2)}, n_modules=4)
    with pytest.raises(ValueError, match="divisible by n_modules = 4"):
        model(torch.randn(2, 4))
