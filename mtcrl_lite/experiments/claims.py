"""The paper's claims, each with the verdict the run record supports: `make report` writes docs/RESULTS.md and the
claims table of README.md from results/record/runs.csv, so that no number in either is typed by hand
(tests/test_claims.py fails when the committed files differ from what the record gives).

A claim that compares methods reads its column of the record (a study's runs, paired by seed), the paired Δ over
the baseline with its 95 % t interval and the minimum detectable effect (MDE) of its seeds, and says:
"replicates" (the interval excludes 0 on the paper's side and holds the paper's value), "partially" (the right
sign, a smaller effect than the paper's), "does not replicate" (the opposite sign; or no effect shown and the paper's
value outside the interval), "undecided" (the interval holds both no effect and the paper's value),
"cannot be tested here" (no real data: stand-ins † only) or "not in the record yet" (its runs are not recorded).
"""

from __future__ import annotations

import argparse
import functools
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mtcrl_lite.analysis import record as R
from mtcrl_lite.analysis.plots import claims_forest
from mtcrl_lite.analysis.stats import probability_of_improvement
from mtcrl_lite.analysis.tables import PAPER, label, paired_summary, per_seed_delta
from mtcrl_lite.data.catalogue import PAPER_COLUMNS, STAND_INS
from mtcrl_lite.experiments.reliance_study import PAPER_TABLE1
from mtcrl_lite.paths import REPO_ROOT

RESULTS_MD = REPO_ROOT / "docs" / "RESULTS.md"
README = REPO_ROOT / "README.md"
FIGURE = REPO_ROOT / "docs" / "figures" / "claims.png"  # made from FIGURE_CSV, which the drift test compares
FIGURE_CSV = FIGURE.with_suffix(".csv")
BEGIN, END = "<!-- claims:begin (make report) -->", "<!-- claims:end -->"
# paper column -> (study folder of the record, registry dataset of its runs, stand-in †, index into
# analysis.tables.PAPER's rows), from the data catalogue: a dataset with a stand-in style cannot be had here
COLUMNS = {
    name: (e.folder, STAND_INS[0] if e.stand_in_style else e.name, bool(e.stand_in_style), i)
    for i, (name, e) in enumerate(PAPER_COLUMNS.items())
}


@dataclass
class Verdict:
    verdict: str
    number: str  # the key number with its interval, or "—"
    detail: str  # a paragraph of Markdown for docs/RESULTS.md
    deltas: list = field(default_factory=list)  # the paired comparisons behind it (rows of the claims figure)


@dataclass
class Claim:
    key: str
    statement: str
    notebook: str
    judge: object  # (record) -> Verdict


def fmt(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:+.2f}"


def compare(record: pd.DataFrame, column: str, method: str, baseline: str = "mtl"):
    """(summary row of `method` − `baseline` in a paper column, or None) from the record."""
    study, dataset, _, _ = COLUMNS[column]
    runs = R.column(record, study, dataset=dataset)
    if runs.empty or not {method, baseline} <= set(runs.method):
        return None
    table = paired_summary(per_seed_delta(runs, baseline=baseline))
    return table.loc[method] if method in table.index else None


def judge_delta(row, paper: float, what: str, short: str = "", unit: str = " %") -> Verdict:
    if row is None:
        return Verdict("not in the record yet", "—", f"{what}: its runs are not in the record; run its notebook.")
    lo, hi, mde, n = row.ci95_low, row.ci95_high, row.mde, int(row.n)
    number = f"{fmt(row['mean'])}{unit} [{fmt(lo)}, {fmt(hi)}], MDE {abs(mde):.2f}, n = {n}"
    s = -1.0 if paper < 0 else 1.0  # read everything in the paper's direction
    near, far = sorted((s * lo, s * hi))
    if n < 2:
        verdict = "undecided"
    elif near > 0:
        verdict = "replicates" if abs(paper) <= far else "partially"  # the paper's effect, or more; else a smaller one
    elif far < 0:
        verdict = "does not replicate"  # the other way
    elif far < abs(paper):
        verdict = "does not replicate"  # no effect shown, and the paper's is outside the interval
    else:
        verdict = "undecided"  # the interval holds both no effect and the paper's
    detail = (
        f"{what}: Δ = {number} (paired by seed, 95 % t interval; MDE = the smallest true Δ these seeds detect with "
        f"power 0.8). The paper reports {paper:+.{1 if unit else 3}f}{unit}."
    )
    if verdict == "does not replicate" and near <= 0:
        bound = f"below {fmt(hi)}" if s > 0 else f"above {fmt(lo)}"
        detail += f" The interval excludes the paper's value: the true Δ is {bound}{unit} (95 %)."
    delta = {"comparison": short or what, "mean": row["mean"], "ci95_low": lo, "ci95_high": hi, "mde": abs(mde), "n": n,
             "paper": paper, "verdict": verdict}  # fmt: skip
    return Verdict(verdict, number, detail, [delta])


