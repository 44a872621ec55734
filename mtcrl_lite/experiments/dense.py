"""The dense benchmark notebooks (03 Taskonomy, 04 CityScapes, 05 NYUv2) as one tested module.

Each notebook is a thin caller: `setup(name, P)` chooses the real data (when `available` finds it under
DATA_ROOT) or the synthetic scene stand-in (`data.scenes` in the benchmark's style, every number marked †), prints
which, and returns a `DenseRun` that trains all methods plus the plain MTL (`model.module_norm = none`), writes the
tidy results that notebook 09 reads, and computes the paired tables beside the paper's column, the shortcut gap
(stand-in only) and the inputs of the prediction figure.

Configs: Taskonomy's runs use the scale preset as notebook 03 always has (its run digests must not change);
CityScapes and NYUv2 add `train.threads = 1` at the default scale, so that `jobs = 2` runs share 2 CPU cores.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mtcrl_lite.analysis import tables as report
from mtcrl_lite.data import cityscapes, nyuv2, scenes, taskonomy
from mtcrl_lite.data.catalogue import CATALOGUE, STAND_INS
from mtcrl_lite.experiments.notebook import jobs, results_dir, run_overrides
from mtcrl_lite.grid import sweep
from mtcrl_lite.run.config import make_config
from mtcrl_lite.run.rundir import collect
from mtcrl_lite.run.train import load_data, load_trained

STAND_IN = STAND_INS[0]
PLAIN = "mtl-plain"  # the method name of the plain MTL runs in the tables


@dataclass(frozen=True)
class Benchmark:
    """One dense column of the paper's main table: its real loader and tasks; its label, paper column, results folder
    and the stand-in's style are the data catalogue's row."""

    dataset: str  # registry name of the real data (its catalogue row)
    tasks: tuple[str, ...]  # task names (real loader and stand-in share them)
    seg: str  # the segmentation task and the depth task of the shortcut measure
    depth: str
    available: Callable[[str], bool]
    resolve_root: Callable[[str], Path]
    default_overrides: dict = field(default_factory=dict)  # added at the default scale (real and stand-in)
    stand_in_scales: dict = field(default_factory=dict)  # scale -> overrides of the stand-in (over the preset)

    label = property(lambda self: CATALOGUE[self.dataset].label)  # printed name
    column = property(lambda self: CATALOGUE[self.dataset].column)  # report.DATASETS column
    folder = property(lambda self: CATALOGUE[self.dataset].folder)  # results folder (report.SOURCES)
    style = property(lambda self: CATALOGUE[self.dataset].stand_in_style)  # scenes style of the stand-in

    def stand_in_overrides(self, scale: str) -> dict:
        # the Taskonomy style is the scenes default: not named, so that notebook 03's digests stay as they were
        style = {} if self.style == "taskonomy" else {"data.style": self.style}
        return {**style, **self.stand_in_scales.get(scale, {})}


ONE_THREAD = {"train.threads": 1}  # CPU default scale: two runs at a time (jobs=2) share 2 cores


def _cityscapes_layout(root: str) -> str | None:
    return next((layout for layout in cityscapes.LAYOUTS if cityscapes.available(root, layout)), None)


BENCHMARKS = {
    "taskonomy": Benchmark(
        "taskonomy",
        scenes.TASK_NAMES,
        "segment_semantic",
        "depth_zbuffer",
        taskonomy.available,
        taskonomy.resolve_root,
    ),
    "cityscapes": Benchmark(
        "cityscapes",
        cityscapes.TASK_NAMES,
        "segmentation",
        "depth",
        lambda root: _cityscapes_layout(root) is not None,
        cityscapes.resolve_root,
        ONE_THREAD,
        {"smoke": {"model.width": 8}},
    ),
    # K = max(4, 2T) modules must divide the shared width (the scenes presets have 10, 40, 80): CityScapes' two
    # tasks give K = 4 (smoke 10 -> 8); NYUv2's three K = 6 (smoke 12, default 36, full 96). NYUv2's smoke runs
    # take 8 steps at lr 1e-2: with the preset's 4 at 1e-3 every model predicts an absent class (mIoU 0, Δ undefined)
    "nyuv2": Benchmark(
        "nyuv2",
        nyuv2.TASK_NAMES,
        "segmentation",
        "depth",
        nyuv2.available,
        nyuv2.resolve_root,
        ONE_THREAD,
        {
            "smoke": {"model.width": 12, "train.batch_size": 8, "train.lr": 1e-2},
            "default": {"model.width": 36},
            "full": {"model.width": 96},
        },
    ),
}


def get_benchmark(name: str) -> Benchmark:
    if name not in BENCHMARKS:
        raise KeyError(f"unknown dense benchmark {name!r}; valid: {sorted(BENCHMARKS)}")
    return BENCHMARKS[name]


def choose_data(bench: Benchmark, data_root: str | None, scale: str = "default") -> tuple[str, dict, str]:
    """(registry dataset, its overrides, the notebook's first output line): the real data when
    `bench.available(data_root)`, else the stand-in (in the benchmark's style, with its overrides at `scale`)."""
    root = data_root or ""
    where = bench.resolve_root(root)
    if bench.available(root):
        over = {"data.root": str(data_root)} if data_root else {}
        if bench.dataset == "cityscapes":
            over["data.layout"] = _cityscapes_layout(root)
        return bench.dataset, over, f"data: {bench.label} at {where}"
    style = "" if bench.style == "taskonomy" else f"; scenes style {bench.style}"
    line = f"data: SYNTHETIC STAND-IN (scenes) † — no {bench.label} under {where}{style}"
    return STAND_IN, bench.stand_in_overrides(scale), line


def run_data(bench: Benchmark, data_root: str | None, scale: str = "default") -> tuple[str, dict, str]:
    """`choose_data` plus the benchmark's default-scale overrides: the data part of every run config of the column
    (notebooks 03-05 and notebook 10's dense columns both build theirs from it, so their runs are the same)."""
    dataset, over, line = choose_data(bench, data_root, scale)
    return dataset, {**over, **(bench.default_overrides if scale == "default" else {})}, line


@dataclass
class DenseRun:
    """What a dense notebook trains and where: dataset, scale, seeds, config overrides, results folder."""

    bench: Benchmark
    dataset: str
    scale: str
    seeds: list[int]
    overrides: dict
    out: Path
    jobs: int = 1

    @property
    def stand_in(self) -> bool:
        return self.dataset == STAND_IN

    @property
    def mark(self) -> str:
        return " †" if self.stand_in else ""

    def config(self, method: str = "mtl", seed: int = 0):
        return make_config(self.dataset, method, seed, self.scale, self.overrides)

    def load_data(self):
        return load_data(self.config("mtl", 0))

    def train(self, methods, force: bool = False, progress: bool = True):
        """Every (method, seed) and the plain MTL (module_norm none, in out/plain); writes tidy_results.csv (the
        methods: notebook 09's column) and tidy_results_plain_mtl.csv. (run dirs, plain run dirs, both tidy)."""
        grid = dict(force=force, progress=progress, jobs=self.jobs)
        dirs = sweep.run_grid(self.dataset, methods, self.seeds, self.out, self.scale, self.overrides, **grid)
        df = collect(dirs)
        df.to_csv(self.out / "tidy_results.csv", index=False)
        plain_dirs = sweep.run_grid(
            self.dataset,
            ["mtl"],
            self.seeds,
            self.out / "plain",
            self.scale,
            {**self.overrides, "model.module_norm": "none"},
            **grid,
        )
        plain = collect(plain_dirs).assign(method=PLAIN)
        plain.to_csv(self.out / "tidy_results_plain_mtl.csv", index=False)
        return dirs, plain_dirs, pd.concat([df, plain], ignore_index=True)

    def primary_table(self, both: pd.DataFrame) -> pd.DataFrame:
        """Mean ± std over seeds of every task's primary metric on train and test (validation-selected epoch)."""
        table = sweep.summary(both, "best_val", metric="primary")
        test = table[[c for c in table.columns if c[0] in ("train", "test")] + [("n_seeds", "")]]
        test.to_csv(self.out / "primary_best_val.csv")
        return test

    def paired(self, both: pd.DataFrame) -> dict[str, pd.DataFrame]:
        """{baseline: paired Δ summary with the paper's column first} against the matched and the plain MTL."""
        return {base: self._paired(both, base) for base in ("mtl", PLAIN)}

    def _paired(self, both: pd.DataFrame, base: str) -> pd.DataFrame:
        summary = paired_vs(both, base, self.bench.column)
        summary.to_csv(self.out / f"paired_vs_{base}.csv")
        return summary

    def shortcut_gap(self, data, dirs, plain_dirs) -> pd.DataFrame | None:
        """Stand-in only (None otherwise, or without the segmentation and depth tasks): the shortcut gap of every
        run on the shifted test images, mean and std over seeds per method; written to shortcut_gap.csv."""
        names = {t.name for t in data.tasks}
        if not self.stand_in or not {self.bench.seg, self.bench.depth} <= names:
            return None
        table = shortcut_table(data, [*dirs, *plain_dirs], self.bench.seg, self.bench.depth, self.bench.style)
        table.to_csv(self.out / "shortcut_gap.csv")
        return table

    def figure(self, fig, name: str) -> None:
        if fig is not None:
            fig.savefig(self.out / "figures" / f"{name}.png", dpi=120)


def setup(name: str, P, log=print) -> DenseRun:
    """The run of a dense notebook from its validated parameters P (SMOKE, SCALE, SEEDS, EPOCHS, DEVICE,
    DATA_ROOT, RESULTS_DIR, METHODS, TASKS; JOBS if it has one); prints the data line and the plan."""
    bench = get_benchmark(name)
    scale, seeds = ("smoke", P.SEEDS[:1]) if P.SMOKE else (P.SCALE, list(P.SEEDS))
    dataset, data_over, line = run_data(bench, P.DATA_ROOT, scale)
    log(line)
    overrides = {
        **run_overrides(P, data_root=False),
        **({"data.tasks": tuple(P.TASKS)} if P.TASKS else {}),
        **data_over,
    }
    out = results_dir(P, bench.folder)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    run = DenseRun(bench, dataset, scale, seeds, overrides, out, jobs(P))
    log(
        f"scale={scale} seeds={seeds} methods={P.METHODS}"
        + (f" jobs={run.jobs}" if hasattr(P, "JOBS") else "")
        + f"\nresults -> {out}"
    )
    return run


def data_table(data) -> pd.DataFrame:
    """Images per split; for the stand-in also the confounder's strength, corr, agree and object count."""
    sizes = {e: len(s) for e, s in {**data.train_envs, "val": data.val, "test": data.test}.items()}
    table = pd.DataFrame({"images": sizes})
    if "confound" in data.info:
        conf = pd.DataFrame(data.info["confound"]).T
        table = table.join(conf[["strength", "corr", "agree", "n_objects"]])
    return table


def paired_vs(both: pd.DataFrame, base: str, column: str) -> pd.DataFrame:
    """Paired Δ summary over `base` (report.paired_summary) with the paper's number of `column` inserted first."""
    summary = report.paired_summary(report.per_seed_delta(both, baseline=base))
    j = report.DATASETS.index(column)
    paper = [report.PAPER[m][j] if m in report.PAPER else float("nan") for m in summary.index]
    summary.insert(0, f"paper ({column})", paper)
    return summary


def run_label(d: Path) -> tuple[str, int]:
    """(method, seed) of a run directory OUT/METHOD/seedS-DIGEST; runs under OUT/plain/ are the plain MTL."""
    d = Path(d)
    return (PLAIN if d.parent.parent.name == "plain" else d.parent.name), int(d.name[4:].split("-")[0])


def shortcut_table(data, dirs, seg: str, depth: str, style: str) -> pd.DataFrame:
    """Mean and std over seeds, per method, of scenes.shortcut_accuracy on the test split: segmentation accuracy
    where the training class-depth shortcut holds (acc_agree), where it does not (acc_disagree), and the gap."""
    x, y = data.test[list(range(len(data.test)))]
    rows = []
    for d in dirs:
        method, seed = run_label(d)
        pred = load_trained(d)[0].predict(x)[seg].argmax(1).numpy()
        acc = scenes.shortcut_accuracy(pred, y[seg].numpy(), y[depth].numpy(), style)
        rows.append({"method": method, "seed": seed, **acc})
    return pd.DataFrame(rows).groupby("method", sort=False)[["acc_agree", "acc_disagree", "gap"]].agg(["mean", "std"])


def prediction_inputs(data, dirs, seed: int, methods=("mtl", "mtcrl"), n: int = 3):
    """(x, y, {method: predictions}) of the first n test images for plots.dense_predictions, from the runs of
    `methods` with `seed` (validation-selected weights)."""
    shown = {run_label(d)[0]: d for d in dirs if run_label(d)[0] in methods and run_label(d)[1] == seed}
    x, y = data.test[list(range(min(n, len(data.test))))]
    return x, y, {m: load_trained(shown[m])[0].predict(x) for m in methods if m in shown}
