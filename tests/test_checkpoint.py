"""Self-describing, atomically written checkpoints, and loading a trained model from one."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import n2n_core
from n2n_core.training import checkpoint
from n2n_core.paper import models
from n2n_core.training.checkpoint import atomic_save, load_checkpoint, load_model, save_checkpoint
from n2n_core.config import ModelConfig

RESNET = ModelConfig("resnet", depth=4, width=8)


def _trained_like(config: ModelConfig, seed: int = 0) -> torch.nn.Module:
    """A model whose weights are all non-trivial (REDNet starts with a zero last layer)."""
    net = models.build(config, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return net


def _save(path, net, config: ModelConfig, **kwargs):
    defaults = dict(model=net, model_args=models.model_args(config), config={"lr": 0.001, "crop": [64, 64]},
                    step=7, elapsed=1.5, history={"val_psnr": [20.5, 25.25], "val_step": [3, 7]}, seed=11)
    defaults.update(kwargs)
    return save_checkpoint(path, **defaults)


def test_checkpoint_round_trip(tmp_path):
    net = _trained_like(RESNET)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    net(torch.rand(1, 3, 8, 8)).mean().backward()
    optimizer.step()
    gen_state = torch.Generator().manual_seed(5).get_state()
    path = _save(tmp_path / "run.pth", net, RESNET, optimizer=optimizer, generator_state=gen_state, finished=True)
    assert path == tmp_path / "run.pth"

    state = load_checkpoint(path)
    assert state["format"] == checkpoint.FORMAT
    assert state["model_args"] == {"name": "resnet", "depth": 4, "width": 8}
    assert state["model"].keys() == net.state_dict().keys()
    assert all(torch.equal(state["model"][k], v) for k, v in net.state_dict().items())
    assert state["config"] == {"lr": 0.001, "crop": [64, 64]}
    assert state["history"] == {"val_psnr": [20.5, 25.25], "val_step": [3, 7]}
    assert (state["step"], state["elapsed_seconds"], state["seed"], state["finished"]) == (7, 1.5, 11, True)
    assert torch.equal(state["generator_state"], gen_state)
    restored = torch.optim.Adam(models.build(RESNET).parameters(), lr=1e-3)
    restored.load_state_dict(state["optimizer"])  # the optimizer state is usable
    assert restored.state_dict()["state"][0]["step"] == 1


def test_checkpoint_records_library_versions(tmp_path):
    state = load_checkpoint(_save(tmp_path / "v.pth", _trained_like(RESNET), RESNET))
    versions = state["versions"]
    assert versions["torch"] == str(torch.__version__) and isinstance(versions["torch"], str)
    assert versions["numpy"] == np.__version__
    assert versions["n2n_core"] == n2n_core.__version__
    assert versions["python"].count(".") == 2 and versions["platform"]


def test_checkpoint_is_readable_with_weights_only(tmp_path):
    path = _save(tmp_path / "w.pth", _trained_like(RESNET), RESNET)
    state = torch.load(path, weights_only=True)  # no pickled code inside
    assert state["format"] == checkpoint.FORMAT


def test_load_model_returns_an_eval_model_that_reproduces_outputs(tmp_path, generator):
    net = _trained_like(RESNET).eval()
    path = _save(tmp_path / "m.pth", net, RESNET)
    loaded = load_model(path)
    assert isinstance(loaded, models.REDNet) and not loaded.training
    x = torch.rand(2, 3, 37, 31, generator=generator)
    with torch.no_grad():
        assert torch.allclose(loaded(x), net(x), atol=1e-6)
        assert not torch.allclose(loaded(x), x)  # really the trained weights, not the identity start


def test_model_from_a_checkpoint_already_read_is_the_model_and_reads_no_file_again(tmp_path, generator, monkeypatch):
    net = _trained_like(RESNET).eval()
    path = _save(tmp_path / "m.pth", net, RESNET)
    state = load_checkpoint(path)
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("read the file again"))
    loaded = checkpoint.model_from_state(state, path)
    x = torch.rand(1, 3, 16, 16, generator=generator)
    with torch.no_grad():
        assert torch.allclose(loaded(x), net(x), atol=1e-6) and not loaded.training
    with pytest.raises(ValueError, match=r"m\.pth: holds a 'resnet' model, not the 'unet'"):
        checkpoint.model_from_state(state, path, expect="unet")


def test_load_model_of_a_unet(tmp_path, generator):
    cfg = ModelConfig("unet")
    net = models.build(cfg, seed=2).eval()
    path = _save(tmp_path / "u.pth", net, cfg)
    loaded = load_model(path, expect="unet")
    x = torch.rand(1, 3, 20, 20, generator=generator)
    with torch.no_grad():
        assert torch.allclose(loaded(x), net(x), atol=1e-5)


def test_load_model_of_the_wrong_architecture_names_both(tmp_path):
    cfg = ModelConfig("unet")
    path = _save(tmp_path / "u.pth", models.build(cfg, seed=0), cfg)
    with pytest.raises(ValueError) as info:
        load_model(path, expect="resnet")
    assert "'unet'" in str(info.value) and "'resnet'" in str(info.value) and "u.pth" in str(info.value)


def test_load_model_with_weights_that_do_not_fit(tmp_path):
    path = _save(tmp_path / "bad.pth", _trained_like(ModelConfig("resnet", depth=6, width=8)), RESNET)
    with pytest.raises(ValueError, match="do not fit"):
        load_model(path)


def test_random_bytes_are_not_a_readable_checkpoint(tmp_path):
    path = tmp_path / "garbage.pth"
    path.write_bytes(os.urandom(1000))
    with pytest.raises(ValueError, match="not a readable checkpoint") as info:
        load_checkpoint(path)
    assert "garbage.pth" in str(info.value)
    with pytest.raises(ValueError, match="garbage.pth"):
        load_model(path)


def test_a_plain_dict_is_not_an_n2n_core_checkpoint(tmp_path):
    path = tmp_path / "plain.pth"
    torch.save({"model": {"w": torch.zeros(2)}}, path)
    with pytest.raises(ValueError, match="not an n2n_core checkpoint") as info:
        load_checkpoint(path)
    assert "plain.pth" in str(info.value)
    torch.save([1, 2, 3], path)  # not even a dict
    with pytest.raises(ValueError, match="not an n2n_core checkpoint"):
        load_checkpoint(path)


def test_a_missing_checkpoint_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.pth"):
        load_checkpoint(tmp_path / "absent.pth")


def test_atomic_save_leaves_no_temporary_file(tmp_path):
    path = atomic_save({"a": torch.arange(3)}, tmp_path / "deep" / "er" / "x.pt")
    assert path.is_file()
    assert [p.name for p in path.parent.iterdir()] == ["x.pt"]
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.arange(3))
    atomic_save({"a": torch.arange(5)}, path)  # overwriting works
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.arange(5))
    assert [p.name for p in path.parent.iterdir()] == ["x.pt"]


def test_atomic_save_keeps_the_old_file_when_saving_fails(tmp_path, monkeypatch):
    path = atomic_save({"version": 1}, tmp_path / "keep.pt")
    before = path.read_bytes()

    def failing_save(obj, f, *args, **kwargs):
        with open(f, "wb") as handle:  # a half-written file, then the crash
            handle.write(b"partial")
        raise RuntimeError("disk full")

    net = _trained_like(RESNET)
    with monkeypatch.context() as patch:
        patch.setattr(torch, "save", failing_save)
        with pytest.raises(RuntimeError, match="disk full"):
            atomic_save({"version": 2}, path)
        with pytest.raises(RuntimeError, match="disk full"):
            _save(path, net, RESNET)
    assert path.read_bytes() == before
    assert torch.load(path, weights_only=True) == {"version": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["keep.pt"]  # the temporary file is gone
