"""Real noise: `n2n train --captures` (scenes of several aligned captures, every pair drawn) and
`n2n eval --captures --reference` (a network beside one capture, means of captures and BM3D after
the generalized Anscombe transform with the noise estimated from the captures). All data here are
generated: smooth scenes with independent Poisson-Gaussian noise per capture."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from conftest import smooth_image, write_png

from n2n_core.cli.main import main
from n2n_core.config import ModelConfig, TrainConfig
from n2n_core.data.sources import SOURCES, CaptureCrops, CaptureFolders, load_scenes
from n2n_core.evaluation import baselines
from n2n_core.training.checkpoint import load_checkpoint
from n2n_core.training.own import train_own
from n2n_core.training.runtime import Runtime

CPU = Runtime.resolve("cpu")
SMALL = ModelConfig("resnet", depth=4, width=8)
GAIN, FLOOR = 0.01, 4e-4  # the noise of the generated captures: variance GAIN * x + FLOOR


def poisson_gaussian(clean: np.ndarray, rng: np.random.Generator, a: float = GAIN, b: float = FLOOR) -> np.ndarray:
    return a * rng.poisson(clean / a) + rng.normal(0.0, b ** 0.5, clean.shape)


def write_captures(root, scenes=4, captures=4, size=48, grey=False, reference=None):
    """``root/scene<i>/cap<k>.png``: independent Poisson-Gaussian captures of smooth scenes, 8 bit;
    with ``reference``, the clean scene as ``reference/scene<i>/clean.png``."""
    for s in range(scenes):
        clean = smooth_image(size, size, seed=s) / 255.0
        clean = clean.mean(-1) if grey else clean
        rng = np.random.default_rng(1000 + s)
        for k in range(captures):
            noisy = np.clip(np.round(poisson_gaussian(clean, rng) * 255), 0, 255).astype(np.uint8)
            write_png(root / f"scene{s}" / f"cap{k}.png", noisy)
        if reference is not None:
            write_png(reference / f"scene{s}" / "clean.png", np.round(clean * 255).astype(np.uint8))
    return root


@pytest.fixture
def captures_dir(tmp_path):
    return write_captures(tmp_path / "captures")


# ------------------------------------------------------------------------------ the sampler
def _coded_scene(count: int, size: int = 12) -> torch.Tensor:
    """``count`` captures, capture k holding the value 10 k everywhere (so a crop says which it is)."""
    return torch.stack([torch.full((1, size, size), 10 * k, dtype=torch.uint8) for k in range(count)])


def _drawn_pairs(sampler, batches: int) -> list[tuple[int, int]]:
    pairs = []
    for _ in range(batches):
        batch = sampler.sample()
        codes = [(batch.input[i] * 255).round() / 10 for i in range(len(batch.input))]
        targets = [(batch.target[i] * 255).round() / 10 for i in range(len(batch.target))]
        for c, t in zip(codes, targets):
            assert c.min() == c.max() and t.min() == t.max()  # the same crop of one capture each
            pairs.append((int(c.flatten()[0]), int(t.flatten()[0])))
    return pairs


def test_the_sampler_draws_two_different_captures_and_every_pair():
    sampler = CaptureCrops([_coded_scene(4)], crop=8, batch_size=16, generator=torch.Generator().manual_seed(0))
    batch = sampler.sample()
    assert batch.input.shape == batch.target.shape == (16, 3, 8, 8)  # grey replicated to the network's channels
    pairs = _drawn_pairs(sampler, 20)
    assert all(i != j for i, j in pairs)
    assert set(pairs) == {(i, j) for i in range(4) for j in range(4) if i != j}  # all 12 ordered pairs
    counts = np.bincount([4 * i + j for i, j in pairs], minlength=16)
    assert counts[counts > 0].min() > 0.4 * len(pairs) / 12  # and none of them rarely


def test_the_sampler_cuts_input_and_target_alike():
    base = torch.arange(3 * 20 * 24, dtype=torch.int64).reshape(3, 20, 24) % 200
    scene = torch.stack([(base + k).to(torch.uint8) for k in range(3)])  # capture k is k levels brighter
    sampler = CaptureCrops([scene], crop=8, batch_size=32, generator=torch.Generator().manual_seed(1))
    batch = sampler.sample()
    diff = ((batch.target - batch.input) * 255).round().flatten(1)
    assert (diff == diff[:, :1]).all() and (diff[:, 0] != 0).all()  # one offset per sample: same crop and flip


def test_the_sampler_is_reproducible_from_the_seed_and_resumes_from_its_state():
    scenes = [_coded_scene(5, 16), _coded_scene(3, 20)]

    def sampler(seed):
        return CaptureCrops(scenes, crop=8, batch_size=4, generator=torch.Generator().manual_seed(seed))

    first, again, other = sampler(7), sampler(7), sampler(8)
    a = [first.sample() for _ in range(3)]
    assert all(torch.equal(x.input, y.input) for x, y in zip(a, [again.sample() for _ in range(3)]))
    assert not all(torch.equal(x.input, y.input) for x, y in zip(a, [other.sample() for _ in range(3)]))
    state = first.get_state()
    expected = [first.sample() for _ in range(2)]
    resumed = sampler(12345)
    resumed.set_state(state)
    assert all(torch.equal(x.input, y.input) and torch.equal(x.target, y.target)
               for x, y in zip(expected, [resumed.sample() for _ in range(2)]))


def test_captures_are_one_source_of_the_registry():
    assert SOURCES["captures"] is CaptureFolders


# ------------------------------------------------------------------------------ training
QUICK = TrainConfig(crop=16, batch_size=2, max_steps=4, val_every=2, lr=1e-3, checkpoint_every_seconds=0.0)


def test_train_on_captures_records_the_data_and_validates_against_the_mean(captures_dir, tmp_path):
    out = tmp_path / "own.pth"
    run = train_own("captures", captures_dir, SMALL, QUICK, out=out, rt=CPU, progress=False)
    source = load_checkpoint(out)["config"]["source"]
    assert source["kind"] == "captures" and source["scenes"] == 4 and source["captures"] == 16
    assert len(source["digest"]) == 32 and "scene3" in source["validation"] and "mean" in source["validation"]
    assert len(run.history.val_psnr) == 2
    # the data's identity: other pixels are another run, refused rather than resumed
    write_png(captures_dir / "scene0" / "cap0.png", np.zeros((48, 48, 3), np.uint8))
    torch.save({**load_checkpoint(out), "finished": False}, out)
    with pytest.raises(ValueError, match=r"other data \(source.digest differs"):
        train_own("captures", captures_dir, SMALL, QUICK, out=out, rt=CPU, progress=False)


def test_grey_captures_train_replicated_to_three_channels(tmp_path):
    root = write_captures(tmp_path / "grey", scenes=2, captures=3, grey=True)
    scenes = load_scenes(root)
    assert scenes[0].grey and scenes[0].captures.shape == (3, 1, 48, 48)  # stored once, one channel
    train_own("captures", root, SMALL, QUICK, out=tmp_path / "g.pth", rt=CPU, progress=False)


def test_an_interrupted_run_resumes_as_if_never_stopped(captures_dir, tmp_path, monkeypatch):
    cfg = TrainConfig(crop=16, batch_size=2, max_steps=6, val_every=3, lr=1e-3, checkpoint_every_seconds=0.0)
    reference = train_own("captures", captures_dir, SMALL, cfg, out=tmp_path / "ref.pth", rt=CPU, progress=False)
    calls, real_sample = [], CaptureCrops.sample

    def stopping(self):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real_sample(self)

    out = tmp_path / "stopped.pth"
    monkeypatch.setattr(CaptureCrops, "sample", stopping)
    with pytest.raises(KeyboardInterrupt):
        train_own("captures", captures_dir, SMALL, cfg, out=out, rt=CPU, progress=False)
    assert load_checkpoint(out)["step"] == 3
    monkeypatch.setattr(CaptureCrops, "sample", real_sample)
    resumed = train_own("captures", captures_dir, SMALL, cfg, out=out, rt=CPU, progress=False)
    for (name, a), b in zip(reference.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-7), name


def test_train_captures_from_the_command_line(captures_dir, tmp_path, capsys):
    out = tmp_path / "cli.pth"
    assert main(["train", "--captures", str(captures_dir), "--model", "resnet", "--profile", "smoke", "--steps", "2",
                 "--crop", "16", "--batch-size", "2", "--val-every", "2", "--out", str(out), "--device", "cpu"]) == 0
    assert "against the mean of their other captures" in capsys.readouterr().out


def _break(root, case):
    """Spoil a good captures folder in one of the ways `n2n train --captures` refuses."""
    if case == "one capture":
        for k in (1, 2, 3):
            (root / "scene2" / f"cap{k}.png").unlink()
    elif case == "sizes":
        write_png(root / "scene1" / "cap3.png", np.zeros((40, 48, 3), np.uint8))
    elif case == "empty":
        for folder in list(root.iterdir()):
            shutil.rmtree(folder)
    elif case == "copies":
        shutil.copy(root / "scene0" / "cap0.png", root / "scene0" / "cap1.png")
    elif case == "modes":
        write_png(root / "scene3" / "cap2.png", np.zeros((48, 48), np.uint8))


@pytest.mark.parametrize("case, message", [
    ("one capture", "holds 1 capture(s); every scene folder needs at least 2"),
    ("sizes", "must have the same size"),
    ("empty", "holds no scenes"),
    ("copies", "hold the same pixels"),
    ("modes", "is grey 8-bit but"),
])
def test_bad_captures_folders_are_one_line_and_write_nothing(captures_dir, tmp_path, capsys, case, message):
    _break(captures_dir, case)
    assert_train_refused(captures_dir, tmp_path / "never.pth", capsys, message)


def assert_train_refused(captures, out, capsys, message, crop=16):
    """`n2n train --captures` refuses ``captures`` in one line holding ``message``, exit 2, and writes nothing."""
    code = main(["train", "--captures", str(captures), "--model", "resnet", "--profile", "smoke", "--steps", "2",
                 "--crop", str(crop), "--out", str(out), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not out.exists()


# ------------------------------------------------------------------------------ evaluation
@pytest.mark.parametrize("a, b", [(0.01, 4e-4), (0.004, 1e-3)])
def test_the_noise_estimator_recovers_known_parameters(a, b):
    clean = smooth_image(128, 128, seed=3) / 255.0
    rng = np.random.default_rng(5)
    captures = torch.from_numpy(np.stack([poisson_gaussian(clean, rng, a, b) for _ in range(8)])).permute(0, 3, 1, 2)
    got_a, got_b = baselines.estimate_poisson_gaussian(captures)
    assert got_a == pytest.approx(a, rel=0.05) and got_b == pytest.approx(b, rel=0.2)


def test_the_generalized_anscombe_transform_stabilises_and_inverts():
    x = np.full(200_000, 0.3)
    z = poisson_gaussian(x, np.random.default_rng(0))
    stabilised = baselines.generalized_anscombe(z, GAIN, FLOOR)
    assert stabilised.std() == pytest.approx(1.0, abs=0.03)
    assert baselines.inverse_generalized_anscombe(np.array([stabilised.mean()]), GAIN, FLOOR)[0] == \
        pytest.approx(0.3, rel=0.01)


def test_eval_captures_has_every_baseline_and_the_means_rise_with_k(tmp_path, capsys):
    captures = write_captures(tmp_path / "cap", scenes=2, captures=8, reference=tmp_path / "ref")
    out = tmp_path / "real.json"
    assert main(["eval", "--captures", str(captures), "--reference", str(tmp_path / "ref"), "--json", str(out),
                 "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert all(label in printed for label in ("1 capture", "mean of 2", "mean of 8", "BM3D+GAT"))
    stored = json.loads(out.read_text())["sets"]["cap"]
    assert set(stored["methods"]) == {"capture", "mean2", "mean4", "mean8", "bm3d_vst"} and stored["images"] == 2
    for scene in stored["per_image"]:
        m = scene["methods"]
        assert m["capture"]["psnr"] < m["mean2"]["psnr"] < m["mean4"]["psnr"] < m["mean8"]["psnr"]
        assert m["bm3d_vst"]["psnr"] > m["capture"]["psnr"] + 3
        assert scene["noise_a"] == pytest.approx(GAIN, rel=0.3)


def test_eval_captures_names_a_scene_whose_reference_is_darker_than_its_captures(tmp_path, capsys):
    captures = write_captures(tmp_path / "cap", scenes=2, captures=4, reference=tmp_path / "ref")
    dimmed = tmp_path / "ref" / "scene1" / "clean.png"
    pixels = np.asarray(Image.open(dimmed))
    write_png(dimmed, np.round(pixels * 0.95).astype(np.uint8))  # as if bleached: 5% darker
    out = tmp_path / "real.json"
    assert main(["eval", "--captures", str(captures), "--reference", str(tmp_path / "ref"), "--json", str(out),
                 "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "scene1: the mean of its captures is 5." in printed and "% brighter than its reference" in printed
    assert "scene0:" not in printed  # the same brightness: nothing said
    gains = {s["image"]: s["gain"] for s in json.loads(out.read_text())["sets"]["cap"]["per_image"]}
    assert gains["scene0"] == pytest.approx(1.0, abs=0.01) and gains["scene1"] == pytest.approx(0.95, abs=0.01)


def test_eval_captures_with_a_checkpoint_and_a_limit(captures_dir, tmp_path, capsys):
    write_captures(tmp_path / "unused", scenes=4, captures=1, reference=tmp_path / "ref")
    checkpoint = tmp_path / "c.pth"
    train_own("captures", captures_dir, SMALL, QUICK, out=checkpoint, rt=CPU, progress=False)
    out = tmp_path / "e.json"
    assert main(["eval", str(checkpoint), "--captures", str(captures_dir), "--reference", str(tmp_path / "ref"),
                 "--limit", "1", "--json", str(out), "--device", "cpu"]) == 0
    stored = json.loads(out.read_text())
    data = stored["sets"]["captures"]
    assert data["images"] == 1 and data["psnr"] is not None and "model" in data["methods"]
    assert "mean8" not in data["methods"] and stored["model"] == str(checkpoint)  # 4 captures: no mean of 8
    assert "network" in capsys.readouterr().out


@pytest.mark.parametrize("extra, message", [
    (["--reference", "MISSING"], "no such folder"),
    ([], "--captures and --reference go together"),
    (["--reference", "REF", "--baseline", "bm3d"], "--baseline does not apply"),
    (["--reference", "REF", "--sigma", "25"], "--sigma does not apply"),
])
def test_eval_captures_errors_are_one_line(captures_dir, tmp_path, capsys, extra, message):
    write_captures(tmp_path / "unused", scenes=4, captures=1, reference=tmp_path / "REF")
    extra = [str(tmp_path / e) if e in ("MISSING", "REF") else e for e in extra]
    code = main(["eval", "--captures", str(captures_dir), *extra, "--json", str(tmp_path / "x.json")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "x.json").exists()


def test_eval_captures_takes_grey_weights_and_grey_captures_as_denoise_does(tmp_path):
    """Grey captures through grey (one-channel) weights: the network's number is the model's own
    output on the capture's one channel, as `n2n denoise` gives it."""
    from PIL import Image

    from n2n_core.paper.metrics import psnr
    from n2n_core.paper.models import build, model_args
    from n2n_core.training.checkpoint import load_model, save_checkpoint

    captures = write_captures(tmp_path / "cap", scenes=2, captures=3, size=32, grey=True, reference=tmp_path / "ref")
    config = ModelConfig("resnet", depth=4, width=8, channels=1)
    net = build(config, seed=0)
    with torch.no_grad():  # a network that changes its input (a fresh one is near the identity)
        for p in net.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    checkpoint = save_checkpoint(tmp_path / "grey.pth", model=net, model_args=model_args(config),
                                 config={}, step=0, elapsed=0.0, history={}, seed=0, finished=True)
    out = tmp_path / "e.json"
    assert main(["eval", str(checkpoint), "--captures", str(captures), "--reference", str(tmp_path / "ref"),
                 "--json", str(out), "--device", "cpu"]) == 0
    stored = json.loads(out.read_text())["sets"]["cap"]["per_image"]
    model = load_model(str(checkpoint))
    for row, scene in zip(stored, load_scenes(captures)):
        reference = np.asarray(Image.open(tmp_path / "ref" / scene.name / "clean.png"), dtype=np.float32) / 255.0
        with torch.inference_mode():
            own = model(scene.floats()[:1, :1]).clamp(0, 1)[0]
        expected = psnr(own.expand(3, -1, -1), torch.from_numpy(reference).expand(3, -1, -1))
        assert row["psnr"] == pytest.approx(float(expected), abs=1e-3) and row["psnr"] != row["psnr_input"]
