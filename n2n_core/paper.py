"""The paper's numbers (../PAPER.md): Table 1 and the released code's U-Net results, PSNR in dB."""

# Table 1, Gaussian sigma=25 (RED30): clean targets, noisy targets, BM3D
TABLE1_GAUSSIAN = {
    "kodak": {"clean": 32.50, "n2n": 32.48, "bm3d": 31.82},
    "bsd300": {"clean": 31.07, "n2n": 31.06, "bm3d": 30.34},
    "set14": {"clean": 31.31, "n2n": 31.28, "bm3d": 30.50},
}

# Released code, U-Net, 500k iterations, Gaussian sigma=25
RELEASED_UNET_GAUSSIAN = {
    "kodak": {"clean": 32.38, "n2n": 32.39},
    "bsd300": {"clean": 31.01, "n2n": 31.02},
}


def reference(run: str, test_set: str) -> float | None:
    """The paper's PSNR for one of our runs (``resnet_n2n_gaussian``, ``unet_clean_gaussian``...)."""
    model, target, noise = run.split("_")
    if noise != "gaussian":
        return None
    table = TABLE1_GAUSSIAN if model == "resnet" else RELEASED_UNET_GAUSSIAN
    return table.get(test_set, {}).get(target)
