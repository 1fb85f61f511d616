"""A property test of the command line against a new user's odd and bad inputs: for every
generated case `n2n denoise` and `n2n train` either succeed with a correct output (exit 0), refuse in
one line naming the problem (exit 2, no traceback), or, for a batch in which a file is found damaged
only when its pixels are read, report it and finish the rest (exit 1 with a summary). In every case
no input byte changes and no partial output is left behind. The cases: damaged and odd image files
(modes, bit depths, orientation, profiles, transparency, special files), odd pairs, every writer
(denoise, train, eval --json) on every odd output (an input, inside the data, a link, a folder, a
long name, a file already there, a file another process holds), and runs that cannot converge."""
from __future__ import annotations

import io
import os
import random
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from n2n_core.__main__ import main
from n2n_core.data.images import png_bit_depth

SEED = 20181213


def _photo(height: int = 40, width: int = 48, seed: int = 0) -> np.ndarray:
    from conftest import smooth_image

    return smooth_image(height, width, seed)


def _encoded(mode: str, suffix: str, size=(48, 40)) -> bytes:
    rgb = Image.fromarray(_photo(size[1], size[0]))
    grey = np.asarray(rgb.convert("L"))
    image = {"F": lambda: Image.fromarray(grey.astype(np.float32) / 255.0),
             "I;16": lambda: Image.fromarray(grey.astype(np.uint16) * 257),
             "I": lambda: Image.fromarray(grey.astype(np.int32) * 100)}.get(mode, lambda: rgb.convert(mode))()
    buffer = io.BytesIO()
    image.save(buffer, format=Image.registered_extensions()[suffix])
    return buffer.getvalue()


def _png_claiming(width: int, height: int) -> bytes:
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def _cases() -> list[tuple[str, str, bytes]]:
    """(case id, file name, file bytes): at least 30, from a fixed seed."""
    rng = random.Random(SEED)
    cases = []
    for suffix in (".png", ".jpg", ".tif", ".webp", ".bmp", ".gif"):
        whole = _encoded("RGB", suffix)
        for k in range(2):  # truncated at random offsets
            cut = rng.randrange(1, len(whole) - 1)
            cases.append((f"truncated{suffix}@{cut}", f"cut{k}{suffix}", whole[:cut]))
        cases.append((f"random{suffix}", f"noise{suffix}", bytes(rng.randrange(256) for _ in range(rng.randrange(1, 3000)))))
    for mode, suffix in (("1", ".png"), ("L", ".png"), ("LA", ".png"), ("P", ".png"), ("RGB", ".png"), ("RGBA", ".png"),
                         ("I;16", ".png"), ("I", ".tif"), ("F", ".tif"), ("CMYK", ".jpg"), ("CMYK", ".tif"),
                         ("YCbCr", ".jpg"), ("LAB", ".tif"), ("RGBA", ".webp"), ("L", ".jpg"), ("P", ".gif")):
        cases.append((f"mode {mode}{suffix}", f"mode_{mode.replace(';', '')}{suffix}", _encoded(mode, suffix)))
    for size in ((1, 1), (2, 3), (5, 700)):
        cases.append((f"tiny {size}", f"tiny_{size[0]}x{size[1]}.png", _encoded("RGB", ".png", size)))
    cases += _deep_cases(rng)
    cases.append(("huge claimed", "huge.png", _png_claiming(40000, 40000)))
    cases.append(("empty file", "empty.png", b""))
    cases.append(("text as png", "notes.png", b"these are my notes, not an image\n"))
    return cases


