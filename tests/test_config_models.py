import pytest
import torch

from mtcrl_lite.baselines.methods import METHODS
from mtcrl_lite.data.mnist import TASKS
from mtcrl_lite.models.networks import MTCRL, ModelConfig, SharedMTL, SingleTask, build_model, count_parameters
from mtcrl_lite.run.config import make_config, parse_sets


def test_overrides_by_section_and_bare_key():
    cfg = make_config(
        "multimnist",
        "mtcrl",
        3,
        overrides={"hp.lambda_girm": "5", "n_val": "7", "data.train_corrs": "0.8,0.6", "channels": "8,8"},
    )
    assert cfg.hp.lambda_girm == 5.0 and cfg.data.n_val == 7 and cfg.seed == 3
    assert cfg.data.train_corrs == (0.8, 0.6) and cfg.model.channels == (8, 8)


def test_unknown_or_mistyped_key_lists_valid_keys():
    with pytest.raises(KeyError, match=r"did you mean \['hp.lambda_girm'"):
        make_config("multimnist", "mtcrl", overrides={"hp.lambda_girn": "1"})
    with pytest.raises(KeyError, match="valid keys"):
        make_config("multimnist", "mtl", overrides={"hp.lambda_girm": "1"})  # mtl has no such hparam
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
    a[1, 2] = 1.0  # task 'right' reads module 2 only
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


def test_sum_reading_adds_the_graph_weighted_modules():
    m = MTCRL((6,), TASKS, ModelConfig(channels=(5,), width=8, n_modules=4, head_read="sum"))
    assert m.heads["left"].in_features == 2  # d, not W
    z = torch.arange(8.0).reshape(1, 4, 2)  # modules [0,1], [2,3], [4,5], [6,7]
    a = torch.tensor([[1.0, 0.0, 0.5, 0.0], [0.0, 2.0, 0.0, 1.0]])
    u = m.route(z, a)
    assert u["left"].tolist() == [[2.0, 3.5]] and u["right"].tolist() == [[10.0, 13.0]]
    assert torch.equal(m.route(z, a.expand(1, 2, 4))["right"], u["right"])  # per-sample graph
    assert m(torch.randn(3, 6))["right"].shape == (3, 10)


def test_hard_gate_is_zero_one_forward_and_sigmoid_backward():
    m = MTCRL((6,), TASKS, ModelConfig(channels=(5,), width=8, n_modules=4, gate="hard"))
    with torch.no_grad():
        m.theta.copy_(torch.tensor([[2.0, -1.0, 0.5, -3.0], [0.0, 1.0, -0.5, 4.0]]))
    a = m.graph
    assert a.tolist() == [[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0]]  # sigmoid(0) = 0.5 is not > 0.5
    a.sum().backward()
    s = torch.sigmoid(m.theta.detach())
    assert torch.allclose(m.theta.grad, s * (1 - s))


def test_experts_share_no_unit_between_modules():
    torch.manual_seed(0)
    cfg = ModelConfig(channels=(5,), width=8, n_modules=4, module_form="experts")
    m = MTCRL((6,), TASKS, cfg)
    enc = m.encoder
    assert enc.proj.out_features == 16 and enc.expert_out.groups == 4
    # trunk (6*5+5) + first layers (5*16+16) + block-diagonal second layers (4 branches of 4x2 + 2) + graph 2x4
    assert count_parameters(m) - count_parameters(m.heads) == 35 + 96 + 4 * (4 * 2 + 2) + 8
    x = torch.randn(3, 6)
    before = m.modules_of(x).detach()
    with torch.no_grad():
        enc.proj.weight[4:8] += 1.0  # hidden units of branch 1 only
    after = m.modules_of(x).detach()
    changed = (after - before).abs().amax(dim=(0, 2)) > 0
    assert changed.tolist() == [False, True, False, False]
    dense = MTCRL((1, 8, 8), [TASKS[0]], ModelConfig(channels=(4,), width=4, n_modules=2, module_form="experts"))
    assert dense.encoder.expert_out.groups == 2


def test_channel_groups_of_a_conv_map_are_the_modules_of_per_sample_heads():
    torch.manual_seed(0)
    cfg = ModelConfig(channels=(4,), width=8, n_modules=4, module_form="channels", module_norm="batch")
    m = MTCRL((1, 12, 12), TASKS, cfg)  # 12 -> conv5 (padded) -> pool -> 6: a (8, 6, 6) map
    assert m.encoder.head_map == (6, 6) and isinstance(m.encoder.norm, torch.nn.BatchNorm2d)
    # trunk conv (1*25*4 + 4) + 1x1 projection (4*8 + 8) + graph 2x4 + 2 heads of (8*6*6 inputs -> 10)
    assert count_parameters(m) == 104 + 40 + 8 + 2 * (288 * 10 + 10)
    z = m.modules_of(torch.randn(5, 1, 12, 12)).detach()
    assert z.shape == (5, 4, 2, 6, 6)
    a = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.5, 0.5]])
    z2 = z.clone()
    z2[:, 1:] = torch.randn_like(z2[:, 1:])  # modules task 0 does not read
    out, out2 = m.routed_logits(z, a), m.routed_logits(z2, a)
    assert torch.equal(out["left"], out2["left"]) and not torch.allclose(out["right"], out2["right"])
    mtl = SharedMTL((1, 12, 12), TASKS, cfg)
    assert mtl(torch.randn(2, 1, 12, 12))["left"].shape == (2, 10)
    with pytest.raises(ValueError, match="needs image inputs"):
        MTCRL((6,), TASKS, ModelConfig(channels=(5,), width=8, module_form="channels"))


@pytest.mark.parametrize("key,bad", [("module_form", "trees"), ("head_read", "max"), ("gate", "softmax")])
def test_design_fields_reject_unknown_values(key, bad):
    with pytest.raises(ValueError, match=f"model.{key} must be one of"):
        MTCRL((6,), TASKS, ModelConfig(channels=(5,), width=8, **{key: bad}))


def test_unknown_decorrelation_kind_is_a_clear_error(tmp_path):
    from mtcrl_lite.run.train import run

    with pytest.raises(ValueError, match="hp.dec_kind = 'hsic' is not one of"):
        make_config("debug", "mtcrl", 0, "smoke", {"hp.dec_kind": "hsic"})
    cfg = make_config("debug", "mtcrl", 0, "smoke", {"train.epochs": 1})
    cfg.hp.dec_kind = "hsic"  # set after validation: the method refuses it too
    with pytest.raises(ValueError, match="hp.dec_kind must be one of"):
        run(cfg, tmp_path / "r", progress=False)


def test_design_fields_at_their_defaults_keep_old_digests():
    cfg = make_config("multimnist", "mtcrl")
    # the digest of the default MT-CRL run that notebooks 06 and 08 trained before hp.dec_kind, model.module_form,
    # model.head_read and model.gate existed (results/08_ablations/runs/mtcrl/seed0-d94de8802b)
    pinned = make_config("multimnist", "mtcrl", 0, "default", {"train.device": "auto"}, tuned=False)
    assert pinned.digest() == "d94de8802b"
    assert cfg.digest() == make_config("multimnist", "mtcrl", overrides={"model.gate": "sigmoid"}).digest()
    assert cfg.digest() != make_config("multimnist", "mtcrl", overrides={"model.gate": "hard"}).digest()
