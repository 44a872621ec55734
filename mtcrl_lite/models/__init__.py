"""The networks every method trains: encoders per input type, heads and decoders, vanilla MTL, single-task and
the package's MT-CRL model (core.RoutedModel around the shared encoder), and their split across processes."""

from .networks import (  # noqa: F401
    MODELS,
    MTCRL,
    ModelConfig,
    RoutedModel,
    SharedMTL,
    SingleTask,
    build_model,
    count_parameters,
    is_dense,
    make_heads,
    n_modules,
)
