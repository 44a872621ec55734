"""The networks every method trains: encoders per input type, heads and decoders, vanilla MTL, single-task and
the package's MT-CRL model (core.RoutedModel around the shared encoder), and their split across processes."""
from .networks import (MODELS, MTCRL, ModelConfig, RoutedModel, SharedMTL, SingleTask, build_model,  # noqa: F401
                       count_parameters, is_dense, make_heads, n_modules)
