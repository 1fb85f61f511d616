"""The shipped weights: how `make pretrained` trains them, exports them and writes their model card.

``checkpoints/pretrained/unet_<noise>_blind.pth`` holds the paper's U-Net trained by ``train.fit``
with noisy targets only (Noise2Noise) and blind noise levels (Gaussian sigma ~ U(0, 50), Poisson
lambda ~ U(0.001, 50)), in the ``pretrained`` profile (config.py). The weights are the moving average
of the run (``TrainConfig.ema``), stored in float16 (half the size; docs/pretrained.md), in
an ordinary checkpoint: ``load_model("pretrained:gaussian")`` reads it, ``n2n denoise`` uses it
when no checkpoint of `make all` exists.

Training runs in chunks (``--max-minutes``), one per session or machine: while it is unfinished,
``unet_<noise>_blind.state.pth`` beside the weights holds the whole training state (weights, moving
average, Adam, the sampler's random state), one file that each chunk replaces; the finished run
deletes it. Each chunk re-exports the weights, so the shipped file is always the latest average.
The data are the clean training pool (``N2N_DATA_DIR`` with train_pool/, or the official BSDS300
download), or several pool folders of the data folder pooled (``--pool``, `make pretrained POOL=...`;
``pool_sources``); a resumed run must see the same pool (its file names and sizes, and the folders
with their image counts, are part of the run's configuration).

The grey weights (``--grey``, ``unet_gaussian_grey_blind.pth``, ``pretrained:gaussian-grey``) are the
same run for a 1-channel U-Net on grey versions of the pool's patches (``data.grey``), started from
the colour weights folded to one channel (``models.grey_from_colour``): at step 0 they compute what the
colour weights compute on a grey image replicated to RGB, and training teaches them grey noise.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path

import torch

from ..training.checkpoint import (FORMAT, GREY_SUFFIX, atomic_save, library_versions, load_checkpoint,
                                   pretrained_path)
from ..config import PRECISION_NAMES, PROFILES, ModelConfig, Profile
from .. import paths
from ..data.grey import grey_uint8
from ..data.sets import list_images, pool_licence
from ..paper.noise import NOISE_TYPES, NoiseConfig
from ..data.patches import build_patch_sets
from ..data.sources import PatchSource
from ..training.run import RunSpec, train_run
from ..training.runtime import Runtime
from ..training.train import History

NOISES = ("gaussian", "poisson")
DEFAULT_POOL = ("train_pool",)  # the pool folders `make pretrained` trains on unless POOL names others
GREY_NOISES = ("gaussian",)  # the noises with grey weights (``shipped_name(noise, grey=True)``)
# the levels the model card measures, per noise type (the paper's Table 1 level in the middle)
CARD_LEVELS = {"gaussian": (15.0, 25.0, 50.0), "poisson": (30.0, 10.0)}


class PretrainedError(ValueError):
    """A pretrained run that cannot go on as asked; the message says why and what to do."""


def profile() -> Profile:
    return PROFILES["pretrained"]


def noise_config(noise: str) -> NoiseConfig:
    """The blind training noise of the shipped ``noise`` weights (test level: the paper's)."""
    if noise not in NOISES:
        raise PretrainedError(f"no shipped weights for {noise!r} noise; choose one of {', '.join(NOISES)}")
    return profile().noise_config(noise).blind_only()


def shipped_name(noise: str, grey: bool = False) -> str:
    """The name of shipped weights (``pretrained:<name>``): the noise, or ``<noise>-grey``."""
    if grey and noise not in GREY_NOISES:
        raise PretrainedError(f"no grey weights for {noise!r} noise; grey weights exist for {', '.join(GREY_NOISES)}")
    return f"{noise}{GREY_SUFFIX}" if grey else noise


def split_name(name: str) -> tuple[str, bool]:
    """(noise, grey) of a shipped name."""
    return (name[:-len(GREY_SUFFIX)], True) if name.endswith(GREY_SUFFIX) else (name, False)


def state_path(noise: str, folder: Path | None = None) -> Path:
    """The training state of an unfinished run, beside the weights."""
    return pretrained_path(noise, folder).with_suffix(".state.pth")


def _pool_identity(files: list[Path]) -> str:
    """Names and sizes of the training pool, hashed: a resumed run must draw from the same images,
    wherever the folder lies."""
    digest = hashlib.sha256()
    for f in sorted(files, key=lambda p: (p.parent.name, p.name)):
        digest.update(f"{f.parent.name}/{f.name}:{f.stat().st_size}\n".encode())
    return digest.hexdigest()[:16]


def pool_data(sources, sets, folders: dict[str, int] | None = None) -> dict:
    """What a run records of its data: the pool's identity, its split and the DataConfig; for a pool of
    other folders than the default one (``pool_sources``), each folder's name and image count too, so
    that a resumed run must see the same folders. The default pool records what it always did: the
    runs begun before pools of several folders resume unchanged."""
    data = {"pool": _pool_identity(sources.train), "train_images": sets.meta["train_images"],
            "val_images": sets.meta["val_images"], "data_config": sets.meta["data_config"]}
    return {**data, "folders": dict(folders)} if folders else data


def pool_sources(data_dir: str | Path | None, pool=DEFAULT_POOL):
    """(the data, each pool folder's image count) of a run on the folders ``pool`` (names in the data
    folder, ``N2N_DATA_DIR`` or ``data_dir``), their images in one pool; the folders are taken in sorted
    order, so a pool is the same whatever order names it. The default pool is today's (``_sources``:
    train_pool/ or the official download) with counts None, so that its runs record what they always did."""
    sources, names = _sources(data_dir), sorted(set(pool))
    if not names:
        raise PretrainedError("--pool needs at least one folder name (default: train_pool)")
    if tuple(names) == DEFAULT_POOL:
        return sources, None
    root = Path(data_dir).expanduser() if data_dir else paths.user_data_dir()
    if sources.origin != "folder" or root is None:
        raise PretrainedError(f"a pool of the folders {', '.join(names)} needs a data folder that holds them: set "
                              f"N2N_DATA_DIR (or --data-dir)")
    for name in names:
        if not (root / name).is_dir():
            found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
            raise PretrainedError(f"pool folder {name!r}: no such folder in {root}; it holds "
                                  f"{', '.join(found) or 'no folders'}")
    try:
        files = {name: list_images(root / name) for name in names}
    except FileNotFoundError as err:
        raise PretrainedError(f"{err}; a pool folder holds clean training images") from None
    pooled = dataclasses.replace(sources, train=[f for name in names for f in files[name]],
                                 description=f"{sources.description}, pool {' + '.join(names)}")
    return pooled, {name: len(found) for name, found in files.items()}


def pool_rows(folders: dict[str, int]) -> list[dict]:
    """The model card's rows of a pool: each folder, its image count and its licence."""
    return [{"folder": name, "images": count, "licence": pool_licence(name)} for name, count in folders.items()]


def _sources(data_dir: str | Path | None):
    from ..evaluation.protocol import data_sources

    sources = data_sources(None if data_dir is None else str(data_dir))
    if sources.origin == "embedded":
        raise PretrainedError("the shipped weights train on the paper's training pool; the embedded photographs "
                              "are too few. Set N2N_DATA_DIR to a folder with train_pool/ (and kodak/), or allow "
                              "the official BSDS300 download (unset N2N_OFFLINE)")
    return sources


def make_run_config(noise: str, prof: Profile, data: dict, noise_cfg: NoiseConfig | None = None) -> dict:
    """The configuration a run of the shipped ``noise`` weights (a ``shipped_name``) records and its state
    must match to resume (``data``: ``pool_data``; ``noise_cfg``: another noise than the shipped one, for
    `make blindcheck`). Grey weights record the 1-channel U-Net and the colour weights they start from."""
    kind, grey = split_name(noise)
    model = dataclasses.replace(prof.unet, channels=1) if grey else prof.unet
    extra = {"init": f"pretrained:{kind}", "grey": "Pillow's 'L' of the pool's patches"} if grey else {}
    return json.loads(json.dumps({"profile": prof.name, "pretrained": noise, "model": dataclasses.asdict(model),
                                  "noise": dataclasses.asdict(noise_cfg or noise_config(kind)),
                                  "train": dataclasses.asdict(prof.train), "data": data, **extra}))


def noisy_pairs_spec(prof: Profile, noise_cfg: NoiseConfig, train_patches, val_patches, path: Path,
                     run_config: dict, keep_precision: bool = True) -> RunSpec:
    """The run of the profile's U-Net on noisy pairs of ``noise_cfg`` drawn from the patch sets, with
    the profile's settings, checkpoint at ``path``, recording ``run_config`` (``make_run_config``)."""
    record = {key: value for key, value in run_config.items() if key != "train"}
    model = ModelConfig(**run_config["model"])  # grey weights: 1 channel
    return RunSpec(path.stem, model, PatchSource(train_patches, val_patches, noise_cfg), lambda _: prof.train, path,
                   record, keep_precision=keep_precision)


def train(noise: str = "gaussian", max_minutes: float | None = None, data_dir: str | Path | None = None,
          rt: Runtime | None = None, folder: Path | None = None, progress: bool = True,
          profile_override: Profile | None = None, grey: bool = False, pool=DEFAULT_POOL) -> History:
    """Train (or go on training) the shipped ``noise`` weights (``grey``: the grey ones, which start
    from the colour weights in ``folder``) on the pool folders ``pool`` (``pool_sources``) for at most
    ``max_minutes`` of this call, then export them. A finished run only re-exports. Each chunk trains
    in the runtime ``rt`` (None: this machine's, resolved in this call), its number format recorded
    per chunk in the history."""
    prof = profile_override or profile()
    noise_cfg, name = noise_config(noise), shipped_name(noise, grey)
    weights, state = pretrained_path(name, folder), state_path(name, folder)
    if grey and not state.exists() and not pretrained_path(noise, folder).is_file():
        raise PretrainedError(f"the grey weights start from the colour ones, and {pretrained_path(noise, folder)} "
                              f"is missing: `make pretrained NOISE={noise}` trains them")
    shipped = load_checkpoint(weights) if not state.exists() and weights.exists() else {}
    if shipped.get("finished"):
        _same_pool(weights, shipped, pool)
        print(f"{weights}: finished ({shipped['step']} steps); nothing to train")
        return History.from_dict(shipped["history"])
    if max_minutes is not None and max_minutes <= 0:
        raise PretrainedError(f"--max-minutes must be > 0, got {max_minutes}")
    sources, folders = pool_sources(data_dir, pool)
    started = time.monotonic()
    sets = build_patch_sets(sources, prof.data, prof.train.seed)
    print(f"Cut {len(sets.train)} training and {len(sets.val)} validation patches of {prof.data.patch_size} px "
          f"in {time.monotonic() - started:.0f} s")
    run_config = make_run_config(name, prof, pool_data(sources, sets, folders))
    patches = (grey_uint8(sets.train), grey_uint8(sets.val)) if grey else (sets.train, sets.val)
    spec = noisy_pairs_spec(prof, noise_cfg, *patches, state, run_config, keep_precision=False)
    if grey:
        spec = dataclasses.replace(spec, init=pretrained_path(noise, folder))
    history = train_run(spec, rt or Runtime.resolve(), progress=progress,
                        chunk_seconds=None if max_minutes is None else 60.0 * max_minutes).history
    export(name, folder, data_description=f"{sources.origin}: {len(sources.train)} clean pool images"
                                        f"{' in grey' if grey else ''}, {sets.meta['val_images']} of them held out "
                                        f"for validation",
           pool=folders or ({DEFAULT_POOL[0]: len(sources.train)} if sources.origin == "folder" else None))
    if state.exists():  # (export deletes it when the run is finished)
        compact_state(state)
    return history


def _same_pool(weights: Path, shipped: dict, pool) -> None:
    """A PretrainedError when finished weights were trained on other pool folders than ``pool``: nothing
    trains them again, so asking for another pool must not pass for done."""
    trained = sorted(shipped["config"].get("data", {}).get("folders") or DEFAULT_POOL)
    if trained != sorted(set(pool)):
        raise PretrainedError(f"{weights}: finished, trained on the pool {' '.join(trained)}, not "
                              f"{' '.join(sorted(set(pool)))}; to train weights on that pool, move the finished "
                              f"weights out of {weights.parent} first")


def compact_state(path: Path) -> Path:
    """Rewrite a training state small enough to commit beside the shipped weights (10 MB instead of
    16 for the U-Net): the moving average of the weights and Adam's two moments in bfloat16, the
    weights themselves in float32. Loading casts them back to float32 (``fit`` resumes from it),
    so the next chunk goes on from values rounded to 8 bits of mantissa: not bit for bit."""
    state = load_checkpoint(path)

    def small(tensor):
        return tensor.to(torch.bfloat16) if torch.is_tensor(tensor) and tensor.is_floating_point() else tensor

    if state.get("ema"):
        state["ema"] = {k: small(v) for k, v in state["ema"].items()}
    if state.get("optimizer"):
        for moments in state["optimizer"]["state"].values():
            for key in ("exp_avg", "exp_avg_sq"):
                if key in moments:
                    moments[key] = small(moments[key])
    atomic_save(state, path)
    print(f"Wrote the training state {path} ({path.stat().st_size / 1e6:.1f} MB; its average and Adam's moments "
          f"in bfloat16)")
    return path


def export(noise: str, folder: Path | None = None, data_description: str | None = None,
           pool: dict[str, int] | None = None) -> Path:
    """Write the shipped weights from the training state: the moving average in float16, the run's
    configuration and history, no optimizer. A finished run's state file is deleted after. ``noise``:
    a ``shipped_name``; ``pool``: the image count of each pool folder (``pool_sources``; None: the
    default pool)."""
    (kind, grey), state_file, weights = split_name(noise), state_path(noise, folder), pretrained_path(noise, folder)
    state = load_checkpoint(state_file)
    average = state.get("ema") or state["model"]
    cfg = state["config"]["train"]
    shipped = {
        "format": FORMAT, "model_args": state["model_args"],
        "model": {k: v.to(torch.float16) if v.is_floating_point() else v for k, v in average.items()},
        "ema": None, "optimizer": None, "generator_state": None,
        "config": state["config"], "step": state["step"], "elapsed_seconds": state["elapsed_seconds"],
        "finished": state["finished"], "history": state["history"], "seed": state["seed"],
        "versions": library_versions(),
        "pretrained": {"noise": kind, "grey": grey, "pixels_seen": state["step"] * cfg["batch_size"] * cfg["crop"] ** 2,
                       "command": f"make pretrained NOISE={kind}" + (" GREY=1" if grey else "")
                       + (f' POOL="{" ".join(pool)}"' if pool and tuple(pool) != DEFAULT_POOL else ""),
                       "data": data_description,
                       "pool": pool_rows(pool) if pool else None,
                       "weights": "moving average of the weights (decay {}), float16".format(cfg.get("ema"))},
    }
    atomic_save(shipped, weights)
    print(f"Wrote {weights} ({weights.stat().st_size / 1e6:.1f} MB): step {state['step']} of {cfg['max_steps']}"
          + (", finished" if state["finished"] else ""))
    if state["finished"]:
        state_file.unlink()
        print(f"Deleted the training state {state_file}: the run is finished")
    return weights


# ------------------------------------------------------------------------------- model card
def _level_config(noise: str, level: float) -> NoiseConfig:
    return noise_config(noise).at_level(level)


def _paper(noise: str, level: float, test_set: str) -> tuple[float | None, float | None]:
    """(the paper's Noise2Noise U-Net, the paper's classical baseline) at Table 1's level only: the
    released U-Net where the paper gives it, else Table 1 (RED30 for Gaussian)."""
    from ..paper.reported import RELEASED_UNET_GAUSSIAN, RELEASED_UNET_POISSON, TABLE1

    if level != NOISE_TYPES[noise].test_level:
        return None, None
    released = {"gaussian": RELEASED_UNET_GAUSSIAN, "poisson": RELEASED_UNET_POISSON}[noise]
    table = TABLE1[noise].get(test_set, {})
    return released.get(test_set, {}).get("n2n", table.get("n2n")), table.get("baseline")


def card_figures(noise: str, rt: Runtime, folder: Path | None = None, data_dir: str | Path | None = None,
                 repeats: int = 1, bm3d: bool = False, limit: int | None = None) -> list[dict]:
    """The card's numbers for the shipped ``noise`` weights: every available test set at every level
    of ``CARD_LEVELS``, the paper's protocol with ``repeats`` noise draws per image (``limit``: the
    first images only), beside the noisy input, BM3D with the level known (read from ``card.json``
    beside the weights; measured where missing when ``bm3d``) and the paper; the network in the runtime ``rt``.
    Grey weights (``noise`` a grey ``shipped_name``): the grey versions of the test sets, grey BM3D."""
    from ..evaluation import baselines
    from ..training.checkpoint import load_model
    from ..evaluation.protocol import evaluate_sets

    folder = Path(folder) if folder else pretrained_path(noise).parent
    cache_file = folder / "card.json"
    cache = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
    sources = _sources(data_dir)
    model = load_model(pretrained_path(noise, folder), device=rt.device)
    rows, (kind, grey) = [], split_name(noise)
    for level in CARD_LEVELS[kind]:
        cfg = _level_config(kind, level)
        names = list(sources.test_sets)
        reps, limits = {n: repeats for n in names}, {n: limit for n in names}
        ours = evaluate_sets(model, sources, names, cfg, rt=rt, repeats=reps, limits=limits,
                             label=f"pretrained:{noise} | {cfg.label} | ", grey=grey)
        for name in names:
            ev = ours[name]
            key = f"{noise}/{level:g}/{name}/{len(ev.names)}x{repeats}"
            if key not in cache.get("bm3d", {}) and bm3d and baselines.available():
                from ..paths import bm3d_cache_dir

                measured = evaluate_sets(baselines.BM3DBaseline(cfg, bm3d_cache_dir()), sources, [name], cfg,
                                         repeats=reps, limits=limits, label=f"BM3D | {cfg.label} | ", grey=grey)
                cache.setdefault("bm3d", {})[key] = round(measured[name].psnr, 4)
            paper_n2n, paper_baseline = (None, None) if grey else _paper(kind, level, name)  # the paper: RGB only
            rows.append({"set": name, "images": len(ev.names), "repeats": repeats, "level": level,
                         "input": round(ev.psnr_input, 2), "ours": round(ev.psnr, 2), "ssim": round(ev.ssim, 4),
                         "bm3d": cache.get("bm3d", {}).get(key), "paper_n2n": paper_n2n,
                         "paper_baseline": paper_baseline, "precision": ev.precision})
    from ..paths import atomic_write_text

    atomic_write_text(cache_file, json.dumps(cache, indent=2, sort_keys=True) + "\n")
    return rows


def _fmt(value, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def card_section(noise: str, rows: list[dict], folder: Path | None = None) -> str:
    """The markdown of one shipped model: what it is, how it was trained, its curve and its numbers."""
    from ..evaluation.plots import pretrained_curve

    path = pretrained_path(noise, folder)
    state = load_checkpoint(path)
    history = History.from_dict(state["history"])
    info, cfg = state.get("pretrained", {}), state["config"]
    train_cfg, noise_cfg = cfg["train"], cfg["noise"]
    per_step = train_cfg["batch_size"] * train_cfg["crop"] ** 2
    kind, grey = NOISE_TYPES[split_name(noise)[0]], split_name(noise)[1]
    blind, symbol, test_level = noise_cfg[f"train_{kind.param}_range"], kind.symbol, noise_cfg[kind.param]
    curve = pretrained_curve(history, per_step, path.with_name(f"{path.stem}_curve.png"),
                             title=f"{path.name}: validation PSNR, {symbol} {test_level:g}, held-out pool crops")
    status = (f"finished, {state['step']} steps" if state["finished"] else
              f"**unfinished**: step {state['step']} of {train_cfg['max_steps']}; `{info.get('command')}` "
              f"goes on from the committed training state")
    minutes = sum(c["seconds"] for c in history.chunks) / 60
    lines = [
        f"## `{path.name}`: blind {kind.title} U-Net{', grey (1 channel)' if grey else ''}, noisy targets only",
        "",
        f"The paper's U-Net trained with Noise2Noise (noisy input, independent noisy target, L2 loss; no clean "
        f"image) on {kind.name} noise with {symbol} drawn per image from U{tuple(blind)}: one model for every level "
        f"in that range, no level to give. " + (GREY_NOTE if grey else "") + f"Status: {status}.",
        "",
        f"- Use: `n2n denoise photo.jpg --out denoised/` ({_default_use(noise)}), "
        f"`n2n_core.load_model(\"pretrained:{noise}\")` in Python" + ("." if grey else
        f", `n2n train --pairs DIR --init pretrained:{noise}` to fine-tune on your own pairs."),
        f"- Trained by: `{info.get('command', 'make pretrained')}` (the `pretrained` profile of `n2n_core/config.py`), "
        f"with `N2N_DATA_DIR` pointing at the paper's training data.",
        f"- Data: {info.get('data') or 'the clean training pool'}; crops of "
        f"{train_cfg['crop']} px, batch {train_cfg['batch_size']}, random flips and rotations; validation on crops of "
        f"the held-out pool images.",
        f"- Recipe: Adam (0.9, 0.99, 1e-8), learning rate {train_cfg['lr']:g} with the paper's ramp-down over the last "
        f"{train_cfg['rampdown']:.0%} of {train_cfg['max_steps']} steps; shipped weights: {info.get('weights')}.",
        f"- Seen so far: {state['step']} steps, {state['step'] * per_step / 1e9:.2f} Gpix, {minutes:.0f} minutes of "
        f"training in {len(history.chunks)} chunk(s):",
        "",
        "| date | hardware | number format | steps | minutes | steps/s |",
        "|---|---|---|---|---|---|",
    ]
    for c in history.chunks:
        steps = c["end_step"] - c["start_step"]
        lines.append(f"| {c['date']} | {c['hardware']} | {c['precision']} | {c['start_step']}-{c['end_step']} | "
                     f"{c['seconds'] / 60:.0f} | {steps / max(c['seconds'], 1e-9):.2f} |")
    lines += ["", *_pool_lines(info, cfg)]
    lines += ["", f"![training curve]({curve.name})", "",
              "| Gpix seen | step | validation PSNR (dB) |", "|---|---|---|"]
    for step, value in zip(history.val_step, history.val_psnr):
        lines.append(f"| {step * per_step / 1e9:.3f} | {step} | {value:.2f} |")
    if history.val_psnr_input is not None:
        lines.append(f"| noisy input | | {history.val_psnr_input:.2f} |")
    lines += ["", *_test_set_lines(noise, rows)]
    return "\n".join(lines) + "\n"


def _pool_lines(info: dict, cfg: dict) -> list[str]:
    """The card's table of the pool folders the run trained on, with image counts and licences (weights
    exported before pools had folders: train_pool/, when they came from a data folder)."""
    rows = info.get("pool")
    if rows is None and str(info.get("data", "")).startswith("folder"):
        rows = pool_rows({DEFAULT_POOL[0]: cfg["data"]["train_images"] + cfg["data"]["val_images"]})
    if not rows:
        return []
    lines = ["| pool folder | images | licence |", "|---|---|---|"]
    return lines + [f"| {r['folder']} | {r['images']} | {r['licence']} |" for r in rows]


GREY_NOTE = ("One channel: trained on grey versions (Pillow's 'L') of the pool, started from the colour weights "
             "folded to one channel, so that at its first step it computed what the colour weights compute on a grey "
             "image replicated to RGB. ")


def _default_use(noise: str) -> str:
    return {"gaussian": "the default weights", "gaussian-grey": "the default for grey images when this file exists"
            }.get(noise, f"`--checkpoint pretrained:{noise}`")


def _test_set_lines(noise: str, rows: list[dict]) -> list[str]:
    """The card's table of test-set figures (``card_figures``' rows), after a paragraph on how they were measured."""
    kind, grey = NOISE_TYPES[split_name(noise)[0]], split_name(noise)[1]
    how = ("grey versions of the test sets (Pillow's 'L'), measured by `n2n pretrained --card-only`" if grey
           else f"`n2n eval pretrained:{noise} --{kind.param} L`")
    lines = [f"Test sets, the paper's protocol ({how}): "
             + ("grey" if grey else "RGB") + ", noise in float from fixed seeds (seed 0), output and reference clipped and rounded to 8 bit, PSNR "
             "per image over all channels, then the mean. BM3D is told the noise level (measured here, with the "
             "same noisy images; `–`: not measured yet). The paper's figures exist at its Table 1 level only: "
             "its released U-Net where given (Kodak, BSD300), else Table 1. The network ran in "
             + " and ".join(sorted({PRECISION_NAMES.get(r.get("precision"), "float32") for r in rows}) or ["float32"])
             + ".", "",
             f"| test set | {kind.symbol} | images x draws | noisy input | this model | BM3D, measured | paper: N2N | "
             f"paper: BM3D |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['set']} | {r['level']:g} | {r['images']} x {r['repeats']} | {_fmt(r['input'])} | "
                     f"**{_fmt(r['ours'])}** | {_fmt(r['bm3d'])} | {_fmt(r['paper_n2n'])} | {_fmt(r['paper_baseline'])} |")
    return lines


CARD_INTRO = """# Shipped weights (model card)

Written by `make pretrained` (`n2n_core.studies.pretrained.write_card`) from the checkpoints in this folder; do
not edit by hand. The weights are float16 state dicts in this project's checkpoint format, with the
run's configuration and training history; any `n2n` command or `n2n_core.load_model` reads them.

Limits: trained on synthetic noise (independent per pixel) added to natural photographs. Camera noise
is not independent Gaussian noise (it depends on the signal, is correlated after demosaicing, and is
clipped): for your own captures, fine-tune on pairs of them (`n2n train --pairs DIR --init
pretrained:gaussian`, notebook 06). Training data: the pool folders each section lists, with their licences.
"""


CARD_SETS = ("kodak", "bsd300", "set14")  # the test sets the shipped card is measured on, each whole


def check_card_data(data_dir: str | Path | None, folder: Path | None = None, limit: int | None = None) -> None:
    """The committed model card is only rewritten from the paper's whole test sets: a PretrainedError
    otherwise (a partial data folder once replaced it with rows of a few images each, beside the
    paper's figures). Cards written elsewhere (``folder``) may use any data."""
    from ..paths import pretrained_dir

    if folder is not None and Path(folder).resolve() != pretrained_dir().resolve():
        return
    folder, sources = pretrained_dir(), _sources(data_dir)
    missing = [name for name in CARD_SETS if name not in sources.test_sets]
    if missing or not sources.comparable or limit is not None:
        found = ", ".join(f"{k} ({len(v)} images)" for k, v in sources.test_sets.items()) or "no test sets"
        raise PretrainedError(f"{folder / 'README.md'}: the shipped model card is measured on the paper's whole test "
                              f"sets ({', '.join(CARD_SETS)}), and the data found are not those ({found}"
                              f"{'; ' + ', '.join(missing) + ' missing' if missing else ''}); point N2N_DATA_DIR at "
                              f"them, or leave the card as it is (--no-card)")


def write_card(folder: Path | None = None, data_dir: str | Path | None = None, repeats: int = 1, bm3d: bool = False,
               rt: Runtime | None = None, limit: int | None = None) -> Path:
    """Measure every shipped model in ``folder`` in the runtime ``rt`` (None: this machine's) and
    write its README.md (the model card)."""
    rt = rt or Runtime.resolve()
    from ..paths import atomic_write_text

    folder = Path(folder) if folder else pretrained_path("gaussian").parent
    check_card_data(data_dir, folder, limit)
    sections = []
    for noise in (*NOISES, *(shipped_name(n, grey=True) for n in GREY_NOISES)):
        if pretrained_path(noise, folder).is_file():
            rows = card_figures(noise, rt, folder, data_dir, repeats=repeats, bm3d=bm3d, limit=limit)
            sections.append(card_section(noise, rows, folder))
    if not sections:
        raise PretrainedError(f"{folder}: no shipped weights to describe; `make pretrained` trains them")
    path = atomic_write_text(folder / "README.md", CARD_INTRO + "\n" + "\n".join(sections))
    print(f"Wrote {path}")
    return path
