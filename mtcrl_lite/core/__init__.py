"""The method alone: MT-CRL's routed architecture, objective and losses. Imports torch only, so that

    from mtcrl_lite import RoutedModel, mtcrl_loss, mtcrl_backward, MTCRLHParams, param_groups, Task

puts MT-CRL on your own encoder and heads without loading pandas, matplotlib or any data module."""

from .hparams import Range, hp
from .objective import MTCRLHParams, forward, girm_weight, mtcrl_backward, mtcrl_loss, param_groups
from .routing import RoutedModel
from .tasks import Task

__all__ = [
    "MTCRLHParams",
    "Range",
    "RoutedModel",
    "Task",
    "forward",
    "girm_weight",
    "hp",
    "mtcrl_backward",
    "mtcrl_loss",
    "param_groups",
]
