"""Tiled inference and the file side of `n2n denoise`."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from n2n_core.data.augment import SelfEnsemble
from n2n_core.evaluation.denoise import _spans, check_tiling, denoise_files, denoise_tensor, expand_inputs, plan
from n2n_core.data.images import ImageError
from conftest import cpu_runtime

CPU = cpu_runtime()


def _local_net(seed=0):
    """Three 3x3 convolutions: each output pixel sees 3 pixels on every side, no further."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(8, 3, 3, padding=1)).eval()


@pytest.mark.parametrize("length,tile,overlap,align", [(100, 40, 8, 1), (41, 40, 8, 1), (40, 40, 8, 1), (7, 40, 8, 1),
                                                       (257, 64, 16, 1), (129, 64, 0, 1), (1120, 512, 32, 32),
                                                       (704, 512, 32, 32), (4000, 256, 32, 32), (544, 64, 16, 32)])
def test_spans_cover_every_pixel_once_inside_their_windows(length, tile, overlap, align):
    covered = np.zeros(length, int)
    for window, start, end in _spans(length, tile, overlap, align):
        assert window % align == 0  # on the U-Net's pooling grid
        assert 0 <= window <= start < end <= min(window + tile, length)
        assert window + min(tile, length) <= length
        # context on every inner side: the core stays `overlap` away from a window edge inside the image
        if start > 0:
            assert start - window >= overlap
        if end < length:
            assert window + tile - end >= overlap
        covered[start:end] += 1
    assert (covered == 1).all()


@pytest.mark.parametrize("shape,tile,overlap,batch", [((3, 90, 70), 32, 3, 1), ((3, 90, 70), 40, 4, 3),
                                                      ((3, 33, 100), 32, 5, 2)])
def test_tiles_with_enough_context_equal_the_whole_image(shape, tile, overlap, batch):
    net = _local_net()
    image = torch.rand(shape, generator=torch.Generator().manual_seed(1))
    whole = denoise_tensor(net, image, CPU, tile=0)
    tiled = denoise_tensor(net, image, CPU, tile=tile, overlap=overlap, batch=batch)
    assert tiled.shape == image.shape
    assert torch.allclose(tiled, whole, atol=1e-5)


def test_tiles_without_context_show_seams():
    net = _local_net()
    image = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(2))
    whole = denoise_tensor(net, image, CPU, tile=0)
    tiled = denoise_tensor(net, image, CPU, tile=32, overlap=0)
    assert not torch.allclose(tiled, whole, atol=1e-3)  # the test above would catch missing context


@pytest.mark.parametrize("tile,overlap,match", [(-1, 8, "tile must be >= 0"), (64, -2, "overlap must be >= 0"),
                                                (40, 16, "tile 40 is too small for overlap 16"),
                                                (1, 0, "tile 1 is too small to be useful"),
                                                (31, 0, "use --tile 0 .whole images. or at least 32")])
def test_bad_tiling_is_named(tile, overlap, match):
    with pytest.raises(ValueError, match=match):
        check_tiling(tile, overlap)


def _png(path, size=(20, 16), mode="RGB", seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = {"RGB": 3, "RGBA": 4}.get(mode)
    shape = (size[1], size[0], channels) if channels else (size[1], size[0])
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8), mode).save(path)
    return path


def test_inputs_are_files_folders_and_globs(tmp_path):
    a, b = _png(tmp_path / "in" / "a.png"), _png(tmp_path / "in" / "b.jpg")
    c = _png(tmp_path / "more" / "c.png")
    (tmp_path / "in" / "notes.txt").write_text("not an image")
    assert expand_inputs([str(tmp_path / "in")]) == [a.resolve(), b.resolve()]
    assert expand_inputs([str(c), str(tmp_path / "in" / "*.png"), str(a)]) == [c.resolve(), a.resolve()]


@pytest.mark.parametrize("case,match", [("empty", "no image files"), ("missing", "no such file or folder"),
                                        ("glob", "no file matches")])
def test_bad_inputs_are_named(tmp_path, case, match):
    (tmp_path / "empty").mkdir()
    item = {"empty": tmp_path / "empty", "missing": tmp_path / "nope.png", "glob": tmp_path / "*.tif"}[case]
    with pytest.raises(ImageError, match=match):
        expand_inputs([str(item)])


def test_plan_never_overwrites_without_permission(tmp_path):
    src = _png(tmp_path / "in" / "a.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").write_bytes(b"the user's file")
    with pytest.raises(ImageError, match=r"a.png already exist.*--overwrite"):
        plan([str(src)], out)
    assert (out / "a.png").read_bytes() == b"the user's file"
    assert plan([str(src)], out, overwrite=True)[0].target == (out / "a.png").resolve()