def _deep_cases(rng: random.Random) -> list[tuple[str, str, bytes]]:
    """Files Pillow would cut to 8 bits or strip of their metadata: 16-bit colour TIFF (one Pillow can open
    but refused: LZW; one whose strip is shorter than its tags say) and PPM, 16-bit PNGs turned by their
    EXIF orientation and with an ICC profile, tRNS colour keys (8-bit RGB, 16-bit grey); each 16-bit kind
    also truncated at a random offset."""
    from imagefiles import icc_profile, png16_bytes, ppm16_bytes, tiff16_bytes

    rgb16 = _photo().astype(np.uint16) * 257 + np.arange(40 * 48 * 3, dtype=np.uint16).reshape(40, 48, 3) % 257
    grey16 = rgb16[..., :1].copy()
    keyed = _photo()
    keyed[5:15, 10:20] = 0
    buffer = io.BytesIO()
    Image.fromarray(keyed).save(buffer, format="PNG", transparency=(0, 0, 0))
    grey16[5:15, 10:20] = 4321
    deep = [("16-bit tiff", "rgb16.tif", tiff16_bytes(rgb16, icc=icc_profile(), orientation=6)),
            ("16-bit tiff deflate big-endian", "rgb16z.tif", tiff16_bytes(rgb16, 8, ">", predictor=2)),
            ("16-bit tiff rgba", "rgba16.tif", tiff16_bytes(np.dstack([rgb16, grey16]), icc=icc_profile())),
            ("16-bit tiff lzw", "rgb16lzw.tif", tiff16_bytes(rgb16, compression=5)),
            ("16-bit tiff short strip", "short16.tif", tiff16_bytes(rgb16, claimed_height=41)),
            ("16-bit ppm", "rgb16.ppm", ppm16_bytes(rgb16)),
            ("12-bit ppm", "rgb12.ppm", ppm16_bytes(rgb16 >> 4, 4095)),
            ("16-bit png rgb exif icc", "rgb16.png", png16_bytes(rgb16, icc=icc_profile(), orientation=8)),
            ("16-bit png grey exif icc", "grey16.png", png16_bytes(grey16, icc=icc_profile(), orientation=6)),
            ("16-bit png rgba exif icc", "rgba16.png", png16_bytes(np.dstack([rgb16, grey16]), icc_profile(), 3)),
            ("8-bit png rgb trns", "key.png", buffer.getvalue()),
            ("16-bit png grey trns", "key16.png", png16_bytes(grey16, icc=icc_profile(), transparent=4321))]
    for case, name, data in deep[:8]:
        cut = rng.randrange(1, len(data) - 1)
        deep.append((f"truncated {case}@{cut}", f"cut_{name}", data[:cut]))
    return deep


# the form each successful deep case must come back in, stated here rather than read by the module under test:
# depth (PNG bit depth, TIFF bits per sample, PPM maxval), upright size, an ICC profile, an alpha channel
DEEP_FORMS = {"rgb16.tif": (16, (40, 48), True, False), "rgb16z.tif": (16, (48, 40), False, False),
              "rgba16.tif": (16, (48, 40), True, True), "rgb16.ppm": (65535, (48, 40), False, False),
              "rgb12.ppm": (4095, (48, 40), False, False), "rgb16.png": (16, (40, 48), True, False),
              "grey16.png": (16, (40, 48), True, False), "rgba16.png": (16, (48, 40), True, True),
              "key.png": (8, (48, 40), False, True), "key16.png": (16, (48, 40), True, True)}

CASES = _cases()


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _check_outcome(code: int, err: str, out_dir: Path, names: list[str]):
    assert "Traceback" not in err, err
    if code == 2:
        assert err.count("\n") == 1 and err.startswith("error: "), err
        assert not out_dir.exists() or not any(out_dir.iterdir())
    elif code == 1:
        assert "image(s) failed (above); the others are written" in err, err
    else:
        assert code == 0, err
    written = sorted(p.name for p in out_dir.iterdir()) if out_dir.exists() else []
    assert all(not name.startswith(".") for name in written), written  # no temporary file left
    assert set(written) <= set(names)
    for name in written:  # every output is a whole, readable image of the input's size
        with Image.open(out_dir / name) as result:
            result.load()
    return written


def test_there_are_at_least_thirty_cases():
    assert len(CASES) >= 30 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case,name,data", CASES, ids=[c[0] for c in CASES])
def test_denoise_on_an_odd_or_bad_file(tmp_path, capsys, case, name, data):
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / name).write_bytes(data)
    before = _snapshot(inputs)
    out = tmp_path / "out"
    code = main(["denoise", str(inputs / name), "--out", str(out), "--checkpoint", "pretrained:gaussian",
                 "--device", "cpu", "--tile", "64", "--overlap", "8"])
    err = capsys.readouterr().err
    written = _check_outcome(code, err, out, [name])
    assert _snapshot(inputs) == before
    if code == 0:
        _check_form_kept(inputs / name, out / name)
    assert written == ([name] if code == 0 else [])


def _check_form_kept(source: Path, output: Path):
    """The output of a denoised file keeps its bit depth, its upright size (the orientation applied and
    reset), its ICC profile and its transparency (an alpha channel copied untouched), as read back."""
    from n2n_core.data.images import read_image

    original, result = read_image(source), read_image(output)
    assert (result.bits, result.size, result.format) == (original.bits, original.size, original.format)
    assert result.info.get("icc_profile") == original.info.get("icc_profile")
    assert (result.alpha is None) == (original.alpha is None)
    if original.alpha is not None:
        assert np.array_equal(result.alpha, original.alpha)
    with Image.open(output) as written:
        assert written.size == original.size and written.getexif().get(0x0112, 1) == 1
        if output.name in DEEP_FORMS:
            depth, size, icc, alpha = DEEP_FORMS[output.name]
            assert _file_depth(output, written) == depth and written.size == size
            assert bool(written.info.get("icc_profile")) == icc and written.mode.endswith("A") == alpha


