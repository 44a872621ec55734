"""Many runs: seed sweeps, the equal-budget hyper-parameter search and the launchers (local, SLURM)."""
