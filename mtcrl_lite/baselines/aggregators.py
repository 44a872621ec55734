"""Gradient aggregators from torchjd (Jacobian descent, https://github.com/TorchJD/torchjd) for the T x P matrix of
per-task gradients of the shared parameters that `methods.SurgeryMethod` builds: one adapter for all of them.

Included are those that install from the package registry without a solver stack: UPGrad (needs quadprog +
qpsolvers, two small wheels), IMTL-G, Aligned-MTL and MGDA. CAGrad and Nash-MTL need cvxpy + ecos (a convex-solver
stack of several compiled packages) and are left out (docs/DECISIONS.md, "Aggregators").

Our PCGrad and GradVac stay in surgery.py: their task order comes from a generator seeded by the step (torchjd's
draws from the global RNG, which would shift dropout and the data order) and GradVac's EMA targets live in a
checkpointed buffer; tests/test_surgery.py checks them against torchjd's.
"""

from __future__ import annotations

from torchjd.aggregation import IMTLG, MGDA, AlignedMTL, UPGrad

# method name -> (torchjd class, what it is)
AGGREGATORS = {
    "upgrad": (UPGrad, "UPGrad (Quinton & Rey 2024)"),
    "imtl-g": (IMTLG, "IMTL-G (Liu et al. 2021)"),
    "aligned-mtl": (AlignedMTL, "Aligned-MTL (Senushkin et al. 2023)"),
    "mgda": (MGDA, "MGDA (Sener & Koltun 2018)"),
}


def make_aggregator(name: str):
    """A callable mapping a (T, P) gradient matrix to the (P,) update direction, with torchjd's defaults."""
    if name not in AGGREGATORS:
        raise ValueError(f"unknown aggregator {name!r}; valid: {sorted(AGGREGATORS)} (hp.aggregator)")
    return AGGREGATORS[name][0]()
