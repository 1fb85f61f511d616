"""What the notebooks, `make pretrained`, `make blindcheck` and `make bench` call: one function per step."""
