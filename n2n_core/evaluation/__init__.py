"""How a model is measured: the paper's protocol, BM3D, Table 1 and the claims table, denoising files,
figures."""
