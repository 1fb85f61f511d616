"""The command line (``python -m n2n_core``, also installed as ``n2n``): each command checks its
arguments, calls the package and reports. The options are in ``cli.parser``."""
from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

# no imports of the package here: torch and the rest load inside main(), so that Ctrl-C while they
# load is one line too (``_load_libraries``)


class UsageError(Exception):
    """A wrong argument or input: printed as one line, no traceback."""


def _runtime(args):
    """The command's one Runtime, from --device, --precision, --threads and --compile where the
    command has it; each wrong value is one line naming its option. Sets the thread count."""
    from ..training.devices import CompilerMissing, threads
    from ..training.runtime import Runtime

    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads must be >= 1, got {args.threads}")
    threads(args.threads)  # a ValueError (N2N_THREADS that is not a number) is one line too
    try:  # the device alone first (in float32, which every device has), so that its error names --device
        device = Runtime.resolve(args.device, "fp32").device
    except (ValueError, RuntimeError) as error:
        raise UsageError(f"--device {args.device}: {error}") from None
    try:
        return Runtime.resolve(device, args.precision, compile=getattr(args, "compile", False))
    except CompilerMissing as error:
        raise UsageError(str(error)) from None
    except ValueError as error:
        raise UsageError(f"--precision {args.precision}: {error}") from None


def _eval(args) -> int:
    from ..evaluation import baselines, protocol
    from .. import paths
    from ..training.checkpoint import choose_checkpoint, load_checkpoint, model_from_state
    from .parser import levels
    from ..data.sets import from_image_folders

    if args.captures is not None or args.reference is not None:  # real noise: a third kind of evaluation
        return _eval_captures(args)
    if (args.checkpoint is None) == (args.baseline is None):
        raise UsageError("give a checkpoint or --baseline input|bm3d (one of the two)")
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit must be >= 1, got {args.limit}")
    rt = _runtime(args)
    checkpoint_noise, model = None, None
    if args.checkpoint:
        path = choose_checkpoint(args.checkpoint)
        try:
            state = load_checkpoint(path)
            checkpoint_noise, model = state["config"].get("noise"), model_from_state(state, path, device=rt.device)
        except (ValueError, RuntimeError) as error:
            raise UsageError(str(error) if str(path) in str(error) else f"{path}: {error}") from None
    noise_cfg = protocol.noise_from(checkpoint_noise, args.noise, **levels(args))
    if args.baseline == "bm3d":
        if not baselines.available():
            raise UsageError(f"--baseline bm3d needs the optional bm3d package: {baselines.INSTALL_HINT}")
        if baselines.baseline_name(noise_cfg.kind) is None:
            raise UsageError(f"no BM3D baseline for {noise_cfg.kind} noise (gaussian and poisson have one)")
        model = baselines.BM3DBaseline(noise_cfg, paths.bm3d_cache_dir())
    if args.images and (args.data_dir or args.sets):
        raise UsageError("--images replaces --data-dir and --sets; give one or the other")
    json_out = _json_output(args, path if args.checkpoint else None, [*(args.images or []), args.data_dir])
    sources = from_image_folders(args.images) if args.images else protocol.data_sources(args.data_dir)
    label = args.checkpoint or args.baseline
    sets, repeats = protocol.plan_sets(sources, args.sets, args.repeats)
    with paths.holding(json_out, "--json") if json_out else contextlib.nullcontext():
        evaluations = protocol.evaluate_sets(model, sources, sets, noise_cfg, seed=args.seed, rt=rt,
                                             repeats=repeats, limits={name: args.limit for name in sets},
                                             label=f"{label} | {noise_cfg.label} | ", ensemble=args.ensemble)
        if sources.note:
            print(sources.note)
        if json_out:
            protocol.write_json(json_out, label, noise_cfg, args.seed, rt.precision if model is not None else None,
                                evaluations)
    return 0


def _json_output(args, checkpoint, inputs: list):
    """``eval --json``'s file checked by the one rule for outputs (``paths.check_output``): not the
    evaluated checkpoint nor inside the data being evaluated (``inputs``), not replaced without --overwrite."""
    from .. import paths
    from ..training.checkpoint import resolve_checkpoint

    if args.json is None:
        return None
    inputs = ([resolve_checkpoint(checkpoint)] if checkpoint else []) + [i for i in inputs if i]
    return paths.check_output(args.json, inputs=inputs, overwrite=args.overwrite, flag="--json")


