"""Noise2Noise (Lehtinen et al., ICML 2018) in PyTorch: the shared code of the notebooks."""
from .version import __version__

__all__ = ["load_model", "get_profile", "__version__"]


def __getattr__(name: str):
    """``load_model`` and ``get_profile`` on first use: importing the package (and starting the
    command line) does not load torch, so Ctrl-C during start-up is handled like any other."""
    if name == "load_model":
        from .training.checkpoint import load_model
        return load_model
    if name == "get_profile":
        from .config import get_profile
        return get_profile
    raise AttributeError(f"module 'n2n_core' has no attribute {name!r}")
