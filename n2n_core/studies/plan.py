"""The plan of `make all`: which notebooks it will execute, the path it takes on this machine, and how
long the run should take here; then one line before each notebook with the time left.

The projection is measured, not recorded: a few training steps of each distinct setting the planned
runs use (model, batch, crop, target), timed in the resolved runtime (device, number format, layout,
threads) with ``train.TrainStep`` as ``fit`` takes it, times each run's step budget (a run with a
time budget counts its seconds); plus evaluation, one timed inference of an image of the evaluated
size scaled to the megapixels each notebook evaluates; plus a fixed start per notebook, one timed
run of make all's papermill command on a one-cell notebook (``time_start``). Approximate by design: validation
during training, figures, BM3D and the data's first download are not counted, and a run counts its
steps whatever its data source (the capture budget's and the real captures' samplers cost about what
the patch sampler does). A run that an earlier notebook of the plan trains, or that is finished in
its checkpoint, counts no training (the notebooks reload it); an unfinished one counts what is left.

``notebook_runs`` is the one list of what each notebook trains, built from the functions the studies
train with (``experiment.study_run``, ``realnoise.real_settings``, ``yourdata.pairs_settings``) and the
notebooks' own ``parameters`` cells; tests/test_plan.py runs the studies with ``train_run`` recorded
and checks that they train exactly these runs.

The plan file (``reports/.plan.json``) holds each executed notebook's projected seconds; each
notebook's recipe reads it (``progress``: no torch, no package import beyond this module) and rescales
the time left by how the notebooks so far compared with their projection.
"""
from __future__ import annotations

import ast
import dataclasses
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent.parent / "notebooks"
WARMUP_STEPS, TIMED_STEPS = 2, 5


@dataclass(frozen=True)
class PlannedRun:
    """One training run of a notebook: its checkpoint name, what it trains and its budget (steps or
    seconds); ``mpix``: the megapixels the notebook evaluates it on."""
    name: str
    model: str
    target: str
    batch: int
    crop: int
    steps: int | None
    seconds: float | None
    mpix: float = 0.0

    @property
    def setting(self) -> tuple[str, int, int, str]:
        """What a step's time depends on: model, batch, crop, target."""
        return self.model, self.batch, self.crop, self.target


@dataclass(frozen=True)
class Timing:
    """What the projection multiplies: seconds per training step of each setting, seconds per evaluated
    megapixel of each model, and seconds of fixed start per notebook."""
    step_seconds: dict
    infer_seconds_per_mpix: dict
    overhead: float


# ----------------------------------------------------------------------------- the arithmetic
def run_seconds(run: PlannedRun, timing: Timing, done_steps: int = 0, done_seconds: float = 0.0) -> float:
    """Training time left of ``run``: its seconds budget, else its steps times the step's time."""
    if run.seconds is not None:
        return max(0.0, run.seconds - done_seconds)
    return max(0, run.steps - done_steps) * timing.step_seconds[run.setting]


def project(runs: dict[str, list[PlannedRun]], timing: Timing, trained: dict[str, tuple[int, float] | None],
            evaluated: dict[str, list[tuple[str, float]]]) -> dict[str, float]:
    """Projected seconds of each notebook (in the order of ``runs``): its runs' training left
    (``trained``: run name -> (steps, seconds) already done, None where it is finished), counted in
    the first notebook that names a run (the later ones reload it), its evaluation (model,
    megapixels) and the fixed start."""
    projected, seen = {}, set()
    for notebook, planned in runs.items():
        first = [run for run in planned if run.name not in seen and trained[run.name] is not None]
        seen.update(run.name for run in planned)
        train = sum(run_seconds(run, timing, *trained[run.name]) for run in first)
        infer = sum(mpix * timing.infer_seconds_per_mpix[model] for model, mpix in evaluated.get(notebook, ()))
        projected[notebook] = train + infer + timing.overhead
    return projected


