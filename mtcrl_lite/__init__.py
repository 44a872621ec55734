"""mtcrl-lite: a small, reproducible replication of MT-CRL (Hu et al., NeurIPS 2022).

The method is `mtcrl_lite.core` (torch only), re-exported here; the replication harness around it lives in the
sub-packages data, models, baselines, run, grid, analysis and experiments (docs/ARCHITECTURE.md)."""

from .core import MTCRLHParams, RoutedModel, Task, mtcrl_backward, mtcrl_loss, param_groups

__version__ = "0.1.0"
__all__ = ["MTCRLHParams", "RoutedModel", "Task", "mtcrl_backward", "mtcrl_loss", "param_groups"]