def _eval_captures(args) -> int:
    """`n2n eval --captures DIR --reference DIR [CHECKPOINT]`: real noise (``evaluation.captures``)."""
    from .. import paths
    from ..data.augment import SelfEnsemble
    from ..data.sources import load_scenes
    from ..evaluation import baselines, captures
    from ..evaluation.grey import weights_and_route
    from ..training.checkpoint import choose_checkpoint
    from .parser import levels

    if args.captures is None or args.reference is None:
        raise UsageError("--captures and --reference go together: the noisy scenes and the reference of each")
    given = [flag for flag, value in (("--baseline", args.baseline), ("--images", args.images),
                                      ("--data-dir", args.data_dir), ("--sets", args.sets), ("--noise", args.noise),
                                      ("--repeats", args.repeats != 1)) if value]
    given += [f"--{name.replace('_', '-')}" for name, value in levels(args).items() if value is not None]
    if given:
        raise UsageError(f"{given[0]} does not apply to --captures, which measures real noise against --reference")
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit must be >= 1, got {args.limit}")
    if args.ensemble and args.checkpoint is None:
        raise UsageError("--ensemble averages a network's outputs: give a checkpoint")
    rt = _runtime(args)
    model, grey = None, None
    if args.checkpoint:
        model, grey = weights_and_route(choose_checkpoint(args.checkpoint), default=False, device=rt.device)
        model = SelfEnsemble(model) if args.ensemble else model
    json_out = _json_output(args, args.checkpoint and choose_checkpoint(args.checkpoint),
                            [args.captures, args.reference])  # before the evaluation, not after it
    scenes = load_scenes(args.captures, limit=args.limit)
    references = [captures.read_reference(args.reference, scene) for scene in scenes]  # all checked before any work
    if not baselines.available():
        print(f"BM3D+GAT left out: the optional bm3d package is not installed ({baselines.INSTALL_HINT})")
    with paths.holding(json_out, "--json") if json_out else contextlib.nullcontext():
        rows = captures.evaluate_captures(scenes, references, model, rt, bm3d=baselines.available(), grey=grey)
        print(f"{args.checkpoint or 'no network'} | real noise: {args.captures} against {args.reference}")
        print(captures.table(rows), end="")
        if json_out:
            captures.write_json(json_out, args.checkpoint, rows, args.captures, args.reference,
                                rt.precision if model is not None else None)
    return 0


def _denoise(args) -> int:
    from ..training.checkpoint import choose_checkpoint
    from ..evaluation.denoise import check_tiling, default_batch, denoise_files, output_folder, plan
    from ..evaluation.grey import weights_and_route
    from ..training.devices import compile_module
    from ..paths import holding, output_path

    rt = _runtime(args)
    checkpoint = choose_checkpoint(args.checkpoint)
    if args.batch is not None and args.batch < 1:
        raise UsageError(f"--batch must be >= 1, got {args.batch}")
    check_tiling(args.tile, args.overlap)
    model, grey = weights_and_route(checkpoint, default=args.checkpoint is None, device=rt.device, expect=args.model)
    print(f"Weights: {checkpoint}" + (" (the shipped blind Gaussian U-Net; --checkpoint chooses others)"
                                       if args.checkpoint is None and str(checkpoint).startswith("pretrained:") else ""))
    if grey.model is not None:
        print(f"Grey images: {grey.name} (the shipped grey weights)")
    model = compile_module(model) if rt.compile else model
    jobs = plan(args.inputs, args.out, overwrite=args.overwrite, skip_existing=args.skip_existing)
    failures, out = [], output_path(args.out)
    with output_folder(out), holding(out):  # a second run into the same folder is refused while this one writes
        print(f"Denoising on {rt.describe()}" + (", x8 self-ensemble" if args.ensemble else ""))
        written = denoise_files(model, jobs, rt, tile=args.tile, overlap=args.overlap,
                                batch=args.batch or default_batch(rt.device), ensemble=args.ensemble, failures=failures,
                                grey=grey)
    print(f"Denoised {len(written)} image(s) into {out} with {checkpoint}")
    for _, reason in failures:
        print(f"failed: {reason}", file=sys.stderr)
    if failures:
        print(f"{len(failures)} of {len(jobs)} image(s) failed (above); the others are written. Mend or remove those "
              f"files and rerun with --skip-existing to finish the batch", file=sys.stderr)
        return 1
    return 0


