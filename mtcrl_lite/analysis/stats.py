"""Statistics a verdict needs beside its interval: what the seeds could have detected, and how often one method
beats another across datasets.

* `mde_paired(sd, n)`: the minimum detectable effect of a paired comparison over n seeds whose per-seed differences
  have standard deviation sd: the smallest true mean difference a two-sided paired t test at level alpha detects with
  the given power (exact, through the noncentral t distribution). "No difference" then reads "none larger than MDE".
* `probability_of_improvement(x, y)`: P(X > Y) in rliable's sense (Agarwal et al. 2021): per dataset the
  Mann-Whitney statistic over all pairs of runs (ties count 1/2), averaged over datasets; with a stratified
  bootstrap interval that resamples seeds within each dataset, the same seeds for both methods (paired).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize
from scipy.stats import nct
from scipy.stats import t as student_t


def power_paired(effect: float, sd: float, n: int, alpha: float = 0.05) -> float:
    """Power of the two-sided paired t test at level alpha when the true mean difference is `effect`."""
    if n < 2 or not sd > 0:
        raise ValueError(f"power needs n >= 2 seeds and sd > 0, got n = {n}, sd = {sd}")
    df, q = n - 1, student_t.ppf(1 - alpha / 2, n - 1)
    nc = effect / (sd / math.sqrt(n))
    upper, lower = nct.sf(q, df, nc), nct.cdf(-q, df, nc)
    upper = (1.0 if nc > q else 0.0) if math.isnan(upper) else upper  # far tails: scipy gives nan
    lower = (1.0 if nc < -q else 0.0) if math.isnan(lower) else lower
    return float(upper + lower)


def mde_paired(sd: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest |mean difference| detected with probability `power` (same units as sd); nan if n < 2 or sd is
    not positive (nothing can be said)."""
    if n < 2 or not (isinstance(sd, (int, float)) and sd > 0 and math.isfinite(sd)):
        return float("nan")
    f = lambda d: power_paired(d, sd, n, alpha) - power
    hi = sd
    while f(hi) < 0:
        hi *= 2
    return float(optimize.brentq(f, 0.0, hi, xtol=1e-12 * sd))


def seeds_for_mde(sd: float, mde: float, alpha: float = 0.05, power: float = 0.8, most: int = 10_000) -> int:
    """The fewest seeds whose paired MDE is at most `mde` (most + 1 if even `most` seeds do not reach it)."""
    for n in range(2, most + 1):
        if mde_paired(sd, n, alpha, power) <= mde:
            return n
    return most + 1


def _poi(x: list[np.ndarray], y: list[np.ndarray]) -> float:
    per = []
    for a, b in zip(x, y):
        diff = a[:, None] - b[None, :]
        per.append(float(((diff > 0) + 0.5 * (diff == 0)).mean()))
    return float(np.mean(per))


def probability_of_improvement(
    x: dict[str, np.ndarray], y: dict[str, np.ndarray], reps: int = 2000, seed: int = 0, higher_is_better=True
) -> tuple[float, float, float]:
    """P(X > Y) over the datasets both have, and its 95 % stratified paired bootstrap interval (percentile).
    x, y: {dataset: scores by seed}, the same seeds in the same order for both methods within a dataset."""
    names = [d for d in x if d in y]
    if not names:
        raise ValueError("probability_of_improvement needs at least one dataset that both methods have")
    sign = 1.0 if higher_is_better else -1.0
    xs = [sign * np.asarray(x[d], float) for d in names]
    ys = [sign * np.asarray(y[d], float) for d in names]
    for d, a, b in zip(names, xs, ys):
        if a.shape != b.shape:
            raise ValueError(f"{d}: the two methods have {len(a)} and {len(b)} seeds; pair them by seed first")
    point = _poi(xs, ys)
    rng = np.random.default_rng(seed)
    boots = np.empty(reps)
    for r in range(reps):
        idx = [rng.integers(0, len(a), len(a)) for a in xs]
        boots[r] = _poi([a[i] for a, i in zip(xs, idx)], [b[i] for b, i in zip(ys, idx)])
    low, high = np.percentile(boots, [2.5, 97.5])
    return point, float(low), float(high)
