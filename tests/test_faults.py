"""Fault injection: every bad input or damaged file a new user may meet ends in a clear error (naming the file, the
value and the fix) or a correct result. Each case is one line of a table below; adding a case is adding a line."""

import collections
import contextlib
import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import typing
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import interrupted_at

from mtcrl_lite.baselines import surgery as S
from mtcrl_lite.baselines.methods import METHODS
from mtcrl_lite.core.hparams import validity
from mtcrl_lite.data import DATASETS, build_dataset, cityscapes, nyuv2
from mtcrl_lite.data import taskonomy as TK
from mtcrl_lite.data.__main__ import main as data_main
from mtcrl_lite.data.__main__ import write_fixture
from mtcrl_lite.grid.sweep import main as sweep_main
from mtcrl_lite.grid.sweep import run_dir
from mtcrl_lite.run import checkpoint as C
from mtcrl_lite.run import config
from mtcrl_lite.run import guards as G
from mtcrl_lite.run import rundir as R
from mtcrl_lite.run import train as T
from mtcrl_lite.run.config import RANGES, SCALES, SECTIONS, _fields, make_config
from mtcrl_lite.run.rundir import CorruptFileError, atomic_write_text, collect, is_finished, read_json, read_jsonl, tidy

# -- silent wrong results ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype, seed", [(torch.float32, 0), (torch.float64, 4)])
def test_gradvac_on_exactly_opposite_gradients_is_finite(dtype, seed):
    """cos(g, -g) rounds to just below -1 for these vectors (sqrt(1 - cos^2) was NaN); the correct result: each
    gradient is projected onto the other's normal plane, i.e. to 0, and the EMA targets move towards -1."""
    g = torch.randn(1, 7, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    grads = torch.cat([g, -g])
    cos = (grads[0] @ grads[1]) / (grads[0].norm() * grads[1].norm())
    assert cos < -1  # the fault this case reproduces
    out, target = S.gradvac(grads, torch.zeros(2, 2, dtype=dtype), beta=0.01, orders=[[1], [0]])
    assert torch.isfinite(out).all() and torch.isfinite(target).all()
    assert torch.allclose(out, torch.zeros_like(out), atol=1e-6)
    assert torch.allclose(target, torch.tensor([[0.0, -0.01], [-0.01, 0.0]], dtype=dtype))


# -- the runner: bad inputs on the command line, damaged run directories -----------------------------------------
# Every case runs `python -m mtcrl_lite.run.train` in process (main(argv)) on the download-free debug dataset with a
# tiny model (one step per epoch) and checks the exit code and the one-line error on stderr (a regular expression).

TINY = ["--set", "train.batch_size=128", "--set", "model.channels=4", "--set", "model.width=8"]
TINY_OVERRIDES = {"train.batch_size": 128, "model.channels": (4,), "model.width": 8}


def train_main(capsys, out, *args, method="mtl"):
    """(exit code, stderr) of the CLI on debug with the tiny model; `args` come last, so they override."""
    rc = T.main(["--dataset", "debug", "--method", method, "--out", str(out), "--quiet", *TINY, *args])
    return rc, capsys.readouterr().err


CLI_CASES = [  # (case, arguments, exit code, error on stderr); {file} is an existing file
    (
        "epochs 0",
        ["--epochs", "0"],
        2,
        r"train\.epochs = 0 is out of range \(must be >= 1\); pass --set train\.epochs=",
    ),
    ("epochs < 0", ["--epochs", "-3"], 2, r"train\.epochs = -3 is out of range \(must be >= 1\)"),
    (
        "batch < envs",
        ["--set", "train.batch_size=1"],
        2,
        r"train\.batch_size = 1 is smaller than the number of training environments \(2;.*at least 2",
    ),
    ("n = 0", ["--set", "data.n_train_per_env=0"], 2, r"data\.n_train_per_env = 0 is out of range \(must be >= 1\)"),
    (
        "lambda < 0",
        ["--set", "hp.lambda_girm=-1", "--method", "mtcrl"],
        2,
        r"hp\.lambda_girm = -1\.0 is out of range \(must be >= 0\)",
    ),
    (
        "lambda nan",
        ["--set", "hp.lambda_dec=nan", "--method", "mtcrl"],
        2,
        r"hp\.lambda_dec = nan is out of range \(must be finite and >= 0\)",
    ),
    ("lr = 0", ["--set", "train.lr=0"], 2, r"train\.lr = 0\.0 is out of range \(must be > 0\)"),
    (
        "corr > 1",
        ["--set", "data.train_corrs=0.9,1.5"],
        2,
        r"data\.train_corrs = \(0\.9, 1\.5\) is out of range \(every entry must be in \[0, 1\]\)",
    ),
    ("seed < 0", ["--seed", "-1"], 2, r"seed = -1 is out of range \(must be >= 0\); pass --seed 0"),
    (
        "cuda, no GPU",
        ["--set", "train.device=cuda"],
        2,
        r"train\.device = 'cuda' but no GPU is visible.*--set train\.device=cpu, or --set train\.device=auto",
    ),
    ("no such device", ["--set", "train.device=gpu"], 2, r"train\.device = 'gpu' is not a torch device; use"),
    ("--out is a file", ["--out", "{file}"], 2, r"--out .*file\.txt is an existing file, not a directory"),
    ("--out under a file", ["--out", "{file}/run"], 2, r"--out .*file\.txt/run cannot be written \(Not a directory\)"),
    (
        "diverging lr",
        ["--set", "train.lr=1e6", "--epochs", "2"],
        1,
        r"^error: epoch 1: training diverged at step 1: the loss is .*, over 10000 x its running minimum .*"
        r"\(largest term 'task/(left|right)' = .*\) at train\.lr = 1e\+06; lower the learning rate",
    ),
]


@pytest.mark.parametrize("args, rc, error", [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_bad_input_is_a_clear_error_that_leaves_nothing_behind(args, rc, error, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same message on a GPU machine
    (tmp_path / "file.txt").write_text("not a run directory\n")
    out = tmp_path / "run"
    code, err = train_main(capsys, out, *[a.replace("{file}", str(tmp_path / "file.txt")) for a in args])
    assert code == rc and re.search(error, err, re.M), err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    if rc == 2:
        assert not (out / "config.json").exists()  # a corrected rerun is not blocked


def test_every_numeric_config_field_has_a_range_and_every_preset_is_valid():
    """validate_config skips a field without a rule: a new numeric field must declare one (hp(..., valid=...)) or
    get one in config.RANGES."""
    missing = set()
    for dataset in DATASETS:
        for method in METHODS:
            for scale in SCALES:
                cfg = make_config(dataset, method, scale=scale)  # validates the presets
                for section in SECTIONS:
                    declared = validity(getattr(cfg, section))
                    for name, typ in _fields(getattr(cfg, section)).items():
                        inner = typing.get_args(typ)[0] if typing.get_origin(typ) is tuple else typ
                        if inner in (int, float) and f"{section}.{name}" not in RANGES and name not in declared:
                            missing.add(f"{dataset}: {section}.{name}")
    assert not missing


def test_epochs_0_then_the_corrected_rerun_trains(tmp_path, capsys):
    assert train_main(capsys, tmp_path / "r", "--epochs", "0")[0] == 2
    assert train_main(capsys, tmp_path / "r", "--epochs", "1")[0] == 0
    assert is_finished(tmp_path / "r")


def test_unwritable_out_fails_before_training(tmp_path, capsys, monkeypatch):
    """A read-only --out (simulated: the tests may run as root, who may write anywhere) fails before any training."""

    def refuse(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(G.tempfile, "mkstemp", refuse)
    monkeypatch.setattr(T, "build_method", lambda *a: pytest.fail("trained although --out is read-only"))
    code, err = train_main(capsys, tmp_path / "ro", "--epochs", "1")
    assert code == 2 and f"--out {tmp_path / 'ro'} cannot be written (Permission denied); choose a writable" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only directory")
def test_read_only_out_fails_before_training(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        code, err = train_main(capsys, ro, "--epochs", "1")
    finally:
        ro.chmod(0o755)
    assert code == 2 and "cannot be written (Permission denied)" in err


# Damaged run directories: an interrupted run (checkpoint after epoch 1 of 3, results of epochs 0 and 1) is copied,
# damaged, and resumed.


def _flip_tensor_bytes(path, key):
    """Flip one byte inside the stored data of tensor `key` of the checkpoint: torch.load does not notice."""
    raw = bytearray(path.read_bytes())
    at = raw.find(torch.load(path, weights_only=False)["method"][key].numpy().tobytes()[:32])
    assert at > 0
    raw[at + 5] ^= 0xFF
    path.write_bytes(bytes(raw))
    torch.load(path, weights_only=False)  # the fault: loads without complaint


def _other_digest(path):
    ck = torch.load(path, weights_only=False)
    ck.pop("sha256")
    C._atomic_save({**ck, "digest": "0123456789"}, path)


def _keep_lines(path, n):
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:n]))


def _cut(path, n_bytes):
    path.write_bytes(path.read_bytes()[:-n_bytes])


def _append(path, row):
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


def _edit_line(path, n, edit):
    """Line `n` (1-based) of a JSON-lines file replaced by edit(row)."""
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[n - 1] = edit(rows[n - 1])
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


RUN_DIR_CASES = [  # (case, damage of the interrupted run directory d, error on stderr); all exit with code 2
    (
        "results behind checkpoint",
        lambda d: _keep_lines(d / "results.jsonl", 1),
        r"results\.jsonl is behind .*checkpoint\.pt: the checkpoint is after epoch 1 "
        r"but the results lack epochs \[1\]; "
        r"pass --force to start the run over, or delete .*checkpoint\.pt",
    ),
    ("results missing", lambda d: (d / "results.jsonl").unlink(), r"lack epochs \[0, 1\]"),
    (
        "checkpoint bit flip",
        lambda d: _flip_tensor_bytes(d / "checkpoint.pt", "model.heads.left.weight"),
        r"checkpoint\.pt is damaged: its contents do not match the checksum stored with them; delete .*checkpoint\.pt",
    ),
    (
        "checkpoint truncated",
        lambda d: _cut(d / "checkpoint.pt", 1000),
        r"checkpoint\.pt cannot be read \(.*\): it is damaged",
    ),
    (
        "checkpoint of another config",
        lambda d: _other_digest(d / "checkpoint.pt"),
        r"checkpoint\.pt was written under config digest 0123456789, but the run's config\.json has digest",
    ),
    (
        "results truncated",
        lambda d: _cut(d / "results.jsonl", 20),
        r"results\.jsonl line 2 is not valid JSON \(.*\): the file is truncated or damaged; rerun with --force",
    ),
    (
        "config truncated",
        lambda d: _cut(d / "config.json", 30),
        r"config\.json line \d+ is not valid JSON \(.*\): the file is truncated or damaged; rerun with --force",
    ),
    (
        "results garbage line",
        lambda d: _append(d / "results.jsonl", {"garbage": True}),
        r"results\.jsonl line 3 is not a line of a run's results \('kind' is None, not one of \['epoch', 'final'\]\)"
        r": the file is truncated or damaged; rerun with --force",
    ),
]
INTERRUPTED = ["--epochs", "3"]


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    d = tmp_path_factory.mktemp("interrupted") / "run"
    with interrupted_at(2), pytest.raises(KeyboardInterrupt):  # in epoch 2 of 3 (one step per epoch)
        T.main(["--dataset", "debug", "--method", "mtl", "--out", str(d), "--quiet", *TINY, *INTERRUPTED])
    assert [r["epoch"] for r in read_jsonl(d / "results.jsonl")] == [0, 1] and (d / "checkpoint.pt").exists()
    return d


@pytest.mark.parametrize("damage, error", [c[1:] for c in RUN_DIR_CASES], ids=[c[0] for c in RUN_DIR_CASES])
def test_damaged_run_directory_is_a_clear_error(damage, error, interrupted, tmp_path, capsys):
    d = tmp_path / "run"
    shutil.copytree(interrupted, d)
    damage(d)
    code, err = train_main(capsys, d, *INTERRUPTED)
    assert code == 2 and re.search(error, err) and len(err.strip().splitlines()) == 1, err


def test_intact_copy_resumes_and_force_clears_an_unparsable_config(interrupted, tmp_path, capsys):
    d = tmp_path / "run"
    shutil.copytree(interrupted, d)
    assert train_main(capsys, d, *INTERRUPTED)[0] == 0 and is_finished(d)  # the copy itself is sound
    _cut(d / "config.json", 30)
    assert train_main(capsys, d, *INTERRUPTED)[0] == 2
    assert train_main(capsys, d, *INTERRUPTED, "--force")[0] == 0
    assert read_json(d / "config.json")["train"]["epochs"] == 3 and is_finished(d)


# A finished run (2 epochs + the final line) whose results.jsonl is damaged by lines that are valid JSON: reusing the
# run and tabulating it both refuse the file, naming the line.

FINISHED = ["--epochs", "2"]
FINISHED_CASES = [  # (case, damage of results.jsonl, line, problem)
    ("garbage line", lambda p: _append(p, {"garbage": True}), 4, r"'kind' is None"),
    ("epoch line without metrics", lambda p: _edit_line(p, 2, lambda r: {**r, "metrics": None}), 2, r"'metrics'"),
    ("metric not a number", lambda p: _edit_line(p, 1, _metric_text), 1, r"epoch line: 'metrics' missing"),
    ("epochs out of order", lambda p: _edit_line(p, 2, lambda r: {**r, "epoch": 0}), 2, r"epoch 0 where epoch 1"),
    ("two final lines", lambda p: _append(p, json.loads(p.read_text().splitlines()[-1])), 4, r"after the final line"),
    ("final line damaged", lambda p: _edit_line(p, 3, lambda r: {**r, "primary": 3}), 3, r"final line: 'primary'"),
]


def _metric_text(row):
    row["metrics"]["val"]["left"]["acc"] = "0.5"
    return row


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    d = tmp_path_factory.mktemp("finished") / "run"
    assert T.main(["--dataset", "debug", "--method", "mtl", "--out", str(d), "--quiet", *TINY, *FINISHED]) == 0
    return d


@pytest.mark.parametrize("damage, line, problem", [c[1:] for c in FINISHED_CASES], ids=[c[0] for c in FINISHED_CASES])
def test_a_bad_results_line_is_refused_on_reuse_and_tabulation(damage, line, problem, finished, tmp_path, capsys):
    d = tmp_path / "run"
    shutil.copytree(finished, d)
    tidy(d)  # the intact copy tabulates
    damage(d / "results.jsonl")
    error = rf"results\.jsonl line {line} is not a line of a run's results \(.*{problem}.*\): .*; rerun with --force"
    code, err = train_main(capsys, d, *FINISHED)
    assert code == 2 and re.search(error, err) and len(err.strip().splitlines()) == 1, err
    with pytest.raises(CorruptFileError, match=error):
        collect([d])
    assert train_main(capsys, d, *FINISHED, "--force")[0] == 0 and len(tidy(d))  # the fix that the error names


# A write that fails half-way (a full disk, simulated by the writer; and a real one on a small tmpfs when the tests
# run as root): one line naming the file and the cause, no temporary file left, and the same command afterwards
# resumes the run to the numbers of the run that never failed.


def _fail_write(monkeypatch, name, nth, code):
    """The nth write of a file `name` fails with OSError(code) after half of its bytes."""
    real, count = R._write, collections.Counter()

    def write(fd, data):
        target = Path(os.readlink(f"/proc/self/fd/{fd}")).name[1:].rsplit(".", 1)[0]  # .<name>.<random hex>
        count[target] += 1
        if (target, count[target]) == (name, nth):
            real(fd, data[: len(data) // 2])
            raise OSError(code, os.strerror(code))
        real(fd, data)

    monkeypatch.setattr(R, "_write", write)


def _without_time(rows):
    return [{k: v for k, v in r.items() if k != "time_s"} for r in rows]


def _fails_clearly(out, finished, capsys, error):
    code, err = train_main(capsys, out, *FINISHED)
    assert code == 1 and re.search(error, err) and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".") and p.name != ".lock") == []  # no temp


WRITE_CASES = [  # (file, its nth write fails, errno, the cause and the fix on stderr)
    ("config.json", 1, errno.ENOSPC, r"No space left on device\): the disk is full; free space on it"),
    ("model_best.pt", 1, errno.ENOSPC, r"No space left on device"),
    ("results.jsonl", 1, errno.ENOSPC, r"No space left on device"),
    ("checkpoint.pt", 2, errno.ENOSPC, r"No space left on device"),
    ("results.jsonl", 3, errno.ENOSPC, r"No space left on device"),  # the final line
    ("checkpoint.pt", 1, errno.EIO, r"Input/output error\): fix the cause"),
]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="names a descriptor's file from Linux's /proc")
@pytest.mark.parametrize(
    "name, nth, code, why", WRITE_CASES, ids=[f"{c[0]} #{c[1]} {errno.errorcode[c[2]]}" for c in WRITE_CASES]
)
def test_a_failed_write_is_a_clear_error_and_the_run_resumes(
    name, nth, code, why, finished, tmp_path, capsys, monkeypatch
):
    out = tmp_path / "run"
    with monkeypatch.context() as m:
        _fail_write(m, name, nth, code)
        _fails_clearly(out, finished, capsys, rf"^error: cannot write {re.escape(str(out / name))} \({why}")
    assert train_main(capsys, out, *FINISHED)[0] == 0
    assert _without_time(read_jsonl(out / "results.jsonl")) == _without_time(read_jsonl(finished / "results.jsonl"))


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mount"), reason="mounts a tmpfs (root)")
def test_a_full_tmpfs_is_a_clear_error_and_the_run_resumes_once_space_is_freed(finished, tmp_path, capsys):
    fs = tmp_path / "fs"
    fs.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(fs)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        out = fs / "run"
        (fs / "filler").write_bytes(bytes(232_000))  # leaves 6 pages of 4 KiB: config.json fits, the checkpoints do not
        _fails_clearly(out, finished, capsys, r"^error: cannot write .*\(No space left on device\)")
        (fs / "filler").unlink()
        assert train_main(capsys, out, *FINISHED)[0] == 0
        assert _without_time(read_jsonl(out / "results.jsonl")) == _without_time(read_jsonl(finished / "results.jsonl"))
    finally:
        subprocess.run(["umount", str(fs)], check=True)


TUNED_DAMAGE = [  # (case, contents of a damaged tuning/tuned.json, error)
    ("truncated", '{"debug": {"mtl": {"values": {"train.lr": 0.0', r"tuned\.json line 1 is not valid JSON"),
    ("not a table", '["debug"]', r"tuned\.json is not a table"),
]


@pytest.mark.parametrize("text, error", [c[1:] for c in TUNED_DAMAGE], ids=[c[0] for c in TUNED_DAMAGE])
def test_damaged_tuned_json_names_a_fix_that_works(text, error, tmp_path, capsys, monkeypatch):
    tuned = tmp_path / "tuning" / "tuned.json"
    tuned.parent.mkdir()
    tuned.write_text(text)
    monkeypatch.setattr(config, "TUNED_PATH", tuned)
    fix = rf"restore it from git \(git checkout -- {re.escape(str(tuned))}\); .* pass --untuned"
    for extra in ([], ["--force"]):  # --force does not help: the file is not part of the run
        code, err = train_main(capsys, tmp_path / "run", "--epochs", "1", *extra)
        assert code == 2 and re.search(error + ".*" + fix, err) and "--force" not in err, err
        assert len(err.strip().splitlines()) == 1
    assert train_main(capsys, tmp_path / "run", "--epochs", "1", "--untuned")[0] == 0  # the first fix it names
    shutil.copy(config.REPO_ROOT / "tuning" / "tuned.json", tuned)  # the other: the file as committed
    assert train_main(capsys, tmp_path / "run2", "--epochs", "1")[0] == 0


# Damaged files of the datasets read from disk (the fixtures of `python -m mtcrl_lite.data fixture`): the run stops
# with one line naming the dataset, the file, why and the fix, before its first epoch when the file is one of the
# validation or test samples; `python -m mtcrl_lite.data check` lists it, and passes once it is restored.


def _truncate(path):  # what `truncate -s 100` does
    path.write_bytes(path.read_bytes()[:100])


def _garble(path):  # random bytes over the file
    path.write_bytes(np.random.default_rng(0).bytes(3000))


def _cut_header(path):  # inside the .npy header (128 bytes)
    path.write_bytes(path.read_bytes()[:90])


DATA_CASES = [  # (case, dataset, layout, sample of which part, file of which folder, damage, why, extra arguments)
    ("taskonomy depth truncated", "taskonomy", "", "train", "depth_zbuffer", _truncate, r"image file is truncated", []),
    ("taskonomy val rgb garbled", "taskonomy", "", "val", "rgb", _garble, r"cannot identify image file", []),
    (
        "taskonomy, 1 loader worker",
        "taskonomy",
        "",
        "test",
        "normal",
        _garble,
        r"cannot identify image file",
        ["--set", "train.num_workers=1"],
    ),
    ("nyuv2 label header cut", "nyuv2", "mtan", "val", "label", _cut_header, r"EOF: reading array header", []),
    ("nyuv2 image data cut", "nyuv2", "mtan", "test", "image", lambda p: _cut(p, 20), r"Failed to read all data", []),
    ("cityscapes depth garbled", "cityscapes", "mtan", "train", "depth", _garble, r"not a \.npy file", []),
    ("cityscapes official disparity", "cityscapes", "official", "test", "disparity", _truncate, r"truncated", []),
]


@pytest.mark.parametrize(
    "name, layout, part, folder, damage, why, extra", [c[1:] for c in DATA_CASES], ids=[c[0] for c in DATA_CASES]
)
def test_a_damaged_data_file_is_named_with_the_fix(name, layout, part, folder, damage, why, extra, tmp_path, capsys):
    root, out = tmp_path / "data", tmp_path / "run"
    write_fixture(name, str(root), views=3, size=32, seed=0, layout=layout or "mtan")
    data_set = {"root": str(root), **({"layout": layout} if name == "cityscapes" else {})}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fixtures hold a few of the listed buildings and cities
        data = build_dataset(name, DATASETS[name][0](**data_set))
    split = next(iter(data.train_envs.values())) if part == "train" else getattr(data, part)
    path = split.items[0].path(folder)
    damage(path)
    sets = [a for k, v in data_set.items() for a in ("--set", f"data.{k}={v}")]
    argv = ["--dataset", name, "--method", "mtl", "--smoke", "--epochs", "1", "--out", str(out), "--quiet"]
    code, err = T.main(argv + sets + extra), capsys.readouterr().err
    error = rf"^error: {name}: {re.escape(str(path))} cannot be read \(.*{why}.*\): the file is damaged; restore it"
    assert code == 2 and re.search(error + rf".*data check {name} DATA_ROOT$", err) and err.count("\n") == 1, err
    if part != "train":  # found by reading the validation and test files before the first epoch
        assert not (out / "config.json").exists()
    check = ["check", name, str(root), *(["--layout", layout] if layout else [])]
    code, err = data_main(check), capsys.readouterr().err
    assert code == 1 and re.search(rf"1 of \d+ samples cannot be read:\n {{4}}{error[8:]}", err), err
    write_fixture(name, str(root), views=3, size=32, seed=0, layout=layout or "mtan")  # restored
    assert data_main(check) == 0 and f"{name}: all " in capsys.readouterr().out


MISSING_CASES = [  # (dataset, fixture writer leaving out one label file, count recorded in config.json)
    (
        "taskonomy",
        lambda d: TK.write_fixture(d, size=16, views_per_building=2, leave_out="normal"),
        {"normal": 1, **dict.fromkeys(["depth_zbuffer", "edge_texture", "keypoints2d", "segment_semantic"], 0)},
    ),
    ("nyuv2", lambda d: nyuv2.write_fixture(d, leave_out="depth"), 1),
    ("cityscapes", lambda d: cityscapes.write_fixture(d, leave_out="label_7"), 1),
]


@pytest.mark.parametrize("name, write, recorded", MISSING_CASES, ids=[c[0] for c in MISSING_CASES])
def test_skipped_missing_labels_are_said_and_recorded(name, write, recorded, tmp_path, capsys):
    root, out = write(tmp_path / "data"), tmp_path / "run"
    argv = ["--dataset", name, "--method", "mtl", "--smoke", "--epochs", "1", "--quiet", "--set", f"data.root={root}"]
    assert T.main([*argv, "--out", str(out)]) == 1 and "data.missing_labels=invalid" in capsys.readouterr().err
    assert T.main([*argv, "--out", str(out), "--set", "data.missing_labels=invalid"]) == 0
    said = rf"^{name}: 1 label file\(s\) missing.*: those samples are unlabelled .*recorded in config\.json"
    assert re.search(said, capsys.readouterr().out, re.M)
    assert read_json(out / "config.json")["missing_label_files"] == recorded


# One writer per run directory: a second writer (a second sweep, a notebook, a rerun with --force) is refused while the
# first holds the directory's lock, and the lock goes with the process that holds it, kill -9 included.

HOLD = (
    "import sys, time; from pathlib import Path; from mtcrl_lite.run.guards import RunDirLock; "
    "lock = RunDirLock(); lock.acquire(Path(sys.argv[1])); print('locked', flush=True); time.sleep(600)"
)


def _hold_lock(out):
    """A process that takes the lock of run directory `out` and sleeps."""
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "locked"
    return p


def _lock_free(out):
    try:
        with G.RunDirLock() as lock:
            lock.acquire(out)
        return True
    except G.RunDirConflict:
        return False


def _busy(out, pid):
    return rf"^error: {re.escape(str(out))} is being written by pid {pid} on .* since .*; two writers would mix"


LOCK_CASES = [  # (case, who holds the lock, arguments of the second writer)
    ("another process", "process", []),
    ("another process, --force", "process", ["--force"]),
    ("this process (a notebook)", "here", []),
]


@pytest.mark.parametrize("holder, extra", [c[1:] for c in LOCK_CASES], ids=[c[0] for c in LOCK_CASES])
def test_a_second_writer_is_refused_until_the_first_ends(holder, extra, interrupted, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(interrupted, out)
    files = lambda: {p.name: p.read_bytes() for p in out.iterdir() if p.name != G.LOCK}  # noqa: E731
    before, lock = files(), G.RunDirLock()
    proc = _hold_lock(out) if holder == "process" else lock.acquire(out)
    try:
        code, err = train_main(capsys, out, *INTERRUPTED, *extra)
        assert code == 2 and re.search(_busy(out, proc.pid if proc else os.getpid()), err), err
        assert files() == before  # untouched, --force too
    finally:
        if proc:
            proc.kill()  # kill -9: the operating system releases the lock
            proc.wait()
        lock.release()
    assert train_main(capsys, out, *INTERRUPTED)[0] == 0 and is_finished(out)


def test_a_second_sweep_is_refused_too(tmp_path, capsys):
    cfg = make_config("debug", "mtl", 0, overrides={**TINY_OVERRIDES, "train.epochs": 1})
    d = run_dir(tmp_path, cfg)
    d.mkdir(parents=True)
    argv = ["--dataset", "debug", "--methods", "mtl", "--seeds", "0", "--out", str(tmp_path), *TINY]
    with G.RunDirLock() as lock:
        lock.acquire(d)
        code, err = sweep_main([*argv, "--set", "train.epochs=1"]), capsys.readouterr().err
    assert code == 2 and re.search(_busy(d, os.getpid())[1:], err) and "Traceback" not in err, err  # after tqdm's bar
    assert sweep_main([*argv, "--set", "train.epochs=1"]) == 0 and is_finished(d)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds the workers in Linux's /proc")
def test_a_killed_torchrun_agent_leaves_its_workers_holding_the_lock(tmp_path, capsys):
    """kill -9 of the torchrun agent leaves its workers running (orphans that still write the run); their rank 0
    keeps the lock, so a rerun started meanwhile is refused, naming it, and gets through once they are gone."""
    out, workers = tmp_path / "run", []
    args = ["--dataset", "debug", "--method", "mtl", "--out", str(out), "--quiet", *TINY, "--epochs", "100000"]
    agent = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m"]
        + ["mtcrl_lite.run.train", *args],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 240
        while not (out / "results.jsonl").exists():  # the workers train
            assert agent.poll() is None and time.monotonic() < deadline
            time.sleep(0.5)
        rank0 = int((out / G.LOCK).read_text().split()[1])
        workers = [
            int(p) for t in Path(f"/proc/{agent.pid}/task").iterdir() for p in (t / "children").read_text().split()
        ]
        assert rank0 in workers and len(workers) == 2
        agent.kill()
        agent.wait()
        for pid in workers:
            os.kill(pid, 0)  # the orphaned workers still run: each has a session of its own
        code, err = T.main(args), capsys.readouterr().err
        assert code == 2 and re.search(_busy(out, rank0), err), err
    finally:
        agent.kill()
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while not _lock_free(out):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    code, err = T.main(args), capsys.readouterr().err  # the lock is free: what stops this rerun is the world size
    assert code == 2 and "was started on 2 process(es) and is resumed on 1" in err, err


# -- divergence, inactive penalties, file modes, the best weights ---------------------------------------------------


class _Params(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(3))


@pytest.mark.parametrize(
    "totals, diverges_at",
    [
        ([4.6, 4.6, 4.5, 17.0, 4.6, 0.3, 0.01, 2.0], None),  # a bad step at a large but sane lr; a loss near 0
        ([4.6, 6.4e29], 1),  # train.lr = 1e6 on debug/mtl
        ([1e3, 2e3, 5e2, 4.9e6], None),
        ([1e3, 2e3, 5e2, 5.1e6], 3),  # relative to the running minimum
        ([-0.2, 0.5, 9e3], None),
        ([-0.2, 0.5, 1.1e4], 2),  # below the floor: 1e4 x the floor of 1
    ],
)
def test_divergence_rule(totals, diverges_at):
    mon = G.DivergenceMonitor(_Params(), lr=1e-3)
    for step, total in enumerate(totals):
        if step == diverges_at:
            with pytest.raises(
                G.TrainingDiverged, match=rf"at step {step}: .*largest term 'task/a' .*train\.lr = 0\.001"
            ):
                mon.check({"total": total, "task/a": total, "dec": 0.0}, step)
            return
        mon.check({"total": total, "task/a": total, "dec": 0.0}, step)
    assert diverges_at is None


def test_non_finite_parameter_after_a_step_is_divergence():
    m = _Params()
    mon = G.DivergenceMonitor(m, lr=0.5)
    mon.check({"total": 1.0}, 0)
    with torch.no_grad():
        m.w[1] = float("inf")
    with pytest.raises(G.TrainingDiverged, match=r"at step 1: parameters \['w'\] are non-finite .* train\.lr = 0\.5"):
        mon.check({"total": 1.0}, 1)


@pytest.mark.parametrize(
    "method, term, text",
    [
        ("mtcrl", "girm", "G-IRM is inactive: debug has one training environment ('p=0.9'), and the variance"),
        ("mtcrl-norm", "girm", "G-IRM Norm enforces no invariance"),
        ("irm", "irm", "IRM's penalty enforces no invariance: debug has one training environment"),
        ("dann", "dann", "DANN's adversary is inactive"),
        ("vrex", "vrex", "V-REx is inactive: debug has one training environment"),
    ],
)
def test_one_environment_makes_env_penalties_inactive(method, term, text):
    cfg = make_config("debug", method, overrides={**TINY_OVERRIDES, "data.train_corrs": (0.9,)})
    why = G.inactive_penalties(cfg, T.load_data(cfg).train_envs)
    assert list(why) == [term] and text in why[term]
    two = make_config("debug", method, overrides=TINY_OVERRIDES)
    assert G.inactive_penalties(two, T.load_data(two).train_envs) == {}


def test_mtcrl_with_one_environment_warns_once_and_records_it(tmp_path):
    cfg = make_config(
        "debug",
        "mtcrl",
        overrides={**TINY_OVERRIDES, "data.train_corrs": (0.9,), "train.epochs": 2, "hp.anneal_steps": 0},
    )
    with pytest.warns(G.InactivePenaltyWarning, match="G-IRM is inactive") as caught:
        out = T.run(cfg, tmp_path / "r", progress=False)
    assert len([w for w in caught if w.category is G.InactivePenaltyWarning]) == 1
    assert "G-IRM is inactive" in read_json(out / "config.json")["inactive_penalties"]["girm"]
    assert all(r["loss"]["girm"] == 0.0 for r in read_jsonl(out / "results.jsonl")[:-1])  # the fault, now said


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664)])
def test_result_files_follow_the_umask(umask, mode, tmp_path):
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "results.jsonl", "{}\n")
        C.save_best(tmp_path, torch.nn.Linear(2, 2))
    finally:
        os.umask(old)
    assert (tmp_path / "results.jsonl").stat().st_mode & 0o777 == mode
    assert (tmp_path / "model_best.pt").stat().st_mode & 0o777 == mode


def test_damaged_best_weights_are_a_clear_error(tmp_path):
    model = torch.nn.Linear(4, 3)
    C.save_best(tmp_path, model)
    fresh = torch.nn.Linear(4, 3)
    C.load_best(tmp_path, fresh, "cpu")
    assert torch.equal(fresh.weight, model.weight)
    path = tmp_path / "model_best.pt"
    raw = bytearray(path.read_bytes())
    raw[raw.find(model.weight.detach().numpy().tobytes()) + 3] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(C.CheckpointError, match=r"model_best\.pt is damaged: .*; retrain the run with --force"):
        C.load_best(tmp_path, fresh, "cpu")
    torch.save(model.state_dict(), path)  # written before the checksum: still loads
    C.load_best(tmp_path, fresh, "cpu")
