"""Images in and out (formats, bit depths, modes), the test sets and their downloads, the patch sets, and the
sources a run trains on (one registry)."""