def duration(seconds: float) -> str:
    """'2 h 05 min', '7 min', '40 s'."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


# --------------------------------------------------------------------------------- the runs
def notebook_parameters(notebook: str) -> dict:
    """The literals of a notebook's ``parameters`` cell (what `make all` runs it with, less the profile)."""
    path = NOTEBOOK_DIR / f"{notebook}.ipynb"
    cells = json.loads(path.read_text())["cells"]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    values = {}
    for node in ast.parse("".join(tagged[0]["source"]) if tagged else "").body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            values[node.targets[0].id] = ast.literal_eval(node.value)
    return values


def notebook_runs(profile, precision: str, seed: int = 0) -> dict[str, list[PlannedRun]]:
    """What each notebook trains in ``profile`` and the number format ``precision``, in the order
    of its calls (a run named twice is trained by the first and reloaded by the others)."""
    from ..config import TrainConfig
    from ..data.capture import capture_cases
    from ..evaluation.claims import target_and_loss
    from . import experiment, realnoise, yourdata

    def planned(name: str, model: str, cfg: TrainConfig) -> PlannedRun:
        return PlannedRun(name, model, cfg.target, cfg.batch_size, cfg.crop, cfg.max_steps,
                          None if cfg.max_steps is not None else cfg.max_seconds)

    def study(model: str, target: str, **given) -> PlannedRun:
        name, _, settings = experiment.study_run(model, target, profile, seed, **given)
        return planned(name, model, settings(precision))

    def methods(noise, names) -> list[PlannedRun]:
        return [study("unet", target, noise=noise, loss=loss) for target, loss in map(target_and_loss, names)]

    def pairs(name: str, notebook: str, source: str = "pairs") -> PlannedRun:
        steps = notebook_parameters(notebook).get("steps") or profile.own_steps
        return planned(name, "unet", yourdata.pairs_settings(profile.name, steps, seed, source))

    p = {name: notebook_parameters(name) for name in ("02_noise2noise_resnet", "05_paper_table",
                                                        "07_losses_text_impulse", "08_brown_noise", "09_single_capture")}
    sigma = p["02_noise2noise_resnet"]["sigma"]
    text = profile.noise_config("text").at_level(p["07_losses_text_impulse"]["text_p"])
    impulse = profile.noise_config("impulse").at_level(p["07_losses_text_impulse"]["impulse_p"])
    brown = p["08_brown_noise"]
    tag = _realnoise_tag()
    return {
        "00_quickstart": [],
        "01_data_augmentation": [],
        "02_noise2noise_resnet": [study("resnet", "noisy", sigma=sigma)],
        "03_noise2noise_unet": [study("unet", "noisy", sigma=sigma)],
        "04_discriminative_unet": [study("unet", "clean", sigma=sigma), study("unet", "noisy", sigma=sigma)],
        "05_paper_table": [study("unet", target, noise=noise) for noise in p["05_paper_table"]["noises"]
                           for target in ("noisy", "clean")],
        "06_your_own_data": [pairs("notebook06_unet_pairs", "06_your_own_data"),
                             pairs("notebook06_unet_pairs_finetuned", "06_your_own_data")],
        "07_losses_text_impulse": methods(text, ("l2", "l1", "clean")) + methods(impulse, ("l2", "l1", "l0", "clean")),
        "08_brown_noise": [run for width in brown["widths"] for run in methods(
            profile.noise_config("brown").at_level(brown["sigma"]).with_options(brown_width=width), ("n2n", "clean"))],
        "09_single_capture": [run for kind in p["09_single_capture"]["kinds"]
                              for run in methods(profile.noise_config(kind), ("clean", "n2n", "nb2nb"))]
                             + [pairs("notebook09_unet_single", "09_single_capture", "single")],
        "10_capture_budget": [study("unet", "clean" if case.target == "average" else "noisy",
                                    noise=profile.noise_config("gaussian"), capture=case)
                              for case in capture_cases(*profile.capture)],
        "11_real_noise": [planned(f"unet_{method}_{tag}", "unet", realnoise.real_settings(profile, method, seed))
                          for method in realnoise.TRAINED],
    }


def _realnoise_tag() -> str:
    """The data notebook 11 will find (``fmd.lookup``), without downloading or writing anything."""
    from ..data import fmd

    return "standin" if fmd.lookup()[0] == "standin" else "fmd"


