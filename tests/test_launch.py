"""Sweeps through submitit: local processes at most `jobs` at a time, a Slurm script checked without a cluster."""

import pytest

from mtcrl_lite.grid import launch as Lc
from mtcrl_lite.grid import sweep


def test_local_launch_returns_results_in_the_order_of_the_work(tmp_path):
    # the function runs in another process, so it must be importable there (a builtin here)
    assert Lc.launch(pow, [(3, 2), (1, 2), (2, 2)], jobs=2, folder=tmp_path, progress=False, poll_s=0.05) == [9, 1, 4]
    assert any(tmp_path.rglob("*_log.out"))  # submitit kept each job's log


def test_a_failed_local_run_raises_with_its_message(tmp_path):
    with pytest.raises(Exception, match="invalid literal for int"):
        Lc.launch(int, [("1",), ("x",)], jobs=2, folder=tmp_path, progress=False, poll_s=0.05)


def test_slurm_script_carries_the_parameters_without_submitting(tmp_path):
    script = Lc.sbatch_script(
        tmp_path,
        jobs=16,
        slurm=Lc.slurm_parameters(["partition=gpu", "gpus_per_node=1", "time=120", "mem=32GB"]),
        threads=2,
    )
    for line in (
        "#SBATCH --partition=gpu",
        "#SBATCH --gpus-per-node=1",
        "#SBATCH --time=120",
        "#SBATCH --cpus-per-task=2",
        "#SBATCH --mem=32GB",
    ):
        assert line in script, line
    with pytest.raises(ValueError, match="partitoin"):  # submitit names an unknown parameter
        Lc.sbatch_script(tmp_path, 1, {"partitoin": "gpu"})
    with pytest.raises(ValueError, match="KEY=VALUE"):
        Lc.slurm_parameters(["gpu"])


def test_sweep_dry_run_prints_the_plan_and_the_sbatch_script(tmp_path, capsys):
    rc = sweep.main(
        [
            "--dataset",
            "multimnist",
            "--methods",
            "mtl",
            "mtcrl",
            "--seeds",
            "0",
            "1",
            "2",
            "--scale",
            "smoke",
            "--out",
            str(tmp_path),
            "--launcher",
            "slurm",
            "--jobs",
            "4",
            "--slurm",
            "partition=p100",
            "--dry-run",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0 and "6 runs, launcher slurm, 4 at a time" in out and "#SBATCH --partition=p100" in out
    assert "#SBATCH --array=0-5%4" in out  # one array job, 4 tasks at a time
    assert not any(tmp_path.glob("mtl/*"))  # nothing ran


def test_an_unknown_launcher_is_named(tmp_path):
    with pytest.raises(ValueError, match="launcher must be one of"):
        sweep.run_configs([], [], launcher="kubernetes")