def beats_mtl(column: str):
    study, dataset, stand_in, i = COLUMNS[column]

    def judge(record):
        row = compare(record, column, "mtcrl")
        v = judge_delta(
            row,
            PAPER["mtcrl"][i],
            f"MT-CRL (G-IRM Var) over MTL on {column}{' †' if stand_in else ''}",
            f"MT-CRL − MTL, {column}",
        )
        if stand_in:
            extra = " The real dataset cannot be had here; this is its synthetic stand-in (†), not the dataset."
            number = v.number + (" †" if v.number != "—" else "")
            return Verdict("cannot be tested here", number, v.detail + extra, [])  # a stand-in is not in the figure
        return v

    return judge


def girm_order(record) -> Verdict:
    parts, verdicts, numbers, deltas = [], [], [], []
    short = {"mtcrl": "Var", "mtcrl-norm": "Norm", "mtcrl-nogirm": "none"}
    for column in ("Multi-MNIST", "MovieLens"):
        for better, worse in (("mtcrl", "mtcrl-norm"), ("mtcrl-norm", "mtcrl-nogirm")):
            row = compare(record, column, better, baseline=worse)
            if row is None:
                continue
            i = COLUMNS[column][3]
            pair = f"G-IRM {short[better]} − {short[worse]}, {column}"
            v = judge_delta(
                row, PAPER[better][i] - PAPER[worse][i], f"{label(better)} over {label(worse)}, {column}", pair
            )
            parts.append(v.detail)
            verdicts.append(v.verdict)
            deltas += v.deltas
            numbers.append(f"{column} {short[better]} − {short[worse]}: {v.number.split(', MDE')[0]} ({v.verdict})")
    if not verdicts:
        return Verdict("not in the record yet", "—", "G-IRM Var > Norm > none: its runs are not in the record yet.")
    return Verdict(combined(verdicts), "; ".join(numbers), " ".join(parts), deltas)


def combined(verdicts: list[str]) -> str:
    """One verdict from the verdicts of a claim's parts: all replicate, some do (or partially), else the worst."""
    if set(verdicts) == {"replicates"}:
        return "replicates"
    if {"replicates", "partially"} & set(verdicts):
        return "partially"
    return "does not replicate" if "does not replicate" in verdicts else "undecided"


def rho_gap(record, variant: str):
    """ρ_spur(MTL) − ρ_spur(STL) per seed (mean over tasks) in one of notebook 02's conditions, or None."""
    runs = record[(record.study == "02_synthetic_spurious") & (record.variant == variant)]
    per_seed = runs.groupby(["method", "seed"]).rho_spur.mean().unstack("method")
    return (per_seed.mtl - per_seed.stl).dropna() if {"stl", "mtl"} <= set(per_seed.columns) else None


