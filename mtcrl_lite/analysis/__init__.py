"""Reading finished runs: paired deltas and tables, plots, spurious-reliance measures, the routing graph's
interpretation and Proposition 1's numerics."""