def _pretrained(args) -> int:
    from ..studies import pretrained

    rt = _runtime(args)
    if args.card_only and args.no_card:
        raise UsageError("--card-only and --no-card exclude each other")
    if args.repeats < 1:
        raise UsageError(f"--repeats must be >= 1, got {args.repeats}")
    if not args.no_card:  # before any training: the card it would end with must be writable from these data
        pretrained.check_card_data(args.data_dir)
    if not args.card_only:
        pretrained.train(args.noise, max_minutes=args.max_minutes, data_dir=args.data_dir, rt=rt, grey=args.grey,
                         pool=args.pool)
    if not args.no_card:  # in float32 unless asked otherwise, so that its figures compare across machines
        pretrained.write_card(data_dir=args.data_dir, repeats=args.repeats, bm3d=args.bm3d,
                              rt=rt if rt.chosen else rt.with_precision("fp32"))
    return 0


def _train(args) -> int:
    from ..training.devices import process_group

    import dataclasses

    rt = _runtime(args)  # a bad --device or --precision is a usage error before any process group
    with process_group(rt.device) as distributed_device:  # under torchrun, this process's own GPU
        return _train_in_group(args, dataclasses.replace(rt, device=distributed_device or rt.device))


def _train_in_group(args, rt) -> int:
    from .parser import levels
    from ..config import get_profile
    from ..paper.noise import NoiseConfig
    from ..paths import holding
    from ..training.devices import world

    profile = get_profile(args.profile)
    if args.val_pickle is not None and args.pickle is None:
        raise UsageError("--val-pickle goes with --pickle")
    noise = NoiseConfig(args.noise, **levels(args))
    for flag, value in (("--steps", args.steps), ("--seconds", args.seconds)):
        if value is not None and not value > 0:
            raise UsageError(f"{flag} must be > 0, got {value:g}")
    if args.checkpoint_every is not None and not args.checkpoint_every > 0:
        raise UsageError(f"--checkpoint-every must be > 0 seconds, got {args.checkpoint_every}")
    source, location = next((name, value) for name, value in (("pairs", args.pairs), ("pickle", args.pickle),
                                                             ("single", args.single), ("clean", args.clean),
                                                             ("captures", args.captures)) if value)
    if source == "single" and args.target == "noisy":
        raise UsageError("--single trains Neighbor2Neighbor (--target nb2nb, its default); Noise2Noise (--target "
                         "noisy) needs two captures of each scene: --pairs")
    out = _train_output(args, source, location)
    with holding(out) if world()[0] == 0 else contextlib.nullcontext():  # one run at a time writes this file
        return _train_held(args, profile, noise, source, location, out, rt)


def _train_output(args, source: str, location):
    """``train --out`` (or its default) checked by the one rule for outputs before any data is read:
    never one of the run's inputs or inside its data folders; an existing file is read by ``existing_run``."""
    from ..paths import check_output
    from ..training.checkpoint import resolve_checkpoint
    from ..training.own import default_checkpoint

    inputs = list(location) if isinstance(location, (list, tuple)) else [location]
    inputs += [args.val_pickle] if args.val_pickle else []
    try:
        inputs += [resolve_checkpoint(args.init)] if args.init else []
    except ValueError as error:
        raise UsageError(f"--init {error}") from None
    return check_output(args.out if args.out is not None else default_checkpoint(args.model, source), inputs=inputs,
                        overwrite=None)


def train_settings(args, profile, source: str, precision: str):
    """The training settings `n2n train` takes from its options (``args``) in ``precision``."""
    return profile.run_settings(args.model, args.noise, args.target or ("nb2nb" if source == "single" else "noisy"),
                                args.seed, max_steps=args.steps, max_seconds=args.seconds, crop=args.crop,
                                batch_size=args.batch_size, lr=args.lr, loss=args.loss, nb2nb_gamma=args.nb2nb_gamma,
                                val_every=args.val_every, checkpoint_every_seconds=args.checkpoint_every,
                                precision=precision)