# ------------------------------------------------------------------------------- evaluation
def notebook_evaluation(profile, runs: dict[str, list[PlannedRun]]) -> dict[str, list[tuple[str, float]]]:
    """What each notebook evaluates, as (model, megapixels): each trained run on the test sets its
    notebook measures (02-04: the profile's; 05, Table 1: every available set; 07-10: the main set;
    06 and 09: the three held-out photographs `n2n denoise` is given; 11: the two test scenes), and one
    whole test image per model of a before/after figure (00: the demo photograph)."""
    import contextlib
    import io

    import skimage.data

    from ..data.sets import EMBEDDED_TEST, find_data

    with contextlib.redirect_stdout(io.StringIO()):  # its line about downloads belongs to the notebooks
        sources = find_data(download=False)
    wanted = profile.eval.sets
    sets = {name: _megapixels(files, profile, name) for name, files in sources.test_sets.items()}
    main = sources.main_test_set
    one = _megapixels(sources.test_sets[main][:1], profile, main, repeats=False)
    own = _megapixels([Path(skimage.data.__file__).parent / name for name in EMBEDDED_TEST], profile, None)
    scope = {"profile": sum(v for k, v in sets.items() if wanted is None or k in wanted) or sets[main],
             "all": sum(sets.values()), "main": sets[main]}
    side = 512 if _realnoise_tag() == "fmd" else profile.realnoise.standin_side
    rules = {"00_quickstart": [("unet", _megapixels([Path(skimage.data.__file__).parent / EMBEDDED_TEST[0]],
                                                     profile, None, crop=False))],
             "02_noise2noise_resnet": [(r.model, scope["profile"] + one) for r in runs["02_noise2noise_resnet"]],
             "03_noise2noise_unet": [(r.model, scope["profile"] + one) for r in runs["03_noise2noise_unet"]],
             "04_discriminative_unet": [("unet", scope["profile"] + 2 * one)],
             "05_paper_table": [(r.model, scope["all"]) for r in runs["05_paper_table"]],
             "06_your_own_data": [("unet", 2 * own + 2 * own / len(EMBEDDED_TEST))],
             "11_real_noise": [("unet", (len(runs["11_real_noise"]) + 1) * 2 * side * side / 1e6)]}
    for notebook in ("07_losses_text_impulse", "08_brown_noise", "09_single_capture", "10_capture_budget"):
        studied = [r for r in runs[notebook] if not r.name.startswith("notebook")]
        rules[notebook] = [("unet", len(studied) * (scope["main"] + one))]
    rules["09_single_capture"].append(("unet", own))
    return rules


def _megapixels(files: list, profile, test_set: str | None, repeats: bool = True, crop: bool = True) -> float:
    """Megapixels of the first images of ``files`` that the profile evaluates on ``test_set`` (its
    limit, centre crop and noise draws), read from the files' headers."""
    from PIL import Image

    limit = dict(profile.eval.limits).get(test_set, profile.eval.limit) if test_set else None
    draws = dict(profile.eval.repeats).get(test_set, 1) if repeats and test_set else 1
    total = 0
    for path in list(files)[:limit]:
        with Image.open(path) as image:
            width, height = image.size
        side = profile.eval.crop if crop else None
        total += min(width, side or width) * min(height, side or height)
    return total * draws / 1e6


