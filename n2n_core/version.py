"""The version of n2n_core, recorded in every checkpoint (``checkpoint.library_versions``)."""
__version__ = "0.1.0"  # as pyproject.toml