def _train_held(args, profile, noise, source: str, location, out, rt) -> int:
    from ..training.own import existing_run, train_own
    from ..training.devices import world
    from ..training.train import resumed_runtime

    state = existing_run(out, args.overwrite)  # read once: the resume state and the run's own number format
    rt = resumed_runtime(rt, state, out)
    train_cfg = train_settings(args, profile, source, rt.precision)
    run = train_own(source, location, profile.model(args.model), train_cfg, out=out,
                    noise=noise if source == "clean" else None, data_cfg=profile.data, val_pickle=args.val_pickle,
                    overwrite=args.overwrite, rt=rt, init=args.init, state=state)
    if world()[0] != 0:
        return 0
    h = run.history
    print(f"Wrote {run.checkpoint}: {h.step[-1] if h.step else 0} steps, validation PSNR {h.val_psnr[-1]:.2f} dB "
          f"(input {h.val_psnr_input:.2f} dB; reference: {run.config['source']['validation']})")
    return 0


def _load_libraries() -> None:
    """Import torch, numpy and the parser with Ctrl-C held back, then raise it if it came: a
    KeyboardInterrupt inside their imports can be lost (torch's C code takes a failed import of
    numpy for a missing numpy and goes on: a Ctrl-C early in the start was ignored, on a loaded
    2-core machine) or leave numpy half-loaded (a RecursionError instead of one line)."""
    import signal

    held = []
    try:
        previous = signal.getsignal(signal.SIGINT)
        if previous is not signal.SIG_IGN:
            signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    except ValueError:  # main() called outside the main thread: no handler to change
        previous = None
    try:
        import numpy  # noqa: F401
        import torch  # noqa: F401

        from . import parser  # noqa: F401
    finally:
        if previous not in (None, signal.SIG_IGN):
            signal.signal(signal.SIGINT, previous)
    if held:
        raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    commands = {"eval": _eval, "summary": _summary, "plan": _plan, "denoise": _denoise, "train": _train, "pretrained": _pretrained}
    command = None
    try:
        _load_libraries()
        from .parser import parser
        from ..training.devices import show_thread_changes

        show_thread_changes()  # on standard error: a notebook that runs the command shows its output only
        args = parser().parse_args(argv)
        command = args.command
        return commands[command](args)
    except (UsageError, ValueError, FileNotFoundError) as error:  # the package's errors in the input: one line
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:
        if hasattr(stop, "checkpoint"):  # train.TrainingInterrupted: a checkpoint at the current step
            print(stop.resume_hint(), file=sys.stderr)
            return stop.exit_code
        print("interrupted" + (" (a training run resumes from its last checkpoint, if it wrote one)"
                               if command in ("train", "pretrained") else ""), file=sys.stderr)
        # and leave at once: a Ctrl-C that lands in code a C extension runs through PyRun_String (as
        # while torch loads) makes CPython kill itself with SIGINT at exit, status -2 instead of 130,
        # although it was caught here (seen about one start in three on a loaded 2-core machine)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)


def _plan(args) -> int:
    import shlex

    from ..config import get_profile
    from ..studies import plan
    from ..training.runtime import Runtime

    known = plan.notebook_names()
    wanted = [Path(name).name.removesuffix(".ipynb") for name in args.notebooks]
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise UsageError(f"unknown notebook {unknown[0]!r}; choose from {', '.join(known)}")
    if (args.write is None) != (args.run is None):
        raise UsageError("--write and --run go together (the plan file and the make run it is for)")
    profile = get_profile(args.profile)
    notebooks = [name for name in known if name in wanted] if args.notebooks else known
    the_plan = plan.make_plan(profile, notebooks, Runtime.resolve(),
                              papermill=shlex.split(args.papermill) if args.papermill else None)
    print(plan.describe(the_plan, profile.name), end="", flush=True)
    if args.write:
        plan.write_plan(args.write, the_plan, args.run)
    return 0


def _summary(args) -> int:
    from ..studies import experiment
    from ..config import get_profile

    profile = get_profile(args.profile)
    results = experiment.read_results(profile)
    if not results:
        print(f"no results for the {profile.name} profile yet: run `make all`", file=sys.stderr)
        return 1
    print(experiment.summary_table(profile), end="")
    return 0