# ---------------------------------------------------------------------------------- timing
def time_steps(setting: tuple[str, int, int, str], profile, rt, steps: int = TIMED_STEPS) -> float:
    """Seconds per training step of ``setting`` (model, batch, crop, target) in the runtime ``rt``: the
    step ``fit`` takes (``train.TrainStep``: the batch drawn, forward, backward, Adam) on random
    patches: the median of ``steps`` timed ones, after ``WARMUP_STEPS`` untimed ones."""
    import functools

    import torch

    from ..data.neighbor import nb2nb_loss
    from ..data.sources import PatchSource
    from ..paper import models
    from ..paper.losses import get_loss
    from ..training.devices import threads
    from ..training.train import TrainStep, make_optimizer

    model_name, batch, crop, target = setting
    cfg = dataclasses.replace(profile.train, target=target, batch_size=batch, crop=crop, loss="l2", max_steps=1,
                              max_seconds=None)
    patches = torch.randint(0, 256, (max(16, batch), 3, crop + 16, crop + 16), dtype=torch.uint8,
                            generator=torch.Generator().manual_seed(0))
    sampler = PatchSource(patches, patches[:1], profile.noise_config("gaussian")).prepare(cfg).sampler
    sampler.use_device(rt.device)
    layout = rt.layout(crop)
    net = models.build(profile.model(model_name), seed=0).to(rt.device).to(memory_format=layout).train()
    loss = get_loss("l2") if target != "nb2nb" else functools.partial(nb2nb_loss, final_gamma=cfg.nb2nb_gamma)
    step = TrainStep(net, make_optimizer(net, cfg.lr), loss, rt.device, layout, rt.amp_dtype)
    sync = torch.cuda.synchronize if rt.device.type == "cuda" else lambda: None
    times = []
    for i in range(WARMUP_STEPS + steps):
        threads().poll()
        sync()
        start = time.perf_counter()
        step(sampler.sample())
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times[WARMUP_STEPS:])  # a step slowed by another process's burst counts less


def time_inference(model_name: str, profile, rt) -> float:
    """Seconds per megapixel of one forward pass of ``model_name`` on an image of the evaluated size
    (the profile's centre crop, else 512 px square) in ``rt`` (``runtime.infer``, as evaluation runs
    it), after one untimed pass."""
    import torch

    from ..paper import models
    from ..training.runtime import infer

    side = profile.eval.crop or 512
    net = models.build(profile.model(model_name), seed=0).to(rt.device).eval()
    image = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        infer(net, image, rt)
        start = time.perf_counter()
        infer(net, image, rt)  # its output comes back to the CPU: the time includes the device's work
        return (time.perf_counter() - start) / (side * side / 1e6)


START_CELL = "import n2n_core.studies.experiment"  # what every notebook's kernel does first


def time_start(papermill: list[str] | None = None) -> float:
    """Seconds of the fixed start of a notebook: one run of the ``papermill`` command (make all's,
    with its kernel) executing a notebook of the one cell ``START_CELL``, which counts papermill's
    own start, the kernel's and the writing of the executed copy; without it (or if it fails), a
    Python process that runs the cell."""
    import subprocess
    import tempfile

    if papermill:
        notebook = {"cells": [{"cell_type": "code", "metadata": {}, "source": START_CELL, "outputs": [],
                               "execution_count": None}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "start.ipynb").write_text(json.dumps(notebook))
            start = time.perf_counter()
            try:
                done = subprocess.run([*papermill, str(Path(tmp) / "start.ipynb"), str(Path(tmp) / "started.ipynb")],
                                      capture_output=True)
            except OSError:  # no such command: the bare start below
                done = None
            if done is not None and done.returncode == 0:
                return time.perf_counter() - start
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", START_CELL], check=True, capture_output=True)
    return time.perf_counter() - start


# ----------------------------------------------------------------------------------- the plan
def done_so_far(profile, run: PlannedRun) -> tuple[int, float] | None:
    """(steps, seconds) already trained in ``run``'s checkpoint; None when it is finished."""
    from ..paths import checkpoint_path
    from ..training.checkpoint import load_checkpoint

    path = checkpoint_path(profile.name, run.name)
    if not path.is_file():
        return 0, 0.0
    try:
        state = load_checkpoint(path)
    except (ValueError, FileNotFoundError, OSError):
        return 0, 0.0  # not readable: the notebook trains it anew
    if state.get("finished"):
        return None
    seconds = state.get("history", {}).get("seconds") or [0.0]
    return int(state.get("step", 0)), float(seconds[-1])


@dataclass
class Plan:
    notebooks: list[str]
    path: str  # the runtime, in one line
    projected: dict[str, float]
    timing: Timing
    runs: dict[str, list[PlannedRun]]

    @property
    def total(self) -> float:
        return sum(self.projected.values())


def notebook_names() -> list[str]:
    """The notebooks of `make all`, in their order."""
    return sorted(p.stem for p in NOTEBOOK_DIR.glob("[0-9]*.ipynb"))


def make_plan(profile, notebooks: list[str], rt, papermill: list[str] | None = None) -> Plan:
    """The plan of executing ``notebooks`` (in ``NOTEBOOKS`` order) in ``profile`` on the runtime ``rt``
    (``papermill``: the command that will execute them, ``time_start``)."""
    every = notebook_runs(profile, rt.precision)
    runs = {name: every[name] for name in notebooks}
    trained = {run.name: done_so_far(profile, run) for name in notebooks for run in runs[name]}
    settings = sorted({r.setting for name in notebooks for r in runs[name] if trained[r.name] is not None
                       and r.steps is not None})
    step_seconds = {setting: time_steps(setting, profile, rt) for setting in settings}
    evaluated = {name: rules for name, rules in notebook_evaluation(profile, every).items() if name in notebooks}
    models = sorted({model for rules in evaluated.values() for model, _ in rules})
    timing = Timing(step_seconds, {m: time_inference(m, profile, rt) for m in models}, time_start(papermill) if notebooks else 0.0)
    return Plan(list(notebooks), rt.describe(rt.layout(profile.train.crop)), project(runs, timing, trained, evaluated),
                timing, runs)


def describe(plan: Plan, profile_name: str) -> str:
    """The lines `make all` starts with."""
    if not plan.notebooks:
        return f"make all ({profile_name} profile): every notebook is up to date, nothing to execute\n"
    lines = [f"make all ({profile_name} profile) runs on {plan.path}",
             f"{len(plan.notebooks)} notebook(s) to execute, projected {duration(plan.total)} on this machine "
             f"(from {sum(1 for _ in plan.timing.step_seconds)} timed training setting(s); docs/design.md):"]
    lines += [f"  {name:<26} {duration(plan.projected[name]):>12}" for name in plan.notebooks]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------- the plan file, progress
def write_plan(path: str | Path, plan: Plan, run: str) -> Path:
    """The plan file: the executed notebooks in order and each one's projected seconds, for the make
    process ``run`` (a notebook run by another make, or by hand, gets no progress line from it)."""
    from ..paths import atomic_write_text

    data = {"run": str(run), "notebooks": plan.notebooks, "projected": plan.projected, "started": None}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, json.dumps(data, indent=1) + "\n")


