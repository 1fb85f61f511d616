"""Run configuration: frozen dataclasses and the three profiles (smoke, cpu, paper).

A profile fixes everything that decides a result; notebooks and the command line override single
fields with ``dataclasses.replace``. ``N2N_PROFILE`` in the environment overrides the profile a
notebook asks for, so one variable turns every notebook into a smoke test (as nbval runs them).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

from .paper.losses import LOSSES
from .paper.noise import NOISE_TYPES, NoiseConfig, paper_ranges

NOISE_KINDS = tuple(NOISE_TYPES)

PRECISIONS = ("auto", "fp32", "bf16")  # number formats of the networks (devices.resolve_precision)
PRECISION_NAMES = {"fp32": "float32", "bf16": "bfloat16"}
MODEL_NAMES = ("unet", "resnet")
TARGETS = ("noisy", "clean", "nb2nb")  # nb2nb: the neighbouring sub-image of a single capture (``neighbor``)
# the training method a target stands for, as run configurations record it
METHODS = {"noisy": "n2n", "clean": "clean", "nb2nb": "nb2nb"}
# the authors' follow-up code measures each test set under several noise draws
PAPER_REPEATS = (("kodak", 10), ("bsd300", 3), ("set14", 20))


@dataclass(frozen=True)
class ModelConfig:
    name: str = "unet"
    depth: int = 10  # resnet only
    width: int = 48  # resnet only
    channels: int = 3  # of the input and the output: 3 for colour (RGB), 1 for grey

    def __post_init__(self):
        if self.name not in MODEL_NAMES:
            raise ValueError(f"unknown model {self.name!r}; choose one of {', '.join(MODEL_NAMES)}")
        if self.channels not in (1, 3):
            raise ValueError(f"a model has 1 (grey) or 3 (RGB) channels, got {self.channels}")


@dataclass(frozen=True)
class TrainConfig:
    target: str = "noisy"  # "noisy": Noise2Noise; "clean": the discriminative baseline; "nb2nb": Neighbor2Neighbor
    loss: str = "l2"  # a key of losses.LOSSES: l2 (mean), l1 (median), l0 (annealed L0: mode)
    crop: int = 64
    batch_size: int = 8
    lr: float = 1e-3
    rampdown: float = 0.3  # fraction of the budget over which the learning rate ramps down to zero
    max_steps: int | None = None
    max_seconds: float | None = None  # wall-clock budget; training stops at whichever comes first
    val_every: int = 100  # steps
    checkpoint_every_seconds: float = 120.0
    seed: int = 0
    # decay of an exponential moving average of the weights, updated every step (None: no average).
    # Validation, the checkpoint's exported weights and every later use take the average, which is
    # near what the ramp-down gives at any point of a long run (shipped weights are exported mid-run)
    ema: float | None = None
    # Neighbor2Neighbor (target "nb2nb") only: the regulariser's weight at the end of training (it
    # rises linearly from 0; ``neighbor``); the authors' 2 (the one place it is set), 1 in the cpu profile
    nb2nb_gamma: float = 2.0

    def __post_init__(self):
        if self.target not in TARGETS:
            raise ValueError(f"unknown target {self.target!r}; choose one of {', '.join(TARGETS)}")
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; choose one of {', '.join(LOSSES)}")
        if self.target == "nb2nb" and (self.loss != "l2" or self.crop % 2):
            raise ValueError(f"Neighbor2Neighbor trains with its own L2 loss on even crops, not loss {self.loss!r} "
                             f"and crop {self.crop}")
        if self.max_steps is None and self.max_seconds is None:
            raise ValueError("give a training budget: max_steps, max_seconds or both")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise ValueError(f"max_seconds must be > 0, got {self.max_seconds}")
        for name in ("crop", "batch_size", "val_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.lr < float("inf"):  # (NaN fails too)
            raise ValueError(f"learning rate must be a finite number > 0, got {self.lr}")
        if self.ema is not None and not 0 < self.ema < 1:
            raise ValueError(f"ema (the moving average's decay per step) must be in (0, 1), got {self.ema}")
        if not 0 <= self.nb2nb_gamma < float("inf"):
            raise ValueError(f"nb2nb_gamma (the Neighbor2Neighbor regulariser's final weight) must be a number >= 0 "
                             f"(the authors': 2), got {self.nb2nb_gamma}")


@dataclass(frozen=True)
class DataConfig:
    patch_size: int = 96  # patches cut by notebook 01; training crops are taken from them
    train_patches: int = 4000
    val_patches: int = 32
    val_image_every: int = 25  # every n-th pool image is held out for validation

    def __post_init__(self):
        for name in ("patch_size", "train_patches", "val_patches"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.val_image_every < 2:
            raise ValueError(f"val_image_every must be >= 2, got {self.val_image_every}")


@dataclass(frozen=True)
class EvalConfig:
    """What the notebooks evaluate on (the protocol itself is ``evaluation.evaluate``'s)."""
    sets: tuple[str, ...] | None = None  # which available test sets (None: all)
    limit: int | None = None  # the first n images of each set only (smoke)
    limits: tuple[tuple[str, int], ...] = ()  # per-set limits that replace ``limit``, ((set, n), ...)
    crop: int | None = None  # centre-crop test images to this side (smoke)
    repeats: tuple[tuple[str, int], ...] = ()  # noise draws per image, ((set, n), ...); default 1
    # test sets on which the slow classical baselines (BM3D) run (None: every available set), and
    # on how many of their first images (None: all)
    baseline_sets: tuple[str, ...] | None = None
    baseline_limit: int | None = None

    def __post_init__(self):
        for field_name in ("repeats", "limits"):
            for name, n in getattr(self, field_name):
                if not isinstance(n, int) or n < 1:
                    raise ValueError(f"{field_name} for {name!r} must be an integer >= 1, got {n!r}")
        for name in ("limit", "baseline_limit"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1 or None, got {getattr(self, name)}")
        if self.crop is not None and self.crop < 11:
            raise ValueError(f"crop must be >= 11 px (the SSIM window), got {self.crop}")


@dataclass(frozen=True)
class Budget:
    """How long ``model`` trains on ``noise`` ('*': on every noise kind) in the number format
    ``precision`` ('*': in any): ``steps`` or ``seconds``; and the batch and learning rate of that
    budget where they are not ``train``'s (a bigger step pays where bfloat16 is native)."""
    model: str
    noise: str = "*"
    steps: int | None = None
    seconds: float | None = None
    precision: str = "*"
    batch_size: int | None = None
    lr: float | None = None

    def __post_init__(self):
        what = f"budget for {self.model}/{self.noise}"
        if self.model not in MODEL_NAMES:
            raise ValueError(f"budget for unknown model {self.model!r}; choose from {', '.join(MODEL_NAMES)}")
        if self.noise != "*" and self.noise not in NOISE_KINDS:
            raise ValueError(f"budget for unknown noise {self.noise!r}; choose from {', '.join(NOISE_KINDS)} or '*'")
        if self.precision != "*" and self.precision not in PRECISION_NAMES:
            raise ValueError(f"{what}: unknown precision {self.precision!r}; choose from "
                             f"{', '.join(PRECISION_NAMES)} or '*'")
        if (self.steps is None) == (self.seconds is None):
            raise ValueError(f"{what}: give steps or seconds, one of them")
        value = self.steps if self.steps is not None else self.seconds
        if not value > 0:
            raise ValueError(f"{what} must be > 0, got {value}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"{what}: batch_size must be >= 1, got {self.batch_size}")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"{what}: learning rate must be > 0, got {self.lr}")


@dataclass(frozen=True)
class Checks:
    """The pass/fail thresholds the notebooks end with (dB)."""
    min_gain_db: float = 7.0  # notebooks 02-04: over the noisy input, main test set
    max_clean_gap_db: float = 0.2  # notebook 04: how much better clean targets may be than noisy ones
    # notebook 05 (Table 1): over the noisy input per noise kind, and how far apart noisy and clean
    # targets may be, either way, on any test set
    table_gain_db: tuple[tuple[str, float], ...] = (("gaussian", 7.0), ("poisson", 6.0), ("bernoulli", 10.0))
    max_table_gap_db: float = 0.3
    own_gain_db: float = 5.0  # notebooks 06 and 09: over the noisy captures, held-out images
    # notebooks 07-10: the best model of each study (L1 on text, L0 on impulse noise, N2N on brown
    # noise, Nb2Nb on single captures, each case of the capture budget) over the noisy input, main
    # test set. Whether the paper's claims hold is the claims table's to say (``claims``), not a
    # failure of the run
    study_gain_db: float = 3.0


@dataclass(frozen=True)
class RealNoise:
    """Notebook 11 (real microscope noise, ``studies.realnoise``): the one budget of all its U-Nets
    (steps, batch, learning rate, crop: the same for every method), and the simulated stand-in it
    runs on where the real captures are missing (scenes of ``standin_side`` px, ``standin_captures``
    captures each)."""
    steps: int = 1500
    batch_size: int = 8
    lr: float = 1e-3
    crop: int = 64
    # the learning rate of the shipped weights' fine-tuning: below ``lr``, which undoes what they learnt
    # before it helps (docs/real-noise.md)
    finetune_lr: float = 1e-4
    standin_side: int = 256
    standin_captures: int = 10

    def __post_init__(self):
        for name in ("steps", "batch_size", "crop", "standin_side"):
            if getattr(self, name) < 1:
                raise ValueError(f"realnoise {name} must be >= 1, got {getattr(self, name)}")
        if self.crop % 2 or self.crop > self.standin_side:
            raise ValueError(f"realnoise crop must be even (Neighbor2Neighbor) and at most the stand-in's side "
                             f"{self.standin_side}, got {self.crop}")
        if self.standin_captures < 2:
            raise ValueError(f"the stand-in needs at least 2 captures per scene, got {self.standin_captures}")
        for name in ("lr", "finetune_lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"realnoise {name} must be > 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class Profile:
    name: str
    data: DataConfig
    train: TrainConfig
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    resnet: ModelConfig = field(default_factory=lambda: ModelConfig("resnet"))
    unet: ModelConfig = field(default_factory=lambda: ModelConfig("unet"))
    checks: Checks = field(default_factory=Checks)
    eval: EvalConfig = field(default_factory=EvalConfig)
    # budgets that replace the one of ``train``: the first that names the model and the noise kind,
    # else the first that names the model and '*'
    budgets: tuple[Budget, ...] = ()
    own_steps: int = 1500  # notebook 06 (your own data): U-Net steps on the pairs folder
    # notebook 10 (``capture``): the budget of noisy captures and the captures per scene of cases
    # 1-2 (the paper's: 2000 and 20)
    capture: tuple[int, int] = (200, 20)
    realnoise: RealNoise = field(default_factory=RealNoise)  # notebook 11

    def model(self, name: str) -> ModelConfig:
        if name not in MODEL_NAMES:
            raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
        return getattr(self, name)

    def budget(self, model: str, noise: str, precision: str | None = None) -> Budget | None:
        """The budget of ``model`` on the noise kind ``noise`` in ``precision`` (a resolved one, 'fp32'
        or 'bf16'; None: the budgets for any precision only), None for ``train``'s own."""
        for wanted in (noise, "*"):
            for budget in self.budgets:
                if budget.model == model and budget.noise == wanted and budget.precision in ("*", precision):
                    return budget
        return None

    def train_config(self, model: str, noise: str | None = None, precision: str | None = None) -> TrainConfig:
        """The training settings of ``model`` on ``noise`` (default: the profile's) in ``precision``:
        ``train`` with the budget of ``budgets`` if one applies (steps replace any time budget;
        seconds replace ``train``'s seconds; its batch and learning rate, if given, ``train``'s)."""
        self.model(model)  # validates the name
        budget = self.budget(model, self.noise_config(noise).kind, precision)
        if budget is None:
            return self.train
        step = {k: v for k, v in (("batch_size", budget.batch_size), ("lr", budget.lr)) if v is not None}
        if budget.steps is not None:
            return dataclasses.replace(self.train, max_steps=int(budget.steps), max_seconds=None, **step)
        return dataclasses.replace(self.train, max_seconds=budget.seconds, **step)

    def run_settings(self, model: str, noise: str | None = None, target: str = "noisy", seed: int = 0,
                     max_steps: int | None = None, max_seconds: float | None = None, precision: str | None = None,
                     **fields) -> TrainConfig:
        """The training settings of one run (the notebooks' and ``n2n train``'s) in ``precision``
        (resolved): ``train_config`` with its target and seed, the other ``TrainConfig`` fields that
        are given (None: the profile's), and a budget that replaces the profile's when ``max_steps``
        or ``max_seconds`` is given."""
        given = {k: v for k, v in fields.items() if v is not None}
        cfg = dataclasses.replace(self.train_config(model, noise, precision), target=target, seed=seed, **given)
        if max_steps is not None or max_seconds is not None:
            cfg = dataclasses.replace(cfg, max_steps=max_steps, max_seconds=max_seconds)
        return cfg

    def noise_config(self, kind: str | None = None) -> NoiseConfig:
        """The profile's noise settings with ``kind`` selected (default: the profile's own kind)."""
        return self.noise if kind is None else dataclasses.replace(self.noise, kind=kind)


PROFILES = {
    # seconds of training per notebook: for tests (nbval) and a first look
    "smoke": Profile(
        "smoke",
        DataConfig(patch_size=48, train_patches=64, val_patches=4),
        TrainConfig(crop=32, batch_size=4, max_steps=80, val_every=20),
        # seconds of training: the checks only catch a broken pipeline (a NaN fails any; 80 steps on
        # notebook 10's 4 scenes can end below the noisy input, hence negative margins)
        checks=Checks(min_gain_db=-3.0, max_clean_gap_db=3.0, max_table_gap_db=5.0, own_gain_db=-3.0, study_gain_db=-6.0,
                      table_gain_db=(("gaussian", -3.0), ("poisson", -3.0), ("bernoulli", -3.0))),
        own_steps=80,
        capture=(40, 10),
        realnoise=RealNoise(steps=20, batch_size=4, crop=32, standin_side=48, standin_captures=4),
        eval=EvalConfig(limit=2, crop=96),
    ),
    # the default of `make all`: fixed budgets on a 2-core CPU, trained at the test level (blind
    # training needs a longer budget to match it); small batches, which learned most per second in
    # float32; lr 5e-4, since the paper's 1e-3 diverged at batch 2; step budgets for the U-Nets so
    # that noisy and clean targets get equal steps. Where bfloat16 is the faster format (AMX, AMD
    # AVX512-BF16; devices.fast_bf16) a bigger step pays: the Gaussian U-Nets take batches of 8 at
    # lr 1e-3, and the ResNet gives them half of its time, so that `make all` takes no longer there.
    # The measurements behind each choice: docs/measuring.md, "Profiles and their budgets".
    "cpu": Profile(
        "cpu",
        DataConfig(),
        # Neighbor2Neighbor's regulariser at weight 1, not the authors' 2 (meant for 100 epochs): at
        # these budgets 1 measured better on Kodak in each of four runs (docs/claims.md)
        TrainConfig(crop=64, batch_size=2, lr=5e-4, max_seconds=300, val_every=500,  # the ResNet's 300 s
                    nb2nb_gamma=1.0),
        # with noisy Bernoulli targets the masked loss sees half of the pixels, so N2N learns more
        # slowly and needs as many steps as Gaussian noise to come within the check's max_clean_gap_db
        budgets=(Budget("unet", "gaussian", steps=3000, precision="bf16", batch_size=8, lr=1e-3),
                 Budget("resnet", seconds=100, precision="bf16"),
                 Budget("unet", "gaussian", steps=4000), Budget("unet", "poisson", steps=1800),
                 Budget("unet", "bernoulli", steps=4000),
                 # the studies of notebooks 07-08 (text, impulse, brown noise): the Gaussian U-Net's (notebooks
                 # 09-10 train on Gaussian and Poisson noise: those noises' budgets); brown noise with twice
                 # the crops per step: correlated noise makes noisy targets' gradients noisier, and 16 crops
                 # narrowed N2N's gap to clean targets at both widths (docs/claims.md)
                 Budget("unet", "brown", steps=3000, precision="bf16", batch_size=16, lr=1e-3),
                 Budget("unet", "*", steps=3000, precision="bf16", batch_size=8, lr=1e-3),
                 Budget("unet", "*", steps=4000)),
        # Table 1 on this budget: BSD300 on its first 20 images, BM3D (tens of seconds per Kodak
        # image on a CPU) on the first 2 Kodak images; `python -m n2n_core eval` measures the full sets
        eval=EvalConfig(sets=("kodak",), limits=(("bsd300", 20),), baseline_sets=("kodak",), baseline_limit=2),
    ),
    # the paper's recipe (released code): 256x256 crops, batch 4, lr 3e-4, 300k iterations,
    # blind sigma ~ U(0, 50); RED30 with 128 features. Meant for a GPU.
    "paper": Profile(
        "paper",
        DataConfig(patch_size=288, train_patches=8000, val_patches=64),  # 2 GB of uint8 patches
        TrainConfig(crop=256, batch_size=4, lr=3e-4, max_steps=300_000, val_every=5000,
                    checkpoint_every_seconds=600.0),
        NoiseConfig(**paper_ranges()),
        ModelConfig("resnet", depth=30, width=128),
        checks=Checks(max_clean_gap_db=0.1),
        eval=EvalConfig(repeats=PAPER_REPEATS),
        capture=(2000, 20),
        realnoise=RealNoise(steps=50_000, batch_size=4, lr=3e-4, crop=256),
    ),
    # the shipped weights (checkpoints/pretrained/, `make pretrained`): the paper's U-Net and recipe
    # with blind noise, trained in chunks over sessions on whatever machine there is. Crops of 128
    # rather than the paper's 256, since at a fixed number of pixels smaller steps learned faster
    # (docs/pretrained.md). A moving average of the weights makes the weights exported
    # mid-run (after a session's chunk) close to what the ramp-down gives at the end.
    "pretrained": Profile(
        "pretrained",
        DataConfig(patch_size=144, train_patches=12000, val_patches=48, val_image_every=25),
        TrainConfig(crop=128, batch_size=4, lr=5e-4, max_steps=60_000, val_every=1000,
                    checkpoint_every_seconds=300.0, ema=0.999),
        NoiseConfig(**paper_ranges("gaussian", "poisson")),
    ),
}


def get_profile(name: str) -> Profile:
    """The named profile; ``N2N_PROFILE`` in the environment wins (see the module docstring)."""
    override = os.environ.get("N2N_PROFILE")
    if override and override != name:
        print(f"N2N_PROFILE={override} overrides profile {name!r}")
        name = override
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}")
    return PROFILES[name]


def to_dict(obj) -> dict:
    return dataclasses.asdict(obj)
