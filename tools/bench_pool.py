#!/usr/bin/env python3
"""The cost of the shipped weights' training pool: the sampler's time per batch, and the peak memory of
building it, for pool folders of a data folder.

    python tools/bench_pool.py sampler --data DIR [--pool train_pool] [--batches 300]
    python tools/bench_pool.py memory --data DIR --pool train_pool imagenet_sample bsds500_test

``sampler``: cuts the `pretrained` profile's patch sets from the pool (the time is printed), builds
its sampler (noisy pairs of blind Gaussian noise, the profile's crop and batch) and draws batches on
one thread; prints the median milliseconds per batch over rounds of ``--batches`` batches.
``memory``: builds the patch sets and the sampler only, then prints this process's peak resident
memory (``resource.getrusage``) and the resident memory the imports alone took. Run each in a
process of its own (the peak covers the whole process), from the repository root with
``PYTHONPATH=$PWD``; pointing PYTHONPATH at another checkout measures that one (the script uses
only what every version of the package has). It prints its numbers and records nothing.
"""
from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path


def build_sampler(data: Path, pool: list[str]):
    """(the sampler, seconds to cut the patch sets) of the `pretrained` profile on the pooled folders."""
    from n2n_core.data.patches import build_patch_sets
    from n2n_core.data.sets import DataSources, list_images
    from n2n_core.data.sources import PatchSource
    from n2n_core.studies import pretrained

    prof = pretrained.profile()
    files = [f for name in sorted(set(pool)) for f in list_images(data / name)]
    started = time.perf_counter()
    sets = build_patch_sets(DataSources(files, {}, "folder", str(data)), prof.data, prof.train.seed)
    seconds = time.perf_counter() - started
    sampler = PatchSource(sets.train, sets.val, pretrained.noise_config("gaussian")).prepare(prof.train).sampler
    return sampler, seconds, len(files)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=("sampler", "memory"))
    p.add_argument("--data", type=Path, required=True, help="the data folder (N2N_DATA_DIR)")
    p.add_argument("--pool", nargs="+", default=["train_pool"], help="pool folders in it (default train_pool)")
    p.add_argument("--batches", type=int, default=300, help="batches per round (sampler)")
    p.add_argument("--rounds", type=int, default=5, help="rounds, of which the median is printed (sampler)")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    imports = peak_mb()
    sampler, seconds, images = build_sampler(args.data, args.pool)
    print(f"pool {' + '.join(sorted(set(args.pool)))}: {images} images; patch sets cut in {seconds:.1f} s")
    if args.what == "memory":
        print(f"peak resident memory {peak_mb():.0f} MB (imports alone: {imports:.0f} MB)")
        return 0
    rounds = []
    for _ in range(args.rounds):
        started = time.perf_counter()
        for _ in range(args.batches):
            sampler.sample()
        rounds.append(1000 * (time.perf_counter() - started) / args.batches)
    print(f"sampler: {statistics.median(rounds):.3f} ms per batch (median of {args.rounds} rounds of {args.batches}; "
          f"rounds {', '.join(f'{r:.3f}' for r in rounds)}), 1 thread")
    return 0


if __name__ == "__main__":
    sys.exit(main())
