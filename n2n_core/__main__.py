"""`python -m n2n_core` (also installed as `n2n`): the command line of ``cli.main``. Nothing here
loads torch: ``main`` does, so that Ctrl-C while it loads is handled like any other."""
import sys

from .cli.main import main

if __name__ == "__main__":
    sys.exit(main())
