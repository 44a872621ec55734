import pytest
import torch

from mtcrl_lite.config import make_config, parse_sets
from mtcrl_lite.data.mnist import TASKS
from mtcrl_lite.methods import METHODS
from mtcrl_lite.models import MTCRL, ModelConfig, SharedMTL, SingleTask, build_model, count_parameters


def test_overrides_by_section_and_bare_key():
    cfg = make_config("multimnist", "mtcrl", 3, overrides={"hp.lambda_girm": "5", "n_val": "7",
                                                           "data.train_corrs": "0.8,0.6", "channels": "8,8"})
    assert cfg.hp.lambda_girm == 5.0 and cfg.data.n_val == 7 and cfg.seed == 3
    assert cfg.data.train_corrs == (0.8, 0.6) and cfg.model.channels == (8, 8)


def test_unknown_or_mistyped_key_lists_valid_keys():
    with pytest.raises(KeyError, match=r"did you mean \['hp.lambda_girm'"):
        make_config("multimnist", "mtcrl", overrides={"hp.lambda_girn": "1"})
    with pytest.raises(KeyError, match="valid keys"):
        make_config("multimnist", "mtl", overrides={"hp.lambda_girm": "1"})   # mtl has no such hparam
    with pytest.raises(ValueError, match="cannot parse"):
        make_config("multimnist", "mtl", overrides={"train.epochs": "ten"})
    with pytest.raises(ValueError, match="key=value"):
        parse_sets(["epochs"])


def test_unknown_method_and_dataset_list_valid_ones():
    with pytest.raises(KeyError, match="mtcrl-norm"):
        make_config("multimnist", "mtcrl-varr")
    with pytest.raises(KeyError, match="multimnist"):
        make_config("cifar", "mtl")


def test_presets_and_digest():
    smoke = make_config("multimnist", "mtl", scale="smoke")
    default = make_config("multimnist", "mtl")
    assert smoke.train.epochs < default.train.epochs and smoke.digest() != default.digest()
    assert make_config("multimnist", "mtl").digest() == default.digest()
    assert make_config("multimnist", "mtl", seed=1).digest() != default.digest()


def test_method_variants_differ_only_in_penalty():
    assert [make_config("debug", m).hp.girm for m in ("mtcrl", "mtcrl-norm", "mtcrl-nogirm")] == ["var", "norm", "none"]
    assert {"stl", "mtl", "mtcrl", "mtcrl-norm", "mtcrl-nogirm"} <= set(METHODS)


def test_mtcrl_has_mtl_parameters_plus_the_graph():
    cfg = ModelConfig()
    mtl = SharedMTL((1, 32, 32), TASKS, cfg)
    crl = MTCRL((1, 32, 32), TASKS, cfg)
    assert count_parameters(crl) - count_parameters(mtl) == len(TASKS) * crl.k == 8
    stl = SingleTask((1, 32, 32), TASKS, cfg)
    assert count_parameters(stl) == 2 * count_parameters(SharedMTL((1, 32, 32), TASKS[:1], cfg))
    assert stl.shared_parameters() == []


def test_mtcrl_head_reads_graph_weighted_modules():
    torch.manual_seed(0)
    m = MTCRL((1, 16, 16), TASKS, ModelConfig(channels=(4,), width=8, n_modules=4))
    x = torch.rand(5, 1, 16, 16)
    z = m.modules_of(x)
    assert z.shape == (5, 4, 2)
    a = torch.zeros(2, 4)
    a[1, 2] = 1.0       # task 'right' reads module 2 only
    out = m.routed_logits(z, a)
    w = m.heads["right"]
    assert torch.allclose(out["right"], z[:, 2] @ w.weight[:, 4:6].T + w.bias, atol=1e-6)
    assert torch.allclose(out["left"], m.heads["left"].bias.expand(5, -1))
    per_sample = a.expand(5, 2, 4)
    assert torch.allclose(m.routed_logits(z, per_sample)["right"], out["right"])


def test_too_few_modules_is_an_error():
    with pytest.raises(ValueError, match="smaller than the number of tasks"):
        build_model("mtcrl", (1, 16, 16), TASKS, ModelConfig(n_modules=1, width=8))
    with pytest.raises(ValueError, match="divisible"):
        build_model("mtcrl", (1, 16, 16), TASKS, ModelConfig(n_modules=3, width=8))
    with pytest.raises(KeyError, match="valid"):
        build_model("resnet", (1, 16, 16), TASKS, ModelConfig())


def test_vector_inputs_get_an_mlp_trunk():
    m = build_model("mtcrl", (6,), TASKS, ModelConfig(channels=(5,), width=8))
    out = m(torch.randn(3, 6))
    assert out["left"].shape == (3, 10) and isinstance(m.encoder.trunk[0], torch.nn.Linear)
    with pytest.raises(ValueError, match="no backbone"):
        build_model("mtl", (2, 3), TASKS, ModelConfig())