# the pace of the notebooks so far counts as if a share of the whole run had gone by at the projected
# pace: seconds of short notebooks (a kernel's start is most of them) do not rescale hours of training
PACE_PRIOR = 0.1


def progress_line(data: dict, notebook: str, now: float) -> str:
    """'[k/N] notebook: about T left' before ``notebook`` runs: the projected time of it and the ones
    after it, rescaled by the time the notebooks before it took against their projection, that
    pace drawn towards 1 by ``PACE_PRIOR`` of the projected total."""
    order, projected = data["notebooks"], data["projected"]
    k = order.index(notebook)
    before, left = sum(projected[n] for n in order[:k]), sum(projected[n] for n in order[k:])
    if not (k and before > 0 and data.get("started")):
        return f"[{k + 1}/{len(order)}] {notebook}: about {duration(left)} left"
    took, prior = now - data["started"], PACE_PRIOR * (before + left)
    pace = (took + prior) / (before + prior)
    return (f"[{k + 1}/{len(order)}] {notebook}: about {duration(pace * left)} left (the notebooks so far took "
            f"{took / before:.2f}x their projection)")


def progress(path: str | Path, notebook: str, run: str) -> str | None:
    """The progress line of ``notebook`` from the plan file (None where this make wrote no plan that
    names it); the first notebook's start is written back, the clock of the rescaling."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    if data.get("run") != str(run) or notebook not in data.get("notebooks", []):
        return None
    now = time.time()
    if data.get("started") is None:
        data["started"] = now
        Path(path).write_text(json.dumps(data, indent=1) + "\n")
    return progress_line(data, notebook, now)


def main(argv: list[str] | None = None) -> int:
    """``python -m n2n_core.studies.plan PLAN_FILE RUN NOTEBOOK``: the progress line (the Makefile's,
    before each notebook; quick: nothing is imported but this module)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3:
        print("usage: python -m n2n_core.studies.plan PLAN_FILE RUN NOTEBOOK", file=sys.stderr)
        return 2
    line = progress(*args[:1], args[2], args[1])
    if line:
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
