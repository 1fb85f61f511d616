#!/usr/bin/env python3
"""Tries of notebook 11's budget: one U-Net of the real-noise study trained with another budget than
the profile's, measured on the test scenes as the study measures it.

    python tools/realnoise_budget.py --data DIR [--method n2n] [--steps 3000] [--batch-size 8]
                                     [--crop 64] [--lr 1e-3] [--init pretrained:gaussian] [--threads 2]
                                     [--scenes all] [--ensemble] [--out tries.jsonl]
    python tools/realnoise_budget.py --data DIR --drift [--checkpoint CK]

Trains ``studies.realnoise.train_real`` (the study's own code: the `cpu` profile with its
``realnoise`` budget replaced, seed 0) into ``$N2N_OUTPUT_DIR/checkpoints/realnoise_budget/``, one
run per budget (a finished one is reloaded), and prints one JSON line: the budget, the seconds and
number format of the training, the mean PSNR and SSIM of the denoised first capture of the test
scenes against their references and per scene (with ``--ensemble``, also the outputs averaged over
the eight flips and turns). ``--init`` names the weights the ``finetuned`` method starts from (the
study's default: ``studies.realnoise.SHIPPED``). ``--scenes all`` trains on the test scenes'
captures too, as a user trains on the captures they then denoise: outside the study's protocol,
and never with their references as targets. ``--out`` appends the line to a file. Run it from
the repository root with ``PYTHONPATH=$PWD``.

``--drift`` trains nothing: per test scene and on average, the mean of all its captures against the
reference, as it is and scaled by the one gain that fits it best (least squares), which says how much of what no
denoiser of one capture can reach is a difference of brightness between the captures and the
reference (bleaching), not noise. With ``--checkpoint``, the same for that network's denoised
first capture (as the study measures it): how much of its own gap is that difference.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys


def main(argv: list[str] | None = None) -> dict:
    from n2n_core.config import RealNoise, get_profile
    from n2n_core.data.augment import SelfEnsemble
    from n2n_core.data.fmd import find_captures
    from n2n_core.evaluation.captures import means
    from n2n_core.studies import realnoise
    from n2n_core.training.runtime import Runtime

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="folder holding fmd_confocal_bpae/")
    parser.add_argument("--method", default="n2n", choices=sorted(realnoise.TRAINED))
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--init", default=None,
                        help="weights the finetuned method starts from (a checkpoint or pretrained:<name>)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: the runtime's choice)")
    parser.add_argument("--scenes", default="train", choices=("train", "all"),
                        help="train: the study's training scenes; all: the test scenes' captures too (as a user "
                             "trains on the captures they then denoise; their references are never a target)")
    parser.add_argument("--ensemble", action="store_true", help="also measure the self-ensemble of eight flips/turns")
    parser.add_argument("--out", help="append the JSON line to this file")
    parser.add_argument("--drift", action="store_true", help="only the brightness drift of the test scenes")
    parser.add_argument("--checkpoint", help="with --drift: also the drift of this network's denoised first capture")
    args = parser.parse_args(argv)
    if args.checkpoint and not args.drift:
        parser.error("--checkpoint goes with --drift")
    if args.drift:
        return drift(args.data, args.out, args.checkpoint)

    if args.init and args.method != "finetuned":
        parser.error(f"--init is the starting point of --method finetuned, not of {args.method}")
    init = args.init or realnoise.SHIPPED
    budget = RealNoise(steps=args.steps, batch_size=args.batch_size, lr=args.lr, crop=args.crop,
                       finetune_lr=args.lr)  # --lr is the learning rate of the one method tried
    profile = dataclasses.replace(get_profile("cpu"), realnoise=budget,
                                  name=f"realnoise_budget/s{args.steps}_b{args.batch_size}_c{args.crop}_lr{args.lr:g}"
                                       + (f"_init-{_slug(init)}" if args.init else "")
                                       + ("_all-scenes" if args.scenes == "all" else ""))
    rt = Runtime.resolve(threads_=args.threads)
    data = find_captures(args.data, side=budget.standin_side, count=budget.standin_captures, seed=0)
    if not data.real:
        sys.exit(f"{args.data}: no fmd_confocal_bpae/ captures there; the tries are about the real data")
    scenes, refs = realnoise.evaluation_scenes(data)
    trained_on = data if args.scenes == "train" else dataclasses.replace(data, train=data.train + data.test)
    if args.scenes == "all" and args.method == "clean":
        parser.error("--scenes all trains on the test scenes: with clean targets it would learn their references")
    run = realnoise.train_real(profile, args.method, trained_on, 0, rt, init=init, progress=False)
    measured = {"plain": realnoise.measure(run.model, run.checkpoint, scenes, refs, rt, config=run.config)}
    if args.ensemble:
        measured["ensemble"] = realnoise.measure(SelfEnsemble(run.model), run.checkpoint, scenes, refs, rt,
                                                 config=run.config)
    started = {"init": init} if args.method == "finetuned" else {}
    line = {"method": args.method, **started, **dataclasses.asdict(budget), "scenes": list(trained_on.train),
            "runtime": rt.describe(), **run.facts(),
            **{f"{k}_psnr": means(rows)["model"]["psnr"] for k, rows in measured.items()},
            **{f"{k}_ssim": means(rows)["model"]["ssim"] for k, rows in measured.items()},
            "per_scene_psnr": {r.name: round(r.psnr["model"], 4) for r in measured["plain"]},
            "input_psnr": means(measured["plain"])["capture"]["psnr"]}
    print(json.dumps(line))
    if args.out:
        with open(args.out, "a") as f:
            f.write(json.dumps(line) + "\n")
    return line


def _slug(init: str) -> str:
    """``init`` as one folder name: ``pretrained:poisson`` -> ``pretrained-poisson``."""
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in init.rsplit("/", 1)[-1])


def drift(folder: str, out: str | None, checkpoint: str | None = None) -> dict:
    """``--drift``: the mean of all captures of each test scene (and, with ``checkpoint``, that
    network's denoised first capture) against its reference, as it is and with its best gain (PSNR
    in dB, the study's protocol)."""
    from n2n_core.data.fmd import find_captures
    from n2n_core.evaluation.captures import brightness_gain, denoised_first
    from n2n_core.evaluation.grey import weights_and_route
    from n2n_core.paper.metrics import psnr
    from n2n_core.studies import realnoise
    from n2n_core.training.runtime import Runtime

    data = find_captures(folder, download_ok=False)
    if not data.real:
        sys.exit(f"{folder}: no fmd_confocal_bpae/ captures there")
    scenes, refs = realnoise.evaluation_scenes(data)
    rt = Runtime.resolve()
    model, grey = (None, None) if checkpoint is None else weights_and_route(checkpoint, False, rt.device)
    line = {"what": "per test scene, against its reference, as it is and scaled by its least-squares gain: the mean "
                    "of all its captures" + (f"; the denoised first capture of {checkpoint}" if checkpoint else ""),
            "scenes": {}}

    def numbers(image, ref, key):
        gain = brightness_gain(image, ref)
        return {f"gain{key}": round(gain, 4), f"psnr{key}": round(float(psnr(image, ref)), 2),
                f"psnr{key}_with_gain": round(float(psnr((gain * image).clamp(0, 1), ref)), 2)}

    for scene, ref in zip(scenes, refs):
        captures = scene.floats()
        entry = {"captures": len(scene.captures), **numbers(captures.mean(0), ref, "_mean_of_all")}
        if model is not None:
            entry.update(numbers(denoised_first(scene, model, rt, grey, captures), ref, "_network"))
        line["scenes"][scene.name] = entry
    line["mean"] = {key: round(sum(e[key] for e in line["scenes"].values()) / len(scenes), 2)
                    for key in next(iter(line["scenes"].values())) if key.startswith("psnr")}
    print(json.dumps(line))
    if out:
        with open(out, "a") as f:
            f.write(json.dumps(line) + "\n")
    return line


if __name__ == "__main__":
    main()
