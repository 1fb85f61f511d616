"""Noise2Noise (Lehtinen et al., ICML 2018) in PyTorch: the shared code of the notebooks."""
__version__ = "0.1.0"

from .checkpoint import load_model  # noqa: E402
from .config import get_profile  # noqa: E402

__all__ = ["load_model", "get_profile", "__version__"]