def test_plan_refuses_to_replace_an_input_or_merge_two_names(tmp_path):
    src = _png(tmp_path / "in" / "a.png")
    with pytest.raises(ImageError, match="would replace the input"):
        plan([str(src)], tmp_path / "in", overwrite=True)
    other = _png(tmp_path / "in2" / "a.png", seed=1)
    with pytest.raises(ImageError, match="would both be written"):
        plan([str(src), str(other)], tmp_path / "out")


def test_denoise_files_writes_each_image_in_its_own_form(tmp_path):
    grey = _png(tmp_path / "in" / "grey.png", mode="L")
    rgba = _png(tmp_path / "in" / "rgba.png", mode="RGBA", size=(40, 30))
    jobs = plan([str(tmp_path / "in")], tmp_path / "out")
    (tmp_path / "out").mkdir()
    written = denoise_files(_local_net(), jobs, CPU, tile=32, overlap=4, progress=False)
    assert [p.name for p in written] == ["grey.png", "rgba.png"]
    with Image.open(written[0]) as a, Image.open(written[1]) as b, Image.open(rgba) as original:
        assert (a.mode, a.size) == ("L", (20, 16)) and (b.mode, b.size) == ("RGBA", (40, 30))
        assert np.array_equal(np.asarray(b)[..., 3], np.asarray(original)[..., 3])
    assert grey.exists()


# ------------------------------------------------------------------------------ links in --out
@pytest.mark.parametrize("link", ["to_input", "to_outside", "dangling"])
def test_denoise_never_writes_through_a_link_in_out(tmp_path, link, capsys):
    """A link in --out named like an output is refused in one line, even with --overwrite: no input
    (or any other file) changes, nothing is written."""
    import os

    from n2n_core.__main__ import main

    shipped_input = tmp_path / "in" / "b.png"
    shipped_input.parent.mkdir()
    Image.fromarray(np.full((24, 24, 3), 90, np.uint8)).save(shipped_input)
    outside = tmp_path / "elsewhere" / "keep.png"
    outside.parent.mkdir()
    outside.write_bytes(b"not to be touched")
    out = tmp_path / "out"
    out.mkdir()
    target = {"to_input": shipped_input, "to_outside": outside, "dangling": tmp_path / "new" / "dir" / "x.png"}[link]
    os.symlink(target, out / "b.png")
    before = {p: p.read_bytes() for p in (shipped_input, outside)}
    code = main(["denoise", str(shipped_input), "--out", str(out), "--overwrite", "--checkpoint", "pretrained:gaussian",
                 "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "is a symbolic link" in err and "never writes through links" in err and err.count("\n") == 1
    assert {p: p.read_bytes() for p in before} == before
    assert not (tmp_path / "new").exists() and os.path.islink(out / "b.png")


@pytest.mark.parametrize("height,width,ensemble", [(70, 110, False), (33, 517, False), (65, 300, False),
                                                   (70, 110, True)])
def test_unet_tiles_equal_the_whole_image_borders_included(height, width, ensemble):
    """Tiles see the borders and the pooling grid of the whole image (the right and bottom edges used
    to differ by up to 44 levels): shipped weights, a noisy photograph of odd size."""
    import skimage.data

    from n2n_core import load_model
    from n2n_core.data.sets import load_image
    from n2n_core.paper.metrics import psnr, quantize

    model = load_model("pretrained:gaussian")
    model = SelfEnsemble(model) if ensemble else model  # which tiles on the U-Net's grid and padding too
    clean = load_image(Path(skimage.data.__file__).parent / "astronaut.png")[:, 100:100 + height, 50:50 + width]
    noisy = clean + 25 / 255 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    whole = denoise_tensor(model, noisy, CPU, tile=0)
    tiled = denoise_tensor(model, noisy, CPU, tile=64, overlap=16)
    levels = ((quantize(whole) - quantize(tiled)).abs() * 255).round()  # whole 8-bit levels (2.0000017 is 2)
    assert float(levels.max()) <= 2, float(levels.max())
    # tiles of 64 with 16 px of context see less than the U-Net's receptive field: 0.01-0.02 dB here
    # with the finished shipped weights (0.01 with those of step 39,524); a border bug costs whole dB
    assert abs(float(psnr(whole, clean)) - float(psnr(tiled, clean))) <= 0.03
