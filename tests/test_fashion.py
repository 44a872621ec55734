"""Fashion-MNIST: fetch errors, loader, and the two benchmarks of the Multi-MNIST generator (Multi-Fashion,
Fashion+MNIST). The generator tests run on fake pools; those on the real data skip when it is absent."""

import sys

import numpy as np
import pytest

from mtcrl_lite.data import DataMissingError, build_dataset
from mtcrl_lite.data import fashion as FA
from mtcrl_lite.data import sources as F
from mtcrl_lite.data.mnist import N_VAL_POOL, MultiMNISTConfig, split_pools


def test_missing_apt_get_names_the_command_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(F.shutil, "which", lambda cmd: None)
    with pytest.raises(
        RuntimeError,
        match=r"`apt-get download dataset-fashion-mnist` cannot run: `apt-get` is "
        r"not installed\. It needs a Debian or Ubuntu system",
    ):
        F.download_fashion(tmp_path)


@pytest.mark.parametrize("root", [True, False])
def test_empty_apt_lists_are_refreshed_once_only_as_root(tmp_path, monkeypatch, root):
    calls = []

    def run(cmd, cwd, fix):
        calls.append(cmd[:2])
        if cmd[:2] == ["apt-get", "download"] and ["apt-get", "update"] not in calls:
            raise RuntimeError("E: Unable to locate package; " + fix)
        if cmd[:2] == ["apt-get", "download"]:
            raise StopIteration  # the retry: stop here, there is nothing to unpack

    monkeypatch.setattr(F, "_run", run)
    monkeypatch.setattr(F.shutil, "which", lambda cmd: f"/usr/bin/{cmd}")
    monkeypatch.setattr(F.os, "geteuid", lambda: 0 if root else 1000)
    with pytest.raises(
        StopIteration if root else RuntimeError, match=None if root else "apt-get update` \\(as root\\)"
    ):
        F.download_fashion(tmp_path)
    assert calls == (
        [["apt-get", "download"], ["apt-get", "update"], ["apt-get", "download"]] if root else [["apt-get", "download"]]
    )


def test_a_failing_command_shows_its_error_and_the_fix():
    cmd = [sys.executable, "-c", "import sys; sys.exit('E: Unable to locate package')"]
    with pytest.raises(RuntimeError, match=r"failed \(exit 1\): E: Unable to locate package\nrun apt-get update"):
        F._run(cmd, ".", "run apt-get update")


def test_missing_fashion_prints_fetch_command(tmp_path):
    with pytest.raises(DataMissingError, match="python -m mtcrl_lite.data fetch fashion"):
        FA.load_fashion(tmp_path)
    assert "fashion" in F.FETCHERS and set(F.CHECKSUMS["fashion"]) == set(F.CHECKSUMS["mnist"])


# A fake 28x28 source in the layout of load_mnist / load_fashion: every image is a full square whose value names
# the source and the split it comes from (base + 1: train[:-10000], base + 2: train[-10000:], base + 3: test), so
# that on an undownsampled canvas each half shows where its item was drawn from.
def fake_source(base: int, seed: int, n_train_pool: int = 500, n_test: int = 500) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n_train = n_train_pool + N_VAL_POOL
    value = np.where(np.arange(n_train) < n_train_pool, base + 1, base + 2).astype(np.uint8)
    return {
        "train_x": np.broadcast_to(value[:, None, None], (n_train, 28, 28)).copy(),
        "train_y": rng.permutation(np.arange(n_train) % 10).astype(np.uint8),
        "test_x": np.full((n_test, 28, 28), base + 3, np.uint8),
        "test_y": rng.permutation(np.arange(n_test) % 10).astype(np.uint8),
    }


FASHION, MNIST = 100, 200  # fake sources' base values


@pytest.fixture
def fake_sources(monkeypatch):
    monkeypatch.setattr(FA, "load_fashion", lambda root=None: fake_source(FASHION, 0))
    monkeypatch.setattr(FA, "load_mnist", lambda root=None: fake_source(MNIST, 1))


def test_split_pools_keep_instances_in_their_split():
    src = fake_source(0, 0)
    pools = split_pools(src)
    assert {k: set(np.unique(p.images).tolist()) for k, p in pools.items()} == {"train": {1}, "val": {2}, "test": {3}}
    assert [len(pools[k].images) for k in ("train", "val", "test")] == [500, N_VAL_POOL, 500]


