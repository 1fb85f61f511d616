"""The paper's numbers (../PAPER.md): Table 1 and the released code's U-Net results, PSNR in dB."""

# Table 1 of the paper, every column: clean targets, noisy targets (Noise2Noise) and the classical
# baseline (BM3D for Gaussian, BM3D after the Anscombe transform for Poisson, Deep Image Prior for
# Bernoulli). The Gaussian columns come from RED30; Poisson and Bernoulli from the U-Net.
TABLE1 = {
    "gaussian": {
        "kodak": {"clean": 32.50, "n2n": 32.48, "baseline": 31.82},
        "bsd300": {"clean": 31.07, "n2n": 31.06, "baseline": 30.34},
        "set14": {"clean": 31.31, "n2n": 31.28, "baseline": 30.50},
        "average": {"clean": 31.63, "n2n": 31.61, "baseline": 30.89},
    },
    "poisson": {
        "kodak": {"clean": 31.52, "n2n": 31.50, "baseline": 29.15},
        "bsd300": {"clean": 30.18, "n2n": 30.16, "baseline": 27.56},
        "set14": {"clean": 30.07, "n2n": 30.06, "baseline": 28.36},
        "average": {"clean": 30.59, "n2n": 30.57, "baseline": 28.36},
    },
    "bernoulli": {
        "kodak": {"clean": 33.01, "n2n": 33.17, "baseline": 30.78},
        "bsd300": {"clean": 31.04, "n2n": 31.16, "baseline": 28.97},
        "set14": {"clean": 31.51, "n2n": 31.72, "baseline": 30.67},
        "average": {"clean": 31.85, "n2n": 32.02, "baseline": 30.14},
    },
}
TABLE1_BASELINES = {"gaussian": "BM3D", "poisson": "BM3D + Anscombe", "bernoulli": "Deep Image Prior"}
# Table 1's rows and columns as tables and figures name them
METHODS = ("input", "baseline", "clean", "n2n")
METHOD_LABELS = {"input": "noisy input", "baseline": "baseline", "clean": "clean targets", "n2n": "noisy targets (N2N)"}
TEST_SET_LABELS = {"kodak": "Kodak", "bsd300": "BSD300", "set14": "Set14", "skimage": "scikit-image photos",
                   "average": "average"}


def baseline_label(noise: str) -> str:
    """The name of the classical baseline of ``noise`` in Table 1."""
    return TABLE1_BASELINES.get(noise, "baseline")

TABLE1_GAUSSIAN = {name: {"clean": v["clean"], "n2n": v["n2n"], "bm3d": v["baseline"]}
                   for name, v in TABLE1["gaussian"].items() if name != "average"}

# The paper's other synthetic experiments (Section 3): PSNR of the noisy input and of the U-Net
# trained on noisy targets with each loss, or on clean targets. Text: one image, the figure's
# overlay; impulse: 70% of the pixels replaced. Brown Gaussian noise: a figure only, N2N ending
# within about BROWN_GAP_DB of clean targets.
OTHER_EXPERIMENTS = {
    "text": {"input": 17.12, "l2": 26.89, "l1": 35.75, "clean": 35.82},
    "impulse": {"input": 8.89, "l2": 13.02, "l1": 16.36, "l0": 28.43, "clean": 28.86},
}
BROWN_GAP_DB = 0.1
# Neighbor2Neighbor (Huang et al., CVPR 2021), its Table: Gaussian sigma 25, Kodak, the same network
# trained three ways (not the Noise2Noise paper's figures)
NB2NB_PUBLISHED = {"gaussian": {"nb2nb": 32.08, "n2n": 32.41, "clean": 32.43}}

# Released code, U-Net, 500k iterations
RELEASED_UNET_GAUSSIAN = {
    "kodak": {"clean": 32.38, "n2n": 32.39},
    "bsd300": {"clean": 31.01, "n2n": 31.02},
}
RELEASED_UNET_POISSON = {
    "kodak": {"clean": 31.66, "n2n": 31.66},
    "bsd300": {"clean": 30.27, "n2n": 30.26},
}


def reference(run: str, test_set: str) -> float | None:
    """The paper's PSNR for one of our runs (``resnet_n2n_gaussian``, ``unet_clean_gaussian``...):
    Table 1 for the ResNet (RED30) and for U-Nets on Bernoulli noise, the released U-Net otherwise."""
    model, target, noise = run.split("_")
    if noise not in TABLE1:
        return None
    if model == "resnet":
        return TABLE1[noise].get(test_set, {}).get(target) if noise == "gaussian" else None
    released = {"gaussian": RELEASED_UNET_GAUSSIAN, "poisson": RELEASED_UNET_POISSON}.get(noise)
    if released is not None:
        return released.get(test_set, {}).get(target)
    return TABLE1[noise].get(test_set, {}).get(target)