def _file_depth(path: Path, image: Image.Image) -> int:
    """PNG bit depth, TIFF bits per sample, PPM maxval, from the file itself."""
    if image.format == "PNG":
        return png_bit_depth(path)
    if image.format == "TIFF":
        return image.tag_v2[258][0]
    return int(path.read_bytes().split(maxsplit=4)[3])


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_denoise_refuses_a_special_file_in_one_line(tmp_path, capsys, kind):
    """A pipe or a device given as input is named as such (not "no such file"), without ever being
    opened: reading a FIFO would wait for a writer for ever."""
    path = tmp_path / "pipe.png" if kind == "fifo" else Path("/dev/zero")
    if kind == "fifo":
        os.mkfifo(path)
    out = tmp_path / "out"
    code = main(["denoise", str(path), "--out", str(out), "--checkpoint", "pretrained:gaussian", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    what = "a pipe" if kind == "fifo" else "a device"
    assert f"{path}: not a regular file ({what}" in err and "pass image files" in err, err
    assert not out.exists()


def test_denoise_of_a_folder_names_each_entry_it_leaves_out_and_denoises_the_rest(tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "a.png").write_bytes(_encoded("RGB", ".png"))
    os.mkfifo(inputs / "pipe.png")
    os.symlink(tmp_path / "gone.png", inputs / "broken.png")
    (inputs / "notes.txt").write_text("not an image")  # not named as an image: left out, nothing said
    out = tmp_path / "out"
    code = main(["denoise", str(inputs), "--out", str(out), "--checkpoint", "pretrained:gaussian", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["a.png"]
    assert f"{inputs / 'pipe.png'}: not a regular file (a pipe (FIFO)): skipped" in err, err
    assert f"{inputs / 'broken.png'}: a link to {tmp_path / 'gone.png'}, which does not exist: skipped" in err, err
    assert "notes.txt" not in err


@pytest.mark.parametrize("where", ["link_to_input", "unwritable", "out_is_a_file"])
def test_denoise_with_an_odd_out(tmp_path, capsys, where):
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "a.png").write_bytes(_encoded("RGB", ".png"))
    before = _snapshot(inputs)
    out = tmp_path / "out"
    if where == "link_to_input":
        out.mkdir()
        os.symlink(inputs / "a.png", out / "a.png")
    elif where == "unwritable":
        out = Path("/proc/n2n_out")
    else:
        out.write_text("a file")
    code = main(["denoise", str(inputs / "a.png"), "--out", str(out), "--checkpoint", "pretrained:gaussian",
                 "--device", "cpu", "--overwrite"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert _snapshot(inputs) == before


@pytest.mark.parametrize("case", ["same_folder", "damaged_capture", "size_mismatch", "tiny", "empty_folder",
                                  "copied_capture", "one_folder_missing"])
def test_train_on_odd_pairs(tmp_path, capsys, case):
    from conftest import write_noisy_pairs

    root = write_noisy_pairs(tmp_path / "pairs", [(40, 44)] * 3)
    args = ["train", "--pairs", str(root), "--profile", "smoke", "--steps", "1", "--crop", "32", "--batch-size", "2",
            "--device", "cpu", "--out", str(tmp_path / "m.pth")]
    if case == "same_folder":
        args[2:3] = [str(root / "a"), str(root / "a")]
    elif case == "damaged_capture":
        (root / "b" / "s1.png").write_bytes((root / "b" / "s1.png").read_bytes()[:100])
    elif case == "size_mismatch":
        Image.fromarray(_photo(40, 50)).save(root / "b" / "s2.png")
    elif case == "tiny":
        Image.fromarray(_photo(8, 8)).save(root / "a" / "s9.png")
        Image.fromarray(_photo(8, 8, 1)).save(root / "b" / "s9.png")
    elif case == "empty_folder":
        for p in (root / "b").iterdir():
            p.unlink()
    elif case == "copied_capture":
        (root / "b" / "s0.png").write_bytes((root / "a" / "s0.png").read_bytes())
    elif case == "one_folder_missing":
        args[2:3] = [str(root / "a"), str(root / "nowhere")]
    before = _snapshot(root)
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert _snapshot(root) == before and not (tmp_path / "m.pth").exists()


# ------------------------------------------------------------------ every writer, every odd output
# One rule for every file the tool writes (``paths.check_output``, ``paths.holding``), generated over
# the writers and the odd outputs a user gives them: each either writes where it was asked (exit 0) or
# refuses in one line (exit 2); no input and no file already there changes in any case.
WRITERS = ("denoise", "train", "eval")
ODD_OUTPUTS = ("empty", "an input", "inside the data", "a link", "a folder", "a long name", "a file there", "held",
               "home")


def _writer_args(writer: str, out: str, root: Path) -> list[str]:
    if writer == "denoise":
        return ["denoise", str(root / "pairs" / "a" / "s0.png"), "--out", out, "--device", "cpu", "--tile", "64"]
    if writer == "train":
        return ["train", "--pairs", str(root / "pairs"), "--profile", "smoke", "--steps", "1", "--crop", "32",
                "--batch-size", "2", "--device", "cpu", "--out", out]
    return ["eval", str(root / "model.pth"), "--images", str(root / "pairs" / "a"), "--limit", "1", "--device", "cpu",
            "--json", out]


def _odd_output(writer: str, kind: str, root: Path) -> tuple[str, Path | None]:
    """(the --out/--json value, where a success must write), the files it needs made."""
    name = {"denoise": "out", "train": "m.pth", "eval": "r.json"}[writer]
    if kind == "empty":
        return "", None
    if kind == "an input":
        return str(root / ("model.pth" if writer == "eval" else "pairs/a/s0.png")), None
    if kind == "inside the data":
        return str(root / "pairs" / "a" / ("" if writer == "denoise" else name)), None
    if kind == "a link":
        (root / "elsewhere.txt").write_text("keep me")
        os.symlink(root / "elsewhere.txt", root / name)
        return str(root / name), None
    if kind == "a folder":
        (root / name).mkdir()
        return str(root / name), (root / name / "s0.png" if writer == "denoise" else None)
    if kind == "a long name":
        return str(root / ("n" * 300)), None
    if kind == "a file there":
        (root / name).write_text("keep me")
        return str(root / name), None
    if kind == "held":
        return str(root / name), None
    return f"~/{name}", root / "home" / name / ("s0.png" if writer == "denoise" else "")


@pytest.mark.parametrize("writer,kind", [(w, k) for w in WRITERS for k in ODD_OUTPUTS],
                         ids=[f"{w}: {k}" for w in WRITERS for k in ODD_OUTPUTS])
def test_every_writer_on_an_odd_output(tmp_path, capsys, monkeypatch, writer, kind):
    import shutil
    import subprocess
    import sys

    from conftest import write_noisy_pairs
    from n2n_core.training.checkpoint import pretrained_path

    write_noisy_pairs(tmp_path / "pairs", [(40, 44)] * 3)
    shutil.copyfile(pretrained_path("gaussian"), tmp_path / "model.pth")
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    out, expected = _odd_output(writer, kind, tmp_path)
    before = _snapshot(tmp_path)
    holder = None
    if kind == "held":  # another process holds the output, as a run writing it does
        code = f"import sys; from n2n_core import paths\nwith paths.holding({out!r}):\n    print('held', flush=True); sys.stdin.read()"
        holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
        assert holder.stdout.readline().strip() == "held"
    try:
        code = main(_writer_args(writer, out, tmp_path))
    finally:
        if holder is not None:
            holder.communicate("")
    err = capsys.readouterr().err
    said = [line for line in err.split("\n") if line and "\r" not in line and "%|" not in line]
    assert "Traceback" not in err, err
    after = _snapshot(tmp_path)
    assert all(after.get(k) == v for k, v in before.items() if not k.startswith("n2n_output")), kind  # nothing lost
    if code == 0:
        assert expected is not None and expected.is_file(), (kind, err)
    else:
        assert code == 2 and len(said) == 1 and said[0].startswith("error: "), err
        new = {k for k in set(after) - set(before) if not k.startswith("n2n_output")}
        assert not new, new  # nothing written


@pytest.mark.parametrize("lr", ["1e30", "inf", "nan", "-1"])
def test_a_run_that_cannot_converge_leaves_no_checkpoint(tmp_path, capsys, lr):
    """Divergence is a failure: a learning rate that sends the weights to infinity, or one that is no
    learning rate, ends in one line, and no checkpoint holds such weights."""
    from conftest import write_noisy_pairs

    root = write_noisy_pairs(tmp_path / "pairs", [(40, 44)] * 3)
    before = _snapshot(root)
    code = main(["train", "--pairs", str(root), "--profile", "smoke", "--steps", "20", "--crop", "32",
                 "--batch-size", "2", "--device", "cpu", f"--lr={lr}", "--out", str(tmp_path / "m.pth")])
    err = capsys.readouterr().err
    said = [line for line in err.split("\n") if line and "\r" not in line and "%|" not in line]
    assert code == 2 and len(said) == 1 and "Traceback" not in err, err
    assert not (tmp_path / "m.pth").exists() and _snapshot(root) == before