@pytest.mark.parametrize("name, left, right", [("multifashion", FASHION, FASHION), ("fashionmnist", FASHION, MNIST)])
def test_fashion_datasets_confounder_sources_and_splits(fake_sources, name, left, right):
    """Per environment P(right = (left + 1) % 10) = p + (1 - p)/10 within 4 binomial standard deviations, 0.1 on
    validation and test; each half holds an item of its source from the split's own pool; labels 0-9."""
    cfg = MultiMNISTConfig(n_train_per_env=3000, n_val=2000, n_test=2000, downsample=1)
    d = build_dataset(name, cfg)
    assert d.name == name and [t.name for t in d.tasks] == ["left", "right"]
    expect = {**{f"p={p:g}": p + (1 - p) / 10 for p in cfg.train_corrs}, "val": 0.1, "test": 0.1}
    splits = {**d.train_envs, "val": d.val, "test": d.test}
    assert list(splits) == list(expect)
    for (env, s), offset in zip(splits.items(), (1, 1, 2, 3)):
        yl, yr = s.y["left"], s.y["right"]
        q, n = expect[env], len(yl)
        assert abs(np.mean(yr == (yl + 1) % 10) - q) < 4 * np.sqrt(q * (1 - q) / n), env
        assert d.info["P(right=f(left))"][env] == pytest.approx(np.mean(yr == (yl + 1) % 10))
        assert yl.dtype == yr.dtype == np.int64 and 0 <= min(yl.min(), yr.min()) and max(yl.max(), yr.max()) <= 9
        assert s.x.shape == (n, 1, 64, 64) and s.x.dtype == np.uint8
        assert set(np.unique(s.x[..., :32]).tolist()) == {0, left + offset}, env
        assert set(np.unique(s.x[..., 32:]).tolist()) == {0, right + offset}, env


def test_fashion_datasets_default_shape_and_presets(fake_sources):
    from mtcrl_lite.run.config import make_config

    assert build_dataset("fashionmnist", MultiMNISTConfig(n_train_per_env=64, n_val=64, n_test=64)).input_shape == (
        1,
        32,
        32,
    )
    for name in ("multifashion", "fashionmnist"):
        for scale in ("smoke", "default", "full"):
            ours, theirs = make_config(name, "mtcrl", scale=scale), make_config("multimnist", "mtcrl", scale=scale)
            assert (ours.data, ours.model, ours.train, ours.hp) == (theirs.data, theirs.model, theirs.train, theirs.hp)


def test_fashion_datasets_borrow_multimnist_tuned_values_until_they_have_their_own(tmp_path):
    from mtcrl_lite.run.config import tuned_values

    path = tmp_path / "tuned.json"
    path.write_text(
        '{"multimnist": {"mtl": {"values": {"train.lr": 0.002}}, "stl": {"values": {"train.lr": 0.003}}},'
        ' "fashionmnist": {"mtl": {"values": {"train.lr": 0.005}}}}'
    )
    assert tuned_values("multifashion", "mtl", path) == {"train.lr": 0.002}
    assert tuned_values("fashionmnist", "mtl", path) == {"train.lr": 0.005}
    assert tuned_values("fashionmnist", "stl", path) == {"train.lr": 0.003}  # per method, not per dataset
    assert tuned_values("movielens", "mtl", path) == {}


fashion_present = pytest.mark.skipif(
    not all((F.data_root() / "fashion" / n).exists() for n in F.CHECKSUMS["fashion"]),
    reason="Fashion-MNIST not fetched (python -m mtcrl_lite.data fetch fashion)",
)
mnist_present = pytest.mark.skipif(
    not all((F.data_root() / "mnist" / n).exists() for n in F.CHECKSUMS["mnist"]),
    reason="MNIST not fetched (python -m mtcrl_lite.data fetch mnist)",
)


@fashion_present
def test_real_fashion_canonical_checks():
    m = FA.load_fashion()
    assert m["train_x"].shape == (60000, 28, 28) and m["test_x"].shape == (10000, 28, 28)
    assert m["train_x"].dtype == np.uint8 and m["train_y"].dtype == np.uint8
    assert np.bincount(m["train_y"]).tolist() == [6000] * 10
    assert np.bincount(m["test_y"]).tolist() == [1000] * 10
    assert m["train_y"][:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert m["test_y"][:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]


@fashion_present
@mnist_present
@pytest.mark.parametrize("name", ["multifashion", "fashionmnist"])
def test_real_fashion_datasets(name):
    d = build_dataset(name, MultiMNISTConfig(n_train_per_env=4000, n_val=2000, n_test=2000))
    corr = d.info["P(right=f(left))"]
    assert corr["p=0.9"] == pytest.approx(0.91, abs=0.02)
    assert corr["p=0.7"] == pytest.approx(0.73, abs=0.02)
    assert corr["val"] == pytest.approx(0.1, abs=0.025) and corr["test"] == pytest.approx(0.1, abs=0.025)
    assert d.input_shape == (1, 32, 32)
    assert all(0 <= s.y[t].min() and s.y[t].max() <= 9 for s in (d.val, d.test) for t in ("left", "right"))
