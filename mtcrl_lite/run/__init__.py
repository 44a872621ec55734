"""One training run: configs and presets, the runner, evaluation, checkpoints, guards and the run folder's files."""
