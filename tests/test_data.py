import numpy as np
import pytest

from mtcrl_lite.data import DataMissingError, build_dataset
from mtcrl_lite.data import sources as F
from mtcrl_lite.data.mnist import (
    DebugConfig,
    DigitPool,
    MultiMNISTConfig,
    compose,
    correlated_labels,
    load_mnist,
    pair_class_split,
    read_idx,
)


def test_read_idx_parses_header_and_data(tmp_path):
    data = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    p = tmp_path / "x-idx3-ubyte"
    p.write_bytes(bytes([0, 0, 8, 3]) + np.array([2, 3, 4], dtype=">u4").tobytes() + data.tobytes())
    assert (read_idx(p) == data).all()
    p.write_bytes(bytes([0, 0, 8, 1]) + np.array([5], dtype=">u4").tobytes() + bytes(3))
    with pytest.raises(ValueError, match="header says"):
        read_idx(p)


def test_compose_places_each_digit_in_its_half():
    rng = np.random.default_rng(0)
    left = np.full((50, 28, 28), 255, np.uint8)
    right = np.full((50, 28, 28), 7, np.uint8)
    x = compose(left, right, rng)
    assert x.shape == (50, 64, 64)
    assert set(np.unique(x[:, :, :32])) <= {0, 255} and (x[:, :, :32] == 255).sum(axis=(1, 2)).min() == 784
    assert set(np.unique(x[:, :, 32:])) <= {0, 7} and (x[:, :, 32:] == 7).sum(axis=(1, 2)).min() == 784
    # offsets vary across samples
    assert len({tuple(np.argwhere(x[i] == 255)[0]) for i in range(50)}) > 10


def test_compose_downsample_is_average_pooling():
    rng = np.random.default_rng(1)
    digits = np.random.default_rng(2).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    full = compose(digits, digits, np.random.default_rng(1))
    half = compose(digits, digits, rng, downsample=2)
    expect = np.floor(full.reshape(3, 32, 2, 32, 2).astype(float).mean((2, 4)) + 0.5)
    assert (half == expect).all()


def test_correlated_labels_strength():
    rng = np.random.default_rng(0)
    yl, yr = correlated_labels(200_000, 0.7, 3, rng)
    agree = np.mean(yr == (yl + 3) % 10)
    assert agree == pytest.approx(0.7 + 0.3 / 10, abs=0.005)
    assert np.bincount(yl, minlength=10).min() > 19_000
    with pytest.raises(ValueError):
        correlated_labels(10, 1.5, 1, rng)


def test_pair_class_split_is_a_seeded_partition():
    tr, va, te = pair_class_split(0)
    assert (len(tr), len(va), len(te)) == (64, 16, 20)
    assert sorted(np.concatenate([tr, va, te]).tolist()) == list(range(100))
    assert all((a == b).all() for a, b in zip(pair_class_split(0), (tr, va, te)))
    assert not (pair_class_split(1)[0] == tr).all()


def test_digit_pool_samples_the_requested_class():
    imgs = np.arange(30, dtype=np.uint8).repeat(4).reshape(30, 2, 2)
    labels = np.arange(30) % 3
    pool = DigitPool(imgs, labels, n_classes=3)
    want = np.array([2, 0, 1, 2, 2])
    got = pool.sample(want, np.random.default_rng(0))
    assert ((got[:, 0, 0] % 3) == want).all()


def test_debug_dataset_is_deterministic_and_reports_correlation():
    a = build_dataset("debug", DebugConfig())
    b = build_dataset("debug", DebugConfig())
    assert (a.test.x == b.test.x).all() and list(a.train_envs) == ["p=0.9", "p=0.7"]
    assert a.input_shape == (1, 16, 16)
    corr = a.info["P(right=f(left))"]
    assert corr["p=0.9"] > corr["p=0.7"] > corr["test"]


def test_pairs_shift_keeps_test_pairs_out_of_training():
    d = build_dataset("debug", DebugConfig(shift="pairs"))
    seen = {int(l) * 10 + int(r) for s in d.train_envs.values() for l, r in zip(s.y["left"], s.y["right"])}
    test = {int(l) * 10 + int(r) for l, r in zip(d.test.y["left"], d.test.y["right"])}
    assert seen and test and not (seen & test)


