"""Search-space metadata on config fields: one declaration per field, read by the search (search.py).

    lr: float = hp(1e-3, 1e-4, 1e-2, "Adam learning rate")             # log-uniform (both bounds > 0)
    anneal_steps: int = hp(100, 0, 1000, "...")                         # uniform integer in [0, 1000]
    module_norm: str = hp("none", choices=("none", "batch"), doc="...")  # uniform choice
    girm: str = hp("var", doc="...")                                    # documented, never searched

Method hyper-parameters (methods.py) and the shared fields of the run config (train.lr, train.weight_decay,
model.width, model.n_modules, model.module_norm) use the same `hp`, so every range lives next to its default.
`kinds` restricts a field to the methods whose model is of one of these kinds (model.n_modules, K, is MT-CRL's).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

# Validity rules of numeric fields (a value outside is an error before training, naming the --set that fixes it).
COUNT, NONNEG, POSITIVE, FRACTION, FREE = ">= 1", ">= 0", "> 0", "in [0, 1]", "finite"


def hp(default, lo=None, hi=None, doc: str = "", *, choices=None, kinds=None, valid=None):
    """A field with its default and its search range: (lo, hi) for numbers (log-uniform if both bounds are > 0 and
    the field is a float, a uniform integer if it is an int), or `choices` for a categorical. Without either the
    field is documented but not searched. `valid` is the rule every value must meet (COUNT, NONNEG, POSITIVE,
    FRACTION or FREE), checked by run.config.validate_config."""
    if valid not in (None, COUNT, NONNEG, POSITIVE, FRACTION, FREE):
        raise ValueError(f"hp(): unknown validity rule {valid!r}")
    if choices is not None and (lo is not None or hi is not None):
        raise ValueError("hp(): give a range (lo, hi) or choices, not both")
    if (lo is None) != (hi is None) or (lo is not None and lo > hi):
        raise ValueError(f"hp(): invalid range ({lo}, {hi})")
    meta = {
        "range": (lo, hi),
        "doc": doc,
        "choices": None if choices is None else tuple(choices),
        "kinds": None if kinds is None else tuple(kinds),
        "valid": valid,
    }
    if isinstance(default, (list, dict, set)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Range:
    """The search range of one config field, `key` = "section.name"."""

    key: str
    type: type
    lo: float | None = None
    hi: float | None = None
    choices: tuple | None = None
    kinds: tuple | None = None
    doc: str = ""

    @property
    def distribution(self) -> str:
        if self.choices is not None:
            return "choice"
        if self.type is int:
            return "int"
        return "log-uniform" if self.lo > 0 and self.hi > 0 else "uniform"

    def sample(self, rng):
        """One value drawn with numpy Generator `rng`, of the field's type."""
        kind = self.distribution
        if kind == "choice":
            return self.choices[int(rng.integers(len(self.choices)))]
        if kind == "int":
            return int(rng.integers(int(self.lo), int(self.hi) + 1))
        if kind == "log-uniform":
            v = math.exp(rng.uniform(math.log(self.lo), math.log(self.hi)))
        else:
            v = rng.uniform(self.lo, self.hi)
        return min(max(float(f"{v:.3g}"), self.lo), self.hi)  # 3 significant digits, readable in tables

    def contains(self, value) -> bool:
        if self.choices is not None:
            return value in self.choices
        return isinstance(value, self.type) and self.lo <= value <= self.hi


def ranges(obj, section: str, hints: dict[str, type]) -> list[Range]:
    """The searchable fields of dataclass instance `obj` (those declared with a range or choices)."""
    out = []
    for f in dataclasses.fields(obj):
        meta = f.metadata
        lo, hi = meta.get("range", (None, None))
        if lo is None and meta.get("choices") is None:
            continue
        out.append(
            Range(
                f"{section}.{f.name}",
                hints[f.name],
                lo,
                hi,
                meta.get("choices"),
                meta.get("kinds"),
                meta.get("doc", ""),
            )
        )
    return out


def validity(obj) -> dict[str, str]:
    """{field name: its validity rule} of a config dataclass's hp() fields that declare one."""
    return {f.name: f.metadata["valid"] for f in dataclasses.fields(obj) if f.metadata.get("valid")}
