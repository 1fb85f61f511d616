"""The studies of the claims table (notebooks 07-10): one noise, several ways of training the
paper's U-Net with the same budget and seed, each measured on the main test set with the paper's
protocol and recorded in results.json under "studies" (``claims`` turns them into rows).

``run_study`` trains by method (``claims.METHOD_NAMES``: a loss on noisy targets, clean targets,
Neighbor2Neighbor on single captures); ``run_capture_study`` by the capture budget's cases
(``capture``). A run whose settings match one already trained (the Gaussian N2N and clean-target
U-Nets of notebooks 03-05) is reloaded, not retrained.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from functools import partial

from ..data.capture import capture_cases
from ..evaluation.claims import METHOD_NAMES, target_and_loss
from ..config import Profile
from ..evaluation.protocol import data_sources, evaluate_run
from .experiment import record_results, train, update_results
from ..paper.noise import NoiseConfig
from ..training.runtime import Runtime


@dataclass
class Study:
    key: str  # the noise's tag: 'text', 'impulse', 'brown2'; 'capture'; 'single_gaussian'
    noise: NoiseConfig
    runs: dict  # method -> experiment.TrainedRun
    psnr: dict[str, float]  # method (and 'input') -> mean PSNR on ``test_set``
    test_set: str


def run_study(profile: Profile, noise: NoiseConfig, methods: tuple[str, ...], seed: int = 0,
              data_dir: str | None = None, rt: Runtime | None = None,
              progress: bool = True, key: str | None = None) -> Study:
    """A study of the claims table (``claims``): train (or resume, or reload) the U-Net on ``noise``
    for each of ``methods`` (l2, l1, l0 or n2n on noisy targets; clean; nb2nb on single captures),
    measure each on the main test set, and record them (results.json: each run, and the study under
    ``key``, by default the noise's tag); every network in the runtime ``rt`` (None: this machine's)."""
    rt = rt or Runtime.resolve()
    common = dict(seed=seed, noise=noise, rt=rt, progress=progress)
    targets = {m: target_and_loss(m) for m in methods}  # (an unknown method is named before any training)
    trainers = {m: (METHOD_NAMES[m], partial(train, "unet", target, profile, loss=loss, **common))
                for m, (target, loss) in targets.items()}
    return _study(profile, key or noise.tag, noise, trainers, seed, data_dir, rt)


def run_capture_study(profile: Profile, seed: int = 0, data_dir: str | None = None, rt: Runtime | None = None,
                      progress: bool = True) -> Study:
    """The capture budget (``capture``): the U-Net trained on each of the paper's three cases of
    ``profile.capture`` with the same steps, Gaussian noise at the profile's test level; measured
    and recorded as ``run_study`` does (study 'capture', methods 'case1'..'case3'), in the runtime
    ``rt`` (None: this machine's)."""
    rt = rt or Runtime.resolve()
    noise = profile.noise_config("gaussian")
    cases = capture_cases(*profile.capture)
    common = dict(seed=seed, noise=noise, rt=rt, progress=progress)
    trainers = {c.name: (c.label, partial(train, "unet", "clean" if c.target == "average" else "noisy", profile,
                                          capture=c, **common)) for c in cases}
    extra = {"budget": profile.capture[0], "cases": {c.name: {"pairs": c.pairs, "label": c.label} for c in cases}}
    return _study(profile, "capture", noise, trainers, seed, data_dir, rt, extra)


def _study(profile: Profile, key: str, noise: NoiseConfig, trainers: dict, seed: int, data_dir: str | None,
           rt: Runtime, extra: dict | None = None) -> Study:
    """Train each of ``trainers`` (method -> (label, a function that trains it)), measure it on the
    main test set and record it; then record the study under ``key``."""
    sources = data_sources(data_dir)
    test_set = sources.main_test_set
    runs, psnr, steps = {}, {}, {}
    for method, (label, train_run) in trainers.items():
        print(f"--- U-Net, {noise.label}, {label}")
        run = train_run()
        results = evaluate_run(run.model, profile, seed=seed, noise=noise, sources=sources, rt=rt,
                               test_sets=(test_set,))
        facts = run.facts()
        record_results(profile, run.name, results, facts)
        runs[method], psnr[method], steps[method] = run, results[test_set].psnr, facts["steps"]
    psnr["input"] = results[test_set].psnr_input  # the same noisy images for every method
    entry = {"noise": noise.label, "settings": json.loads(json.dumps(dataclasses.asdict(noise))),
             "test_set": test_set, "images": len(results[test_set].names), "seed": seed,
             "comparable_with_paper": sources.comparable, "steps": steps,
             "psnr": {k: round(v, 4) for k, v in psnr.items()}, **(extra or {})}
    update_results(profile, lambda data: data.setdefault("studies", {}).__setitem__(key, entry))
    return Study(key, noise, runs, psnr, test_set)