def test_empty_environment_is_an_error():
    with pytest.raises(ValueError, match="empty"):
        build_dataset("debug", DebugConfig(n_train_per_env=0))


def test_unknown_dataset_lists_valid_ones():
    with pytest.raises(KeyError, match="multimnist"):
        build_dataset("mnist3", None)


def test_missing_data_error_prints_fetch_command(tmp_path):
    with pytest.raises(DataMissingError, match="python -m mtcrl_lite.data fetch mnist"):
        load_mnist(tmp_path)


def test_checksum_mismatch_is_an_error(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in F.CHECKSUMS["mnist"]:
        (folder / name).write_bytes(b"not mnist")
    with pytest.raises(DataMissingError, match="sha256"):
        F.verify("mnist", tmp_path)


mnist_present = pytest.mark.skipif(
    not all((F.data_root() / "mnist" / n).exists() for n in F.CHECKSUMS["mnist"]),
    reason="MNIST not fetched (python -m mtcrl_lite.data fetch mnist)",
)


@mnist_present
def test_real_mnist_canonical_checks():
    m = load_mnist()
    assert np.bincount(m["train_y"]).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert m["train_y"][:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert m["test_y"][:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert m["train_x"].shape == (60000, 28, 28) and m["test_x"].shape == (10000, 28, 28)


@mnist_present
def test_multimnist_environments():
    d = build_dataset("multimnist", MultiMNISTConfig(n_train_per_env=4000, n_val=2000, n_test=2000))
    corr = d.info["P(right=f(left))"]
    assert corr["p=0.9"] == pytest.approx(0.91, abs=0.02)
    assert corr["p=0.7"] == pytest.approx(0.73, abs=0.02)
    assert corr["test"] == pytest.approx(0.1, abs=0.02)
    assert d.input_shape == (1, 32, 32)


def test_equal_training_correlations_give_numbered_environments():
    from mtcrl_lite.data import build_dataset
    from mtcrl_lite.data.mnist import DebugConfig

    data = build_dataset("debug", DebugConfig(train_corrs=(0.0, 0.0)))
    assert list(data.train_envs) == ["env0:p=0", "env1:p=0"]
    assert all(len(s) == DebugConfig.n_train_per_env for s in data.train_envs.values())
    assert list(build_dataset("debug", DebugConfig()).train_envs) == ["p=0.9", "p=0.7"]  # unchanged


def arrays_digest(data) -> str:
    """sha256 over every array (inputs and labels, with names, dtypes and shapes) of a dataset's splits."""
    import hashlib

    h = hashlib.sha256()
    for name, s in [*data.train_envs.items(), ("val", data.val), ("test", data.test)]:
        for key, a in [("x", s.x), *sorted(s.y.items())]:
            h.update(f"{name}/{key}/{a.dtype.str}/{a.shape}".encode())
            h.update(a.tobytes())
    return h.hexdigest()


# Digests of the generator's output computed with the code before build_from_pools took (left, right) pool pairs
# (commit e2a8d2d): Multi-MNIST's arrays must stay bit-identical.
@pytest.mark.parametrize(
    "cfg, digest",
    [
        (DebugConfig(), "3b811ee8f41dcbff62107f70040161c2c0671b11b19465f8f49c2587194a89ae"),
        (DebugConfig(shift="pairs"), "db6830410fbb37c36653f57ff5cba57888753ee3867cf825a50aae9d1120f462"),
        (DebugConfig(downsample=1, data_seed=3), "73cb4ea086148bd63a6f686675c2b17828464022a9246d75452a1dbc49a1038e"),
    ],
)
def test_debug_arrays_are_unchanged(cfg, digest):
    assert arrays_digest(build_dataset("debug", cfg)) == digest


@mnist_present
def test_multimnist_arrays_are_unchanged():
    assert (
        arrays_digest(build_dataset("multimnist", MultiMNISTConfig()))
        == "eaf889afd0a26deb8dad29d0c3d34f226b6e4a4fbb64db6b9aa23ec58ec6c376"
    )
