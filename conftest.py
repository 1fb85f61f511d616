"""Test-session settings, shared by the unit tests and the notebooks that nbval runs (its kernels
inherit this process's environment): the notebooks run in the smoke profile, write into a
temporary folder rather than the user's checkpoints/ and reports/, and never download."""
import os
import tempfile

os.environ.setdefault("N2N_PROFILE", "smoke")
os.environ.setdefault("N2N_OUTPUT_DIR", tempfile.mkdtemp(prefix="n2n-test-"))
os.environ.setdefault("N2N_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
