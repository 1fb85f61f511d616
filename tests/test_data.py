"""Images in (load_image, list_images, find_data and its downloads), training pairs out."""
from __future__ import annotations

import hashlib
import io
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from n2n_core.data import sets as datasets
from n2n_core.config import DataConfig
from n2n_core.data.sets import DataSources, find_data, list_images, load_image
from n2n_core.data.patches import (PairSampler, PatchSets, build_patch_sets, cut_patches, patch_set_path, split_pool,
                                   validation_pairs)
from n2n_core.paper.noise import BernoulliNoise, GaussianNoise


# ------------------------------------------------------------------------------------ load_image
def test_load_rgb_png_exact_values(tmp_path, generator):
    array = np.random.default_rng(0).integers(0, 256, size=(31, 37, 3), dtype=np.uint8)
    Image.fromarray(array).save(tmp_path / "rgb.png")
    image = load_image(tmp_path / "rgb.png")
    assert image.shape == (3, 31, 37) and image.dtype == torch.float32 and image.is_contiguous()
    assert torch.allclose(image, torch.from_numpy(array).permute(2, 0, 1).float() / 255, rtol=0, atol=1e-7)


def test_load_grey_image_gives_three_equal_channels(tmp_path):
    grey = np.array([[0, 51, 255], [102, 204, 1]], dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "grey.png")
    assert Image.open(tmp_path / "grey.png").mode == "L"
    image = load_image(tmp_path / "grey.png")
    assert image.shape == (3, 2, 3)
    for c in range(3):
        assert torch.allclose(image[c], torch.tensor(grey, dtype=torch.float32) / 255)


