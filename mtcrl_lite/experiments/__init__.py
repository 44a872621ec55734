"""The studies behind the notebooks, named by study (ablations, dense benchmarks, extended table, spurious
reliance), and the notebooks' parameter validator."""
