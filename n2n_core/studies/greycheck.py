"""Grey photographs through the shipped colour weights: what noise matching (``evaluation.grey``) gains.

    python -m n2n_core.studies.greycheck [--sigma 25] [--set kodak] [--out docs/reference/grey.json]

Every image of the test set in grey (Pillow's 'L', ``data.grey``), Gaussian noise of ``--sigma`` from
the protocol's fixed seeds, the paper's 8-bit PSNR, and five ways to denoise the same noisy images:
none (the noisy input), the colour weights on the grey channel replicated to RGB (what reading a
grey file as three equal channels gives), the colour weights through noise matching with sigma
estimated from each image (what `n2n denoise` does) and with the true sigma, and grey BM3D told the
true sigma (as the model card runs it). The network runs in float32 on one thread. The JSON records
the command, commit and hardware (``provenance``) beside the figures.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys

import torch

from .. import paths
from ..evaluation import baselines
from ..evaluation.grey import GreyThroughColour
from ..evaluation.protocol import data_sources, evaluate
from ..paper.noise import NoiseConfig, test_noise
from ..provenance import provenance
from ..training.checkpoint import load_model
from ..training.runtime import Runtime

TARGET_GAIN_DB = 9.0  # the acceptance target: matching (estimated sigma) over replication


def grey_check(sigma: float = 25.0, test_set: str = "kodak", data_dir: str | None = None, bm3d: bool = True,
               limit: int | None = None, weights: str = "pretrained:gaussian", argv: list[str] | None = None) -> dict:
    """The figures (module docstring) as a JSON-ready dict; ``argv``: the command to record."""
    sources = data_sources(data_dir)
    if test_set not in sources.test_sets:
        raise ValueError(f"no test set {test_set!r} in {sources.origin}; available: {', '.join(sources.test_sets)}")
    files = sources.test_sets[test_set][:limit]
    rt = Runtime.resolve("cpu", "fp32")
    colour = load_model(weights)
    cfg = NoiseConfig(kind="gaussian", sigma=float(sigma))
    estimating = GreyThroughColour(colour)
    methods = {"noisy_input": None, "replicated": GreyThroughColour(colour, match=False),
               "matched_estimated_sigma": estimating, "matched_true_sigma": GreyThroughColour(colour, sigma=sigma)}
    if bm3d and baselines.available():
        methods["bm3d_true_sigma"] = baselines.BM3DBaseline(cfg, paths.bm3d_cache_dir())
    per_image, names = {}, None
    for name, model in methods.items():
        ev = evaluate(model, files, test_noise(cfg), seed=0, rt=rt, grey=True, progress=False)
        names = ev.names
        per_image[name] = [round(v, 2) for v in (ev.psnr_input_images if model is None else ev.psnr_images)]
        print(f"{test_set} grey, sigma {sigma:g}, {name}: {statistics.fmean(per_image[name]):.2f} dB", flush=True)
    means = {name: round(statistics.fmean(values), 2) for name, values in per_image.items()}
    gain = round(means["matched_estimated_sigma"] - means["replicated"], 2)
    return {
        "what": f"grey {test_set} (Pillow 'L'), Gaussian sigma {sigma:g}, the shipped colour weights ({weights}): the "
                f"noisy input, the grey channel replicated to RGB, noise matching (n2n_core.evaluation.grey) with "
                f"sigma estimated per image and with the true sigma, and grey BM3D with the true sigma; PSNR in dB, "
                f"the paper's 8-bit protocol, noise seed 0",
        **provenance(argv), "number_format": "float32, 1 thread", "sigma": sigma, "set": test_set, "images": len(files),
        "psnr_db": means, "gain_db": {"matched_estimated_over_replicated": gain,
                                      "estimated_sigma_cost": round(means["matched_true_sigma"]
                                                                    - means["matched_estimated_sigma"], 2)},
        "target_gain_db": TARGET_GAIN_DB, "holds": gain >= TARGET_GAIN_DB,
        "sigma_estimated": {"mean": round(statistics.fmean(estimating.sigmas), 2),
                            "min": round(min(estimating.sigmas), 2), "max": round(max(estimating.sigmas), 2),
                            "per_image": [round(s, 2) for s in estimating.sigmas]},
        "names": names, "psnr_db_per_image": per_image,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m n2n_core.studies.greycheck", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sigma", type=float, default=25.0, help="Gaussian sigma of the grey noise (default 25)")
    parser.add_argument("--set", default="kodak", help="test set (default kodak)")
    parser.add_argument("--limit", type=int, help="only the first N images")
    parser.add_argument("--data-dir", help="folder with the test sets (default: N2N_DATA_DIR)")
    parser.add_argument("--no-bm3d", action="store_true", help="leave grey BM3D out")
    parser.add_argument("--out", help="write the JSON here (default: reports/greycheck.json)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # leaves the other cores to whatever else runs
    try:
        result = grey_check(args.sigma, args.set, args.data_dir, bm3d=not args.no_bm3d, limit=args.limit,
                            argv=["python", "-m", "n2n_core.studies.greycheck", *(sys.argv[1:] if argv is None else argv)])
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"greycheck: {err}") from None
    out = paths.atomic_write_text(args.out or paths.report_dir() / "greycheck.json",
                                  json.dumps(result, indent=2) + "\n")
    print(f"Wrote {out}: matching gains {result['gain_db']['matched_estimated_over_replicated']:.2f} dB over "
          f"replication (target {TARGET_GAIN_DB:g})", file=sys.stderr)


if __name__ == "__main__":
    main()