def spurious_reliance(record) -> Verdict:
    """Table 1: ρ_spur of MTL − STL on the shifted validation split, paired by seed (mean over tasks), per dataset of
    notebook 02's correlated condition; the paper's gap is its Table 1's."""
    parts, verdicts, numbers = [], [], []
    for ds in ("multisem", "multimnist"):
        gap = rho_gap(record, f"{ds}/correlated")
        if gap is None:
            continue
        row = paired_summary(pd.DataFrame({"method": "mtl", "seed": gap.index, "delta": gap.to_numpy()})).loc["mtl"]
        paper = PAPER_TABLE1[(ds, "mtl")]["rho_spur"] - PAPER_TABLE1[(ds, "stl")]["rho_spur"]
        v = judge_delta(row, paper, f"ρ_spur of MTL − STL on {ds}, shifted validation", unit="")
        control = rho_gap(record, f"{ds}/control")
        if control is not None:  # the same gap without any label correlation in training: the encoder's share
            excess = paired_summary(pd.DataFrame({"method": "mtl", "delta": (gap - control).dropna()})).loc["mtl"]
            v.detail += (
                f" Without label correlation in training (the control) the gap is {fmt(control.mean())}; the excess "
                f"over it is {fmt(excess['mean'])} [{fmt(excess.ci95_low)}, {fmt(excess.ci95_high)}]."
            )
        parts.append(v.detail)
        verdicts.append(v.verdict)
        numbers.append(f"{ds}: {v.number.split(', MDE')[0]} ({v.verdict})")
    if not verdicts:
        return Verdict(
            "not in the record yet", "—", "Table 1 (ρ_spur of STL and MTL): run notebook 02 and make record."
        )
    return Verdict(combined(verdicts), "; ".join(numbers), " ".join(parts))


@functools.cache
def bayes_weights(mu: float = 1.5, strengths=(0.5, 0.6, 0.7, 0.9)) -> pd.DataFrame:
    from mtcrl_lite.analysis import theory

    return pd.DataFrame(
        {
            "bayes": [theory.bayes_slope_other(m, mu) for m in strengths],
            "linear": [theory.population_logistic(m, mu)[0][1] for m in strengths],
        },
        index=pd.Index(strengths, name="m_C"),
    )


def proposition1(record) -> Verdict:
    """Part (i) of Proposition 1 is a statement about a distribution: checked by computation (closed form and
    quadrature, analysis.theory), not by runs; parts (ii) and (iii) are notebook 01's."""
    w = bayes_weights()
    holds = bool(w.loc[0.5].abs().max() < 1e-6 and (w.drop(index=0.5) > 0).all().all())
    at = {col: "/".join(f"{round(v, 2) + 0.0:.2f}" for v in w[col]) for col in w}
    number = f"weight on Z2 at m_C = {'/'.join(f'{m:g}' for m in w.index)}: Bayes {at['bayes']}, linear {at['linear']}"
    detail = (
        f"Weight of the Bayes classifier of Y1 on the other task's factor Z2 (closed form 2μ(2m_C − 1)²) and of the "
        f"best linear classifier (quadrature), μ = 1.5: {number}. Zero exactly at m_C = 0.5, positive for every "
        f"m_C > 0.5, as the proposition says. Computed by `make report` from `mtcrl_lite.analysis.theory`, not from "
        f"runs; notebook 01 adds the finite-sample part (ii) and the shared-encoder part (iii)."
    )
    return Verdict("replicates" if holds else "does not replicate", number, detail)


def routing_drops(record) -> Verdict:
    runs = record[(record.method == "mtcrl") & (record.dataset == "multimnist")]  # where the paper shows it
    if runs.empty:
        return Verdict(
            "not in the record yet", "—", "The routing graph of MT-CRL on Multi-MNIST is not in the record yet."
        )
    dropped = runs.groupby("run").A_min.min().lt(0.1)
    share = float(dropped.mean())
    # the record shows that modules are dropped, not that they are the spurious ones: at most "partially"
    verdict = "partially" if share > 0 else "does not replicate"
    return Verdict(
        verdict,
        f"{share:.0%} of {len(dropped)} runs",
        f"Share of MT-CRL runs on Multi-MNIST whose final graph A has an entry below 0.1 (a module a task no longer "
        f"reads): "
        f"{share:.0%} of {len(dropped)} runs. Whether the dropped modules are the spurious ones is shown by notebooks "
        f"02 and 08 (ρ_spur, counterfactual flips), which the record does not hold yet.",
    )


def not_recorded(what: str, notebook: str):
    def judge(record):
        return Verdict(
            "not in the record yet",
            "—",
            f"{what}: the evidence is computed by notebook {notebook}, whose results are not run folders the record "
            f"holds yet; run `papermill notebooks/{notebook}.ipynb out.ipynb` to see it.",
        )

    return judge


