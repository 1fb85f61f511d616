"""The command line (`n2n`, `python -m n2n_core`): argument parsing, and each command a call into the
packages above."""
