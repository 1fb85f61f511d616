"""Multi-page TIFF stacks: `n2n denoise` gives back a stack of as many pages, each page denoised as
that image alone would be; `--captures` takes a stack as one scene whose pages are its captures."""
from __future__ import annotations

import struct

import numpy as np
import pytest
import torch
from PIL import Image
from conftest import cpu_runtime, smooth_image
from test_captures import assert_train_refused, write_captures
from test_denoise import _local_net

from n2n_core.cli.main import main
from n2n_core.data import images, stacks
from n2n_core.data.sources import load_scenes, read_reference
from n2n_core.evaluation.denoise import denoise_files, plan

CPU = cpu_runtime()


def _pages(mode: str, count: int = 3, size=(20, 14)) -> list[Image.Image]:
    """``count`` different noisy pages of one smooth scene, in ``mode`` (L, I;16 or RGB)."""
    base = smooth_image(size[1], size[0], seed=2).astype(np.float64) / 255
    rng = np.random.default_rng(0)
    pages = []
    for _ in range(count):
        noisy = np.clip(base + rng.normal(0, 0.05, base.shape), 0, 1)
        if mode == "RGB":
            pages.append(Image.fromarray(np.round(noisy * 255).astype(np.uint8), "RGB"))
        elif mode == "L":
            pages.append(Image.fromarray(np.round(noisy.mean(-1) * 255).astype(np.uint8), "L"))
        else:
            samples = np.round(noisy.mean(-1) * 65535).astype("<u2")
            pages.append(Image.frombytes("I;16", size, samples.tobytes()))
    return pages


def _save_stack(path, pages, **options):
    path.parent.mkdir(parents=True, exist_ok=True)
    pages[0].save(path, format="TIFF", save_all=True, append_images=pages[1:], **options)
    return path


@pytest.mark.parametrize("mode", ["I;16", "RGB"])
def test_a_stack_is_denoised_page_by_page_into_a_stack(tmp_path, mode):
    pages = _pages(mode)
    source = _save_stack(tmp_path / "in" / "stack.tif", pages, description="ImageJ=1.54\nimages=3\n", dpi=(300, 300),
                         compression="tiff_lzw")
    singles = [_save_stack(tmp_path / "single" / f"page{k}.tif", [page]) for k, page in enumerate(pages)]
    net = _local_net()
    jobs = plan([str(source)], tmp_path / "out")
    assert [job.pages for job in jobs] == [3]
    written = denoise_files(net, jobs + plan([str(p) for p in singles], tmp_path / "each"), CPU, tile=0,
                            progress=False)
    with Image.open(written[0]) as out:
        assert out.n_frames == 3 and out.tag_v2.get(270) == "ImageJ=1.54\nimages=3\n"
        assert tuple(round(v) for v in out.info["dpi"]) == (300, 300) and out.info["compression"] == "tiff_lzw"
        for k, single in enumerate(written[1:]):
            out.seek(k)
            with Image.open(single) as alone:
                assert out.mode == alone.mode == mode and out.size == alone.size
                assert np.array_equal(np.asarray(out), np.asarray(alone))  # each page as that image alone
        assert not np.array_equal(np.asarray(out), np.asarray(pages[2]))  # denoised, not copied


def _two_page_rgb16(path) -> None:
    """A TIFF of two 16-bit RGB pages (Pillow cannot write one): the first page's directory, twice."""
    one = path.with_suffix(".one.tif")
    images.write_image(images.ImageFile(one, torch.rand(3, 6, 5), False, 16, format="TIFF"), torch.rand(3, 6, 5), one)
    blob = one.read_bytes()
    offset = struct.unpack("<I", blob[4:8])[0]
    directory = blob[offset:offset + 2 + 12 * struct.unpack("<H", blob[offset:offset + 2])[0]]
    path.write_bytes(blob[:-4] + struct.pack("<I", len(blob)) + directory + bytes(4))


