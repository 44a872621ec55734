"""Gradient aggregators from torchjd (Jacobian descent, https://github.com/TorchJD/torchjd) for the T x P matrix of
per-task gradients of the shared parameters that `methods.SurgeryMethod` builds: one adapter for all of them.

`AGGREGATORS` run with torchjd's defaults: UPGrad (needs quadprog + qpsolvers, two small wheels), IMTL-G,
Aligned-MTL and MGDA. `AGGREGATORS_WITH_HP` take hyper-parameters of their own (hp fields of their method in
methods.py, searched): CAGrad (cvxpy with the Clarabel solver), Nash-MTL (cvxpy with ECOS; stateful) and FairGrad
(scipy's least squares). cvxpy is installed as `cvxpy-base` plus exactly the two solvers torchjd calls
(docs/DECISIONS.md, "Aggregators").

Our PCGrad and GradVac stay in surgery.py: their task order comes from a generator seeded by the step (torchjd's
draws from the global RNG, which would shift dropout and the data order) and GradVac's EMA targets live in a
checkpointed buffer; tests/test_surgery.py checks them against torchjd's.
"""

from __future__ import annotations

import inspect

from cvxpy.error import SolverError
from torchjd.aggregation import IMTLG, MGDA, AlignedMTL, CAGrad, FairGrad, NashMTL, UPGrad

# method name -> (torchjd class, what it is)
AGGREGATORS = {
    "upgrad": (UPGrad, "UPGrad (Quinton & Rey 2024)"),
    "imtl-g": (IMTLG, "IMTL-G (Liu et al. 2021)"),
    "aligned-mtl": (AlignedMTL, "Aligned-MTL (Senushkin et al. 2023)"),
    "mgda": (MGDA, "MGDA (Sener & Koltun 2018)"),
}
AGGREGATORS_WITH_HP = {
    "cagrad": (CAGrad, "CAGrad (Liu et al. 2021)"),
    "nash-mtl": (NashMTL, "Nash-MTL (Navon et al. 2022)"),
    "fairgrad": (FairGrad, "FairGrad (Ban & Ji 2024)"),
}
SOLVER_ERRORS = (ValueError, SolverError)  # what a failed solve raises (UPGrad's QP: ValueError; cvxpy's solvers)


def make_aggregator(name: str, n_tasks: int | None = None, **options):
    """A callable mapping a (T, P) gradient matrix to the (P,) update direction: torchjd's class with `options` (its
    own arguments; none: torchjd's defaults) and, for those that ask for it (Nash-MTL), the number of tasks."""
    known = {**AGGREGATORS, **AGGREGATORS_WITH_HP}
    if name not in known:
        raise ValueError(f"unknown aggregator {name!r}; valid: {sorted(known)} (hp.aggregator)")
    cls = known[name][0]
    if "n_tasks" in inspect.signature(cls).parameters:
        if n_tasks is None:
            raise ValueError(f"aggregator {name!r} needs the number of tasks")
        options["n_tasks"] = n_tasks
    return cls(**options)
