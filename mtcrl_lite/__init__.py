"""mtcrl-lite: a small, reproducible replication of MT-CRL (Hu et al., NeurIPS 2022)."""
__version__ = "0.1.0"