def test_load_rgba_drops_alpha(tmp_path):
    rgba = np.zeros((4, 5, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2] = 200, 100, 50
    rgba[..., 3] = np.arange(20).reshape(4, 5) * 10  # alpha varies, colour must not
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    assert Image.open(tmp_path / "rgba.png").mode == "RGBA"
    image = load_image(tmp_path / "rgba.png")
    assert image.shape == (3, 4, 5)
    expected = torch.tensor([200, 100, 50], dtype=torch.float32) / 255
    assert torch.allclose(image, expected[:, None, None].expand(3, 4, 5))


def test_load_palette_image(tmp_path):
    img = Image.new("P", (3, 2))
    img.putpalette([255, 0, 0, 0, 128, 255] + [0] * (256 * 3 - 6))
    img.putdata([0, 1, 0, 1, 1, 0])
    img.save(tmp_path / "palette.png")
    assert Image.open(tmp_path / "palette.png").mode == "P"
    image = load_image(tmp_path / "palette.png")
    red = torch.tensor([1.0, 0.0, 0.0])
    blue = torch.tensor([0.0, 128 / 255, 1.0])
    assert torch.allclose(image[:, 0, 0], red) and torch.allclose(image[:, 0, 1], blue)
    assert torch.allclose(image[:, 1, 2], red) and torch.allclose(image[:, 1, 0], blue)


def test_load_16_bit_grey_png_keeps_its_precision(tmp_path):
    values = np.array([[0, 65535, 32768], [257, 1, 1000]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode == "I;16"
    image = load_image(tmp_path / "deep.png")
    assert image.shape == (3, 2, 3)
    expected = torch.tensor(values.astype(np.float64) / 65535, dtype=torch.float32)
    for c in range(3):
        assert torch.allclose(image[c], expected, atol=1e-7)
    assert image[0, 0, 1] == 1.0 and abs(image[0, 0, 2].item() - 0.5) < 1e-4
    assert image[0, 1, 1] > 0  # 1/65535 is not rounded away to 0


def test_load_dark_16_bit_png_is_scaled_by_65535_not_255(tmp_path):
    # a 16-bit image whose values all lie below 256 is still a 16-bit image
    values = np.array([[0, 100], [200, 255]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "dark16.png")
    image = load_image(tmp_path / "dark16.png")
    assert image.max().item() == pytest.approx(255 / 65535, rel=1e-6)


def _write_png16_rgb(path: Path, array: np.ndarray) -> Path:
    """A 16-bit-per-channel RGB PNG, written by hand (Pillow cannot write one)."""
    height, width, _ = array.shape
    raw = b"".join(b"\x00" + array[row].astype(">u2").tobytes() for row in range(height))

    def chunk(tag: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", zlib.crc32(tag + payload))

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)  # 16 bit, colour type 2 (RGB)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
                     + chunk(b"IEND", b""))
    return path


def test_load_16_bit_rgb_png_values(tmp_path):
    # every value is a multiple of 257, so 8-bit decoding loses nothing: this checks the scale
    values = (np.arange(2 * 3 * 3, dtype=np.uint16).reshape(2, 3, 3) * 15 * 257).astype(np.uint16)
    image = load_image(_write_png16_rgb(tmp_path / "rgb16.png", values))
    assert image.shape == (3, 2, 3)
    assert torch.allclose(image, torch.from_numpy(values.astype(np.float32) / 65535).permute(2, 0, 1), atol=1e-6)


def test_load_16_bit_rgb_png_keeps_its_precision(tmp_path):
    values = np.full((2, 3, 3), 0x0180, dtype=np.uint16)  # 384: between the 8-bit levels 1 and 2
    image = load_image(_write_png16_rgb(tmp_path / "rgb16.png", values))
    assert image[0, 0, 0].item() == pytest.approx(384 / 65535, abs=1e-6)


def test_load_applies_exif_orientation(tmp_path):
    array = np.zeros((20, 30, 3), dtype=np.uint8)
    array[:, :10] = 255  # a bright left third
    img = Image.fromarray(array)
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    img.save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    image = load_image(tmp_path / "rotated.jpg")
    assert image.shape == (3, 30, 20)  # displayed upright: width and height swapped
    assert image[:, :10].mean() > 0.9 and image[:, -10:].mean() < 0.1  # the bright part is on top


def test_load_truncated_png_names_the_file(tmp_path):
    path = tmp_path / "truncated.png"
    noise = np.random.default_rng(1).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated.png"):
        load_image(path)


def test_load_text_file_named_png_names_the_file(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is not an image\n")
    with pytest.raises(ValueError, match="notes.png"):
        load_image(path)


def test_load_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.png"):
        load_image(tmp_path / "missing.png")


def test_to_uint8_clips_and_rounds():
    x = torch.tensor([-0.2, 0.0, 0.3 / 255, 0.7 / 255, 0.5, 1.0, 1.4])
    assert datasets.to_uint8(x).tolist() == [0, 0, 0, 1, 128, 255, 255]


# ------------------------------------------------------------------------------------ list_images
def test_list_images_finds_images_sorted_and_recursively(tmp_path, make_png):
    make_png(tmp_path / "b.png")
    make_png(tmp_path / "a.PNG")
    make_png(tmp_path / "sub" / "c.png")
    (tmp_path / "readme.txt").write_text("not an image")
    (tmp_path / "folder.png").mkdir()  # a folder with an image suffix is no image
    assert [p.name for p in list_images(tmp_path)] == ["a.PNG", "b.png", "c.png"]
    assert [p.name for p in list_images(tmp_path, recursive=False)] == ["a.PNG", "b.png"]


def test_list_images_of_an_empty_folder_names_the_folder(tmp_path):
    empty = tmp_path / "empty_folder"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    with pytest.raises(FileNotFoundError, match="empty_folder"):
        list_images(empty)


def test_list_images_of_a_missing_folder_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="no_such_folder"):
        list_images(tmp_path / "no_such_folder")


# ------------------------------------------------------------------------------------- find_data
def test_find_data_reads_a_user_folder(data_folder):
    sources = find_data(data_folder)
    # synthetic images in a folder named kodak/: not the paper's Kodak, whose pixels are checked
    assert sources.origin == "folder" and not sources.comparable
    assert len(sources.train) == 6 and any(p.name == "pool5.png" for p in sources.train)  # recursive
    assert list(sources.test_sets) == ["kodak"] and sources.main_test_set == "kodak"
    assert [p.name for p in sources.test_sets["kodak"]] == ["kodim01.png", "kodim02.png"]
    assert "not the paper's test sets (recognised by their pixels" in sources.summary()


def test_find_data_uses_n2n_data_dir(data_folder, monkeypatch):
    monkeypatch.setenv("N2N_DATA_DIR", str(data_folder))
    sources = find_data(download=False)
    assert sources.origin == "folder" and len(sources.train) == 6


def test_find_data_without_train_pool_evaluates_but_training_says_what_is_missing(data_folder):
    import shutil

    from n2n_core.config import DataConfig
    from n2n_core.data.patches import build_patch_sets

    shutil.rmtree(data_folder / "train_pool")
    sources = find_data(data_folder)  # test sets alone are enough to evaluate
    assert sources.train == [] and list(sources.test_sets) == ["kodak"]
    with pytest.raises(ValueError, match="put clean training images in train_pool/ of the data folder"):
        build_patch_sets(sources, DataConfig(), seed=0)


def test_find_data_without_test_sets_says_what_is_missing(data_folder):
    import shutil
    shutil.rmtree(data_folder / "kodak")
    with pytest.raises(FileNotFoundError, match="kodak"):
        find_data(data_folder)


def test_find_data_with_a_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does_not_exist"):
        find_data(tmp_path / "does_not_exist")


def _check_embedded(sources: DataSources) -> None:
    assert sources.origin == "embedded" and sources.comparable is False
    assert "NOT comparable" in sources.summary()
    assert len(sources.train) == len(datasets.EMBEDDED_TRAIN)
    assert all(p.is_file() for p in sources.train)
    (test_files,) = sources.test_sets.values()
    assert all(p.is_file() for p in test_files)


def test_find_data_offline_falls_back_to_the_embedded_photographs(output_dir):
    sources = find_data(download=False)
    _check_embedded(sources)
    test_files = next(iter(sources.test_sets.values()))
    for path in test_files:
        image = load_image(path)
        assert image.dim() == 3 and image.shape[0] == 3 and 0 <= image.min() and image.max() <= 1
    assert not (output_dir / "data" / "downloads").exists()  # nothing was fetched


def test_n2n_offline_disables_downloads(monkeypatch):
    monkeypatch.setenv("N2N_OFFLINE", "1")
    monkeypatch.setattr(datasets, "_from_downloads", lambda cache: pytest.fail("tried to download"))
    _check_embedded(find_data())


def _serve_fake_data(root: Path, base: str, monkeypatch, make_png, kodak_hashes=None):
    """Two small Kodak-like PNGs and a BSDS300-like archive on the local server."""
    kodak = {}
    for i, name in enumerate(["kodim01.png", "kodim02.png"]):
        path = make_png(root / "kodak" / name, 9 + i, 11, seed=200 + i)
        kodak[name] = path.read_bytes()
    archive = root / "BSDS300-images.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        for split, names in (("train", ["2092.jpg", "8049.jpg"]), ("test", ["3096.jpg"])):
            for name in names:
                buffer = io.BytesIO()
                Image.new("RGB", (12, 10), (10, 120, 200)).save(buffer, format="JPEG")
                info = tarfile.TarInfo(f"BSDS300/images/{split}/{name}")
                info.size = buffer.tell()
                buffer.seek(0)
                tar.addfile(info, buffer)
    hashes = kodak_hashes or {name: hashlib.sha256(blob).hexdigest() for name, blob in kodak.items()}
    monkeypatch.setattr(datasets, "KODAK_SHA256", hashes)
    monkeypatch.setenv("N2N_KODAK_URL", f"{base}/kodak/")
    monkeypatch.setenv("N2N_BSDS300_URL", f"{base}/BSDS300-images.tgz")
    return kodak


def test_find_data_downloads_from_the_configured_addresses(http_server, monkeypatch, make_png, output_dir):
    root, base, requested = http_server
    kodak = _serve_fake_data(root, base, monkeypatch, make_png)
    sources = find_data(download=True)
    assert sources.origin == "download" and sources.comparable
    assert set(requested) == {"/kodak/kodim01.png", "/kodak/kodim02.png", "/BSDS300-images.tgz"}
    cache = output_dir / "data" / "downloads"
    assert list(sources.test_sets) == ["kodak", "bsd300"]  # BSD300: the archive's test split
    assert [p.name for p in sources.test_sets["kodak"]] == ["kodim01.png", "kodim02.png"]
    assert [p.name for p in sources.test_sets["bsd300"]] == ["3096.jpg"]
    for path in sources.test_sets["kodak"]:
        assert path.parent == cache / "kodak" and path.read_bytes() == kodak[path.name]
    assert [p.name for p in sources.train] == ["2092.jpg", "8049.jpg"]  # the train split only
    assert all(p.parent == cache / "BSDS300" / "images" / "train" for p in sources.train)
    assert load_image(sources.train[0]).shape == (3, 10, 12)


def test_find_data_with_a_wrong_checksum_falls_back_to_embedded(http_server, monkeypatch, make_png, output_dir):
    root, base, requested = http_server
    _serve_fake_data(root, base, monkeypatch, make_png,
                     kodak_hashes={"kodim01.png": "0" * 64, "kodim02.png": "1" * 64})
    sources = find_data(download=True)
    assert "/kodak/kodim01.png" in requested  # the server was reached: the checksum made it fail
    _check_embedded(sources)
    assert not (output_dir / "data" / "downloads" / "kodak" / "kodim01.png").exists()  # bad file not kept


def test_find_data_with_a_missing_archive_falls_back_to_embedded(http_server, monkeypatch, make_png):
    root, base, requested = http_server
    _serve_fake_data(root, base, monkeypatch, make_png)
    (root / "BSDS300-images.tgz").unlink()  # the server answers 404
    _check_embedded(find_data(download=True))
    assert "/BSDS300-images.tgz" in requested


# -------------------------------------------------------------------------------------- patch sets
def test_split_pool_holds_out_every_nth_image():
    files = [Path(f"img{i:02d}.png") for i in range(10)]
    train, val = split_pool(files, every=3)
    assert val == [files[2], files[5], files[8]]
    assert train == [f for i, f in enumerate(files) if i not in (2, 5, 8)]
    assert not set(train) & set(val) and set(train) | set(val) == set(files)


@pytest.mark.parametrize("count,every", [(2, 25), (12, 25), (7, 1), (30, 25)])
def test_split_pool_always_holds_out_at_least_one_and_keeps_training_images(count, every):
    files = [Path(f"img{i:02d}.png") for i in range(count)]
    train, val = split_pool(files, every)
    assert len(val) >= 1 and len(train) >= 1
    assert not set(train) & set(val) and len(train) + len(val) == count


def test_split_pool_needs_two_images():
    with pytest.raises(ValueError, match="at least 2"):
        split_pool([Path("only.png")], 25)


def _constant_images(folder: Path, count: int, size=(30, 34)) -> list[Path]:
    """Images of one flat colour each: a patch's colour tells which image it came from."""
    files = []
    for i in range(count):
        path = folder / f"flat{i:02d}.png"
        Image.new("RGB", size[::-1], (10 * i, 255 - 10 * i, 7 * i)).save(path)
        files.append(path)
    return files


def test_cut_patches_shape_dtype_and_reproducibility(tmp_path, make_png):
    files = [make_png(tmp_path / f"{i}.png", 37, 31, seed=i) for i in range(3)]
    a = cut_patches(files, 10, 16, torch.Generator().manual_seed(0))
    b = cut_patches(files, 10, 16, torch.Generator().manual_seed(0))
    c = cut_patches(files, 10, 16, torch.Generator().manual_seed(1))
    assert a.shape == (10, 3, 16, 16) and a.dtype == torch.uint8
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_cut_patches_skips_small_images_and_fails_when_all_are(tmp_path, make_png, capsys):
    big = make_png(tmp_path / "big.png", 40, 40, seed=1)
    small = make_png(tmp_path / "small.png", 10, 12, seed=2)
    patches = cut_patches([big, small], 5, 20, torch.Generator().manual_seed(0), augment_patches=False)
    assert "skipped 1" in capsys.readouterr().out
    image = datasets.to_uint8(load_image(big))
    for patch in patches:  # every patch is a window of the big image
        assert any(torch.equal(patch, image[:, t:t + 20, l:l + 20]) for t in range(21) for l in range(21))
    with pytest.raises(ValueError, match="20x20"):
        cut_patches([small], 5, 20, torch.Generator().manual_seed(0))


def test_build_patch_sets_keeps_validation_images_out_of_training(tmp_path):
    files = _constant_images(tmp_path, 8)
    sources = DataSources(files, {"kodak": files[:1]}, "folder", "test")
    config = DataConfig(patch_size=16, train_patches=40, val_patches=6, val_image_every=4)
    sets = build_patch_sets(sources, config, seed=0)
    train_files, val_files = split_pool(files, 4)

    def colours(paths):
        return {tuple(datasets.to_uint8(load_image(p))[:, 0, 0].tolist()) for p in paths}

    def patch_colours(patches):
        assert all(torch.equal(p, p[:, :1, :1].expand_as(p)) for p in patches)  # flat patches
        return {tuple(p[:, 0, 0].tolist()) for p in patches}

    assert sets.train.shape == (40, 3, 16, 16) and sets.val.shape == (6, 3, 16, 16)
    assert patch_colours(sets.train) <= colours(train_files)
    assert patch_colours(sets.val) <= colours(val_files)
    assert not patch_colours(sets.train) & patch_colours(sets.val)
    assert sets.meta["train_images"] == 6 and sets.meta["val_images"] == 2
    assert sets.meta["origin"] == "folder" and sets.meta["seed"] == 0


def test_patch_sets_round_trip(tmp_path, smooth_patches):
    sets = PatchSets(smooth_patches[:10], smooth_patches[10:], {"origin": "folder", "seed": 3})
    path = sets.save(tmp_path / "sub" / "patches.pt")
    loaded = PatchSets.load(path)
    assert torch.equal(loaded.train, sets.train) and torch.equal(loaded.val, sets.val)
    assert loaded.meta == sets.meta
    assert [p.name for p in path.parent.iterdir()] == ["patches.pt"]  # no temporary file left


def test_patch_sets_load_missing_file_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="notebooks/01"):
        PatchSets.load(tmp_path / "nothing.pt")


def test_patch_set_path_is_under_the_output_dir(output_dir):
    assert patch_set_path("smoke", 3) == output_dir / "data" / "patches_smoke_seed3.pt"


# ------------------------------------------------------------------------------------ PairSampler
def _sampler(patches, target, seed=0, sigma=25.0, crop=16, batch=6):
    return PairSampler(patches, crop, batch, GaussianNoise(sigma), target, torch.Generator().manual_seed(seed))


def test_pair_sampler_noisy_target_is_a_second_noisy_draw(smooth_patches):
    noisy, target, clean, mask = _sampler(smooth_patches, "noisy").sample()
    assert mask is None  # Gaussian targets: every pixel counts
    assert noisy.shape == target.shape == clean.shape == (6, 3, 16, 16)
    assert noisy.dtype == target.dtype == clean.dtype == torch.float32
    assert not torch.allclose(target, noisy) and not torch.allclose(target, clean)
    input_noise, target_noise = (noisy - clean).flatten(), (target - clean).flatten()
    for n in (input_noise, target_noise):
        assert n.std().item() == pytest.approx(25 / 255, rel=0.05)
    corr = torch.corrcoef(torch.stack([input_noise, target_noise]))[0, 1].item()
    assert abs(corr) < 0.05  # independent draws


def test_pair_sampler_clean_target_is_the_clean_crop(smooth_patches):
    noisy, target, clean, _ = _sampler(smooth_patches, "clean").sample()
    assert torch.equal(target, clean) and not torch.allclose(noisy, clean)


def test_pair_sampler_clean_crops_come_from_the_patches(smooth_patches):
    clean = _sampler(smooth_patches, "clean", crop=24).sample().clean  # crop == patch: whole patches
    as_uint8 = (clean * 255).round().to(torch.uint8)
    variants = [torch.rot90(p, k, dims=(-2, -1)) for p in smooth_patches for k in range(4)]
    variants += [v.flip(-1) for v in variants]
    for image in as_uint8:
        assert any(torch.equal(image, v) for v in variants)


def test_pair_sampler_input_is_not_clipped(smooth_patches):
    dark = torch.zeros_like(smooth_patches)
    noisy, target, *_ = _sampler(dark, "noisy").sample()
    assert noisy.min() < 0 and target.min() < 0


def test_pair_sampler_blind_noise_draws_input_and_target_sigma_independently(smooth_patches):
    sampler = PairSampler(smooth_patches, 24, 16, GaussianNoise(sigma_range=(0.0, 50.0)), "noisy",
                          torch.Generator().manual_seed(0))
    noisy, target, clean, _ = sampler.sample()
    std_in = (noisy - clean).flatten(1).std(dim=1) * 255
    std_target = (target - clean).flatten(1).std(dim=1) * 255
    assert std_in.max() <= 50 * 1.1 and std_target.max() <= 50 * 1.1
    # one shared sigma would make these equal up to ~2 %; two U(0, 50) draws differ by 17 on average
    assert (std_in - std_target).abs().mean() > 5


def test_pair_sampler_same_seed_same_batch(smooth_patches):
    a, b = _sampler(smooth_patches, "noisy", seed=9), _sampler(smooth_patches, "noisy", seed=9)
    for _ in range(2):
        for x, y in zip(a.sample()[:3], b.sample()[:3]):
            assert torch.equal(x, y)
    c = _sampler(smooth_patches, "noisy", seed=10).sample()
    assert not torch.equal(a.sample()[2], c[2])


def test_pair_sampler_bernoulli_noisy_target_carries_its_mask(smooth_patches):
    sampler = PairSampler(smooth_patches, 16, 6, BernoulliNoise(0.5), "noisy", torch.Generator().manual_seed(0))
    noisy, target, clean, mask = sampler.sample()
    assert mask.shape == (6, 1, 16, 16)
    assert torch.equal(target, clean * mask)  # the mask is the target's, not the input's
    assert not torch.equal((noisy != 0).any(1, keepdim=True).float(), mask)
    clean_sampler = PairSampler(smooth_patches, 16, 6, BernoulliNoise(0.5), "clean", torch.Generator().manual_seed(0))
    assert clean_sampler.sample().mask is None  # clean targets: an unmasked loss


def test_pair_sampler_rejects_bad_arguments(smooth_patches):
    with pytest.raises(ValueError, match="median"):
        _sampler(smooth_patches, "median")
    with pytest.raises(ValueError, match="32"):
        _sampler(smooth_patches, "noisy", crop=32)


def test_validation_pairs_are_a_function_of_the_seed(smooth_patches):
    noise = GaussianNoise(25)
    noisy_a, clean = validation_pairs(smooth_patches, noise, seed=0)
    noisy_b, clean_b = validation_pairs(smooth_patches, noise, seed=0)
    noisy_c, _ = validation_pairs(smooth_patches, noise, seed=1)
    assert torch.equal(clean, smooth_patches.float() / 255) and torch.equal(clean, clean_b)
    assert torch.equal(noisy_a, noisy_b) and not torch.allclose(noisy_a, noisy_c)
    assert (noisy_a - clean).std().item() == pytest.approx(25 / 255, rel=0.03)
    # the noise of patch i depends on i, not on the patches before it
    noisy_tail, _ = validation_pairs(smooth_patches[:4], noise, seed=0)
    assert torch.equal(noisy_tail, noisy_a[:4])


# ------------------------------------------------------------------------------------- real data
def test_real_data_folder(real_data_dir):
    sources = find_data(real_data_dir)
    assert sources.origin == "folder" and sources.comparable  # the paper's sets, recognised by their pixels
    assert len(sources.test_sets["kodak"]) == 24
    image = load_image(sources.test_sets["kodak"][0])
    assert image.shape[0] == 3 and sorted(image.shape[1:]) == [512, 768]
    if "set14" in sources.test_sets:
        for path in sources.test_sets["set14"]:
            if Image.open(path).mode == "L":
                grey = load_image(path)
                assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])