CLAIMS = [
    Claim("P1", "Proposition 1: with a label confounder the Bayes predictor uses the other task's factor",
          "01_theory_proposition1", proposition1),
    Claim("T1", "MTL relies more on spurious features than STL (Table 1)", "02_synthetic_spurious",
          spurious_reliance),
    Claim("MM", "MT-CRL beats MTL on Multi-MNIST", "06_multimnist", beats_mtl("Multi-MNIST")),
    Claim("ML", "MT-CRL beats MTL on MovieLens", "07_movielens", beats_mtl("MovieLens")),
    Claim("TK", "MT-CRL beats MTL on Taskonomy", "03_taskonomy", beats_mtl("Taskonomy")),
    Claim("CS", "MT-CRL beats MTL on CityScapes", "04_cityscapes", beats_mtl("CityScape")),
    Claim("NY", "MT-CRL beats MTL on NYUv2", "05_nyuv2", beats_mtl("NYUv2")),
    Claim("GI", "G-IRM Var > Norm > none", "06_multimnist", girm_order),
    Claim("RG", "The routing graph drops spurious modules", "08_ablations", routing_drops),
    Claim("GE", "MovieLens modules align with genres", "07_movielens",
          not_recorded("Module word lists", "07_movielens")),
    Claim("SIM", "Task similarity can be read from A", "07_movielens",
          not_recorded("Genre similarity from A", "07_movielens")),
]  # fmt: skip


def judge_all(record: pd.DataFrame) -> list[tuple[Claim, Verdict]]:
    return [(c, c.judge(record)) for c in CLAIMS]


def figure_table(judged) -> pd.DataFrame:
    """Every paired comparison behind a verdict (real columns only), one row each: the claims figure's data."""
    rows = [{"claim": c.key, **d} for c, v in judged for d in v.deltas]
    cols = ["claim", "comparison", "mean", "ci95_low", "ci95_high", "mde", "n", "paper", "verdict"]
    return pd.DataFrame(rows, columns=cols)


def figure_csv(judged) -> str:
    return figure_table(judged).to_csv(index=False, float_format="%.6g")


def claims_table(judged) -> str:
    rows = ["| # | claim | verdict | key number | notebook |", "|---|---|---|---|---|"]
    for c, v in judged:
        rows.append(f"| {c.key} | {c.statement} | **{v.verdict}** | {v.number} | `{c.notebook}` |")
    return "\n".join(rows)


def record_summary(record: pd.DataFrame) -> str:
    if record.empty:
        return "The record is empty."
    by = record.groupby("study").agg(runs=("run", "nunique"), methods=("method", "nunique"), seeds=("seed", "nunique"))
    lines = ["| study | runs | methods | seeds |", "|---|---|---|---|"]
    lines += [f"| {s} | {r.runs} | {r.methods} | {r.seeds} |" for s, r in by.iterrows()]
    return "\n".join(lines)


AGGREGATORS = ("upgrad", "imtl-g", "aligned-mtl", "mgda")


def run_scores(record: pd.DataFrame) -> pd.DataFrame:
    """Per run of the real columns: the mean over tasks of the primary test metric, signed so higher is better."""
    real = [(s, d) for s, d, stand_in, _ in COLUMNS.values() if not stand_in]
    rows = pd.concat([record[(record.study == s) & (record.dataset == d) & (record.variant == "")]
                      for s, d in real]) if real else record.iloc[0:0]  # fmt: skip
    signed = rows.test.where(rows.higher_is_better.astype(str) == "True", -rows.test)
    return rows.assign(score=signed).groupby(["dataset", "method", "seed"], as_index=False).score.mean()