def test_stacks_refused_in_one_line(tmp_path, capsys):
    _two_page_rgb16(tmp_path / "in" / "rgb16.tif")
    pages = _pages("L", 2)
    pages[1].save(tmp_path / "in" / "animation.gif", save_all=True, append_images=[pages[0]])
    for name, message in (("rgb16.tif", "a stack of 2 16-bit colour pages, which n2n cannot read at 16 bits"),
                          ("animation.gif", "holds 2 frames (an animation or a stack) where one image is expected")):
        assert main(["denoise", str(tmp_path / "in" / name), "--out", str(tmp_path / "out"), "--device", "cpu"]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------ scenes given as stacks
def _as_stacks(root, scenes):
    """The scene folders of ``write_captures`` rewritten as one multi-page TIFF each."""
    for s in scenes:
        folder = root / f"scene{s}"
        files = sorted(folder.iterdir())
        _save_stack(root / f"scene{s}.tif", [Image.open(f).copy() for f in files])
        for f in files:
            f.unlink()
        folder.rmdir()


def test_a_stack_scene_holds_the_same_captures_as_its_folder(tmp_path):
    folders = write_captures(tmp_path / "folders", scenes=2, captures=4, reference=tmp_path / "ref")
    stacked = write_captures(tmp_path / "stacked", scenes=2, captures=4)
    _as_stacks(stacked, [0])
    a, b = load_scenes(folders), load_scenes(stacked)
    assert [s.name for s in b] == ["scene0", "scene1"] and b[0].files == [stacked / "scene0.tif"]
    assert all(torch.equal(x.captures, y.captures) and x.grey == y.grey for x, y in zip(a, b))
    assert load_scenes(stacked, names=("scene0",))[0].files == b[0].files
    in_folder = read_reference(tmp_path / "ref", b[0])
    (tmp_path / "ref" / "scene0" / "clean.png").rename(tmp_path / "ref" / "scene0.png")  # a reference as a file
    (tmp_path / "ref" / "scene0").rmdir()
    assert torch.equal(read_reference(tmp_path / "ref", b[0]), in_folder)


def _spoil(root, case):
    if case == "one page":
        _save_stack(root / "scene9.tif", _pages("L", 1))
    elif case == "sizes":
        _save_stack(root / "scene9.tif", _pages("L", 1) + _pages("L", 1, size=(18, 14)))
    elif case == "copies":
        page = _pages("L", 1)[0]
        _save_stack(root / "scene9.tif", [page, page.copy()])
    elif case == "one name":
        _save_stack(root / "scene0.tif", _pages("L", 2))


@pytest.mark.parametrize("case, message", [
    ("one page", "scene9.tif: a TIFF of 1 page; a scene given as a file must be a stack of at least 2"),
    ("sizes", "scene9.tif (page 2) is 18x14 but"),
    ("copies", "scene9.tif (page 2) and"),
    ("one name", "are both scene 'scene0'"),
])
def test_bad_stack_scenes_are_one_line_and_write_nothing(tmp_path, capsys, case, message):
    root = write_captures(tmp_path / "captures", scenes=1, captures=2, size=20)
    _spoil(root, case)
    assert_train_refused(root, tmp_path / "never.pth", capsys, message, crop=8)


def test_read_pages_names_the_page_it_cannot_read(tmp_path):
    source = _save_stack(tmp_path / "s.tif", _pages("L", 3))
    data = bytearray(source.read_bytes())
    where = struct.unpack("<I", data[4:8])[0]  # follow the directories to the third page's
    for _ in range(2):
        count = struct.unpack("<H", data[where:where + 2])[0]
        where = struct.unpack("<I", data[where + 2 + 12 * count:where + 6 + 12 * count])[0]
    for k in range(struct.unpack("<H", data[where:where + 2])[0]):
        entry = where + 2 + 12 * k
        if struct.unpack("<H", data[entry:entry + 2])[0] == 273:  # its pixels: now past the end of the file
            data[entry + 8:entry + 12] = struct.pack("<I", len(data) + 1000)
    source.write_bytes(bytes(data))
    with pytest.raises(images.ImageError, match=r"s\.tif \(page 3 of 3\): damaged or truncated image"):
        list(stacks.read_pages(source))


def test_a_reference_both_as_a_folder_and_as_a_file_is_refused(tmp_path):
    captures = write_captures(tmp_path / "cap", scenes=1, captures=2, reference=tmp_path / "ref")
    (tmp_path / "ref" / "scene0.png").write_bytes((tmp_path / "ref" / "scene0" / "clean.png").read_bytes())
    with pytest.raises(Exception, match=r"clean\.png and .*scene0\.png are both references of scene 'scene0'"):
        read_reference(tmp_path / "ref", load_scenes(captures)[0])


def test_single_captures_take_every_page_of_a_stack(tmp_path):
    from n2n_core.config import TrainConfig
    from n2n_core.data.sources import SingleCaptures

    folder = tmp_path / "single"
    _save_stack(folder / "timelapse.tif", _pages("L", 3, size=(40, 36)))
    _pages("RGB", 1, size=(40, 36))[0].save(folder / "z_alone.png")
    prepared = SingleCaptures(folder).prepare(TrainConfig(crop=16, batch_size=2, max_steps=1, target="nb2nb"))
    assert prepared.described["images"] == 4  # three pages and the one image
    assert "z_alone.png" in prepared.described["validation"]  # the last capture is held out
    assert len(prepared.sampler.images) == 3 and all(i.shape == (3, 36, 40) for i in prepared.sampler.images)


@pytest.mark.parametrize("compression, kept", [("tiff_lzw", "tiff_lzw"), ("packbits", "packbits"),
                                               ("jpeg", "raw")])
def test_a_tiff_keeps_its_lossless_compression(tmp_path, compression, kept):
    source = tmp_path / "one.tif"
    _pages("RGB", 1)[0].save(source, compression=compression)
    image = images.read_image(source)
    images.write_image(image, image.rgb, tmp_path / "out.tif")
    with Image.open(tmp_path / "out.tif") as out:
        assert out.info["compression"] == kept  # a JPEG-compressed TIFF is not compressed a second time