def improvement_table(record: pd.DataFrame) -> str:
    """P(MT-CRL > X) over the real columns for X = MTL, STL and the best aggregator (by mean Δ over MTL), with a
    stratified paired bootstrap interval; a row for each X the record pairs with MT-CRL by seed."""
    scores = run_scores(record)
    if scores.empty:
        return "(no real column in the record yet)"
    by = {m: {d: g.set_index("seed").score for d, g in s.groupby("dataset")} for m, s in scores.groupby("method")}
    others = ["mtl", "stl"]
    aggs = [a for a in AGGREGATORS if a in by and "mtl" in by]
    if aggs:
        gain = {a: pd.concat([by[a][d] - by["mtl"][d] for d in by[a] if d in by["mtl"]]).mean() for a in aggs}
        others.append(max(gain, key=gain.get))
    lines = ["| X | datasets | P(MT-CRL > X) [95 % bootstrap] |", "|---|---|---|"]
    for other in [o for o in others if o in by and "mtcrl" in by]:
        pairs = {}
        for d in by["mtcrl"]:
            if d in by[other]:
                common = by["mtcrl"][d].index.intersection(by[other][d].index)
                if len(common):
                    pairs[d] = (by["mtcrl"][d][common].to_numpy(), by[other][d][common].to_numpy())
        if not pairs:
            continue
        p, lo, hi = probability_of_improvement(
            {d: a for d, (a, _) in pairs.items()}, {d: b for d, (_, b) in pairs.items()}
        )
        lines.append(f"| {label(other)} | {', '.join(sorted(pairs))} | {p:.2f} [{lo:.2f}, {hi:.2f}] |")
    return "\n".join(lines) if len(lines) > 2 else "(no method paired with MT-CRL by seed in the record yet)"


def seed_spread(record: pd.DataFrame) -> str:
    if record.empty:
        return "(no runs recorded)"
    std = record.groupby(["study", "method", "task", "metric"]).test.std(ddof=1).dropna()
    if std.empty:
        return "(no method has two seeds yet)"
    by = std.groupby(level=["study", "metric"]).median()
    lines = ["| study | metric | seed-to-seed std |", "|---|---|---|"]
    return "\n".join(lines + [f"| {s} | {m} | {v:.4f} |" for (s, m), v in by.items()])


TEMPLATE = (Path(__file__).parent / "results_template.md").read_text


def results_md(record: pd.DataFrame, judged=None) -> str:
    judged = judged or judge_all(record)
    details = "\n\n".join(f"### {c.key}. {c.statement}\n\n**{v.verdict}.** {v.detail}" for c, v in judged)
    revisions = ", ".join(sorted(str(r)[:7] for r in record.git_revision.dropna().unique())) or "none"
    return TEMPLATE().format(
        claims=claims_table(judged),
        details=details,
        summary=record_summary(record),
        revisions=revisions,
        spread=seed_spread(record),
        improvement=improvement_table(record),
    )


def verdict_paragraph(judged, record: pd.DataFrame) -> str:
    """One paragraph: how many claims have each verdict on the record as it stands, and the decided ones."""
    counts = pd.Series([v.verdict for _, v in judged]).value_counts()
    tally = ", ".join(f"{n} {verdict}" for verdict, n in counts.items())
    decided = [f"{c.statement} ({c.key}): **{v.verdict}**, {v.number}" for c, v in judged if v.number != "—"]
    text = f"On the committed record ({record.run.nunique()} runs), the {len(judged)} claims stand as: {tally}."
    return text + (" " + "; ".join(decided) + "." if decided else "")


def readme_with_claims(readme: str, record: pd.DataFrame, judged=None) -> str:
    if BEGIN not in readme or END not in readme:
        raise ValueError(f"README.md lacks the markers {BEGIN} ... {END} around its claims table")
    judged = judged or judge_all(record)
    table = verdict_paragraph(judged, record) + "\n\n" + claims_table(judged)
    return re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda m: f"{BEGIN}\n{table}\n{END}", readme, flags=re.S)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m mtcrl_lite.experiments.claims", description=__doc__.split("\n\n")[0])
    p.add_argument("--record", default=str(R.RECORD))
    p.add_argument(
        "--check", action="store_true", help="exit 1 if RESULTS.md, README.md or the figure's data would change"
    )
    args = p.parse_args(argv)
    record = R.read(args.record)
    judged = judge_all(record)
    new = {
        RESULTS_MD: results_md(record, judged),
        README: readme_with_claims(README.read_text(), record, judged),
        FIGURE_CSV: figure_csv(judged),
    }
    stale = [path for path, text in new.items() if not path.exists() or path.read_text() != text]
    if not args.check and (stale or not FIGURE.exists()):
        FIGURE.parent.mkdir(parents=True, exist_ok=True)
        claims_forest(figure_table(judged)).savefig(FIGURE, dpi=110, metadata={"Software": None})
        print(f"wrote {FIGURE}")
    if args.check:
        for path in stale:
            print(f"stale: {path} (run make report)", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        path.write_text(new[path])
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
