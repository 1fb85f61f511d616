"""Training pools of several folders: `n2n train --clean A --clean B`, `make pretrained POOL="..."`
(the run's recorded pool, the model card's folders and licences), and patch sets cut from a pool of
any size without holding it in memory (uint8 decodes, one image at a time)."""
from __future__ import annotations

import dataclasses
import weakref
from pathlib import Path

import pytest
import torch

from n2n_core.config import DataConfig, NoiseConfig
from n2n_core.data import augment, images, patches, sets
from n2n_core.data.sources import PatchSource
from n2n_core.studies import pretrained
from n2n_core.training.checkpoint import load_checkpoint, pretrained_path
from n2n_core.training.runtime import Runtime
from conftest import smooth_image, write_png

CPU = Runtime.resolve("cpu")


def _tinted(root: Path, channel: int, count: int, size: tuple[int, int] = (40, 48)) -> Path:
    """``count`` smooth images in ``root`` with every channel but ``channel`` black."""
    for i in range(count):
        image = smooth_image(*size, seed=10 * channel + i)
        image[..., [c for c in range(3) if c != channel]] = 0
        write_png(root / f"img{i}.png", image)
    return root


# ------------------------------------------------------------------------------ n2n train --clean A --clean B
def test_repeated_clean_folders_both_contribute_crops(tmp_path):
    from n2n_core.cli.parser import parser
    from n2n_core.training.own import own_source

    red, green = _tinted(tmp_path / "red", 0, 3), _tinted(tmp_path / "green", 1, 3)
    args = parser().parse_args(["train", "--clean", str(red), "--clean", str(green)])
    assert args.clean == [red, green]
    cfg = dataclasses.replace(little_train(), crop=16)
    prepared = own_source("clean", args.clean, NoiseConfig("gaussian"),
                          DataConfig(patch_size=24, train_patches=40, val_patches=2, val_image_every=3)).prepare(cfg)
    stored = prepared.sampler.patches
    from_red = (stored[:, 1:].amax(dim=(1, 2, 3)) == 0).sum().item()
    from_green = (stored[:, [0, 2]].amax(dim=(1, 2, 3)) == 0).sum().item()
    assert from_red > 0 and from_green > 0 and from_red + from_green == len(stored)
    assert prepared.described["path"] == [str(red.resolve()), str(green.resolve())]
    assert prepared.described["images"] == 6


def little_train():
    return dataclasses.replace(pretrained.profile().train, crop=16, batch_size=2, max_steps=2)


# ------------------------------------------------------------------------------ patch sets without the pool in memory
def test_the_sampler_never_holds_a_float_copy_of_the_pool(tmp_path, monkeypatch):
    """Patches are cut from images decoded straight to uint8, one at a time, and the sampler stores
    only the uint8 patches: never the pool, never floats."""
    folder = tmp_path / "pool"
    for i in range(8):
        write_png(folder / f"p{i}.png", smooth_image(60 + 3 * i, 70, seed=i))
    float_decodes, alive, most = [], set(), [0]
    real_read_image, real_read_uint8 = images.read_image, getattr(images, "read_uint8", None)

    def spy_float(path):
        float_decodes.append(Path(path).name)
        return real_read_image(path)

    def spy_uint8(path):
        image = real_read_uint8(path)
        key = id(image)
        alive.add(key)
        weakref.finalize(image, alive.discard, key)
        most[0] = max(most[0], len(alive))
        return image

    monkeypatch.setattr(images, "read_image", spy_float)
    monkeypatch.setattr(sets, "read_image", spy_float)
    monkeypatch.setattr(patches, "read_uint8", spy_uint8, raising=False)
    data = DataConfig(patch_size=32, train_patches=50, val_patches=3, val_image_every=4)
    built = patches.build_patch_sets(sets.DataSources(sets.list_images(folder), {}, "folder", "test"), data, 0)
    assert float_decodes == []  # 8-bit files: no float decode at all
    assert most[0] == 1  # one decoded image at a time
    prepared = PatchSource(built.train, built.val, NoiseConfig("gaussian")).prepare(little_train())
    stored = [v for v in vars(prepared.sampler).values() if torch.is_tensor(v)]
    assert stored and all(t.dtype == torch.uint8 for t in stored)
    assert sum(t.nbytes for t in stored) == 50 * 3 * 32 * 32


def _old_cut_patches(files, count, size, generator, augment_patches=True):
    """How patches were cut from the whole pool held in memory (the reference for the same draws)."""
    held = [sets.to_uint8(sets.load_image(f)) for f in files]
    usable = [img for img in held if min(img.shape[-2:]) >= size]
    weights = torch.tensor([float(img.shape[-1] * img.shape[-2]) for img in usable])
    which = torch.multinomial(weights, count, replacement=True, generator=generator)
    out = torch.empty(count, 3, size, size, dtype=torch.uint8)
    for i, k in enumerate(which.tolist()):
        patch = augment.random_crop(usable[k], size, generator)
        out[i] = augment.random_dihedral(patch, generator) if augment_patches else patch
    return out


def test_a_pool_and_seed_cut_the_patches_they_did_when_the_pool_was_held(tmp_path):
    """A run begun before (the shipped weights' state) resumes on the same patches."""
    from PIL import Image

    folder = tmp_path / "pool"
    for i in range(6):
        write_png(folder / f"p{i}.png", smooth_image(40 + 9 * i, 90 - 7 * i, seed=i))
    write_png(folder / "grey.png", smooth_image(50, 50, seed=9)[..., 0])
    write_png(folder / "small.png", smooth_image(20, 50, seed=8))  # skipped: smaller than the patch
    rotated = Image.fromarray(smooth_image(44, 66, seed=7))
    exif = rotated.getexif()
    exif[0x0112] = 6  # stored on its side: upright it is 66 x 44
    rotated.save(folder / "turned.jpg", exif=exif, quality=95)
    files = sets.list_images(folder)
    for augment_patches in (True, False):
        new = patches.cut_patches(files, 40, 32, torch.Generator().manual_seed(3), augment_patches)
        old = _old_cut_patches(files, 40, 32, torch.Generator().manual_seed(3), augment_patches)
        assert torch.equal(new, old)


# ------------------------------------------------------------------------------ make pretrained POOL="..."
@pytest.fixture
def pool_folder(data_folder, make_png) -> Path:
    """The data folder with two more pool folders: imagenet_sample/ (a known licence) and mine/ (none)."""
    for i in range(3):
        make_png(data_folder / "imagenet_sample" / f"n{i}.JPEG.png", 50, 60, seed=20 + i)
        make_png(data_folder / "mine" / f"m{i}.png", 44, 52, seed=30 + i)
    return data_folder


def test_the_pool_identity_covers_every_folder(pool_folder, little):
    def recorded(pool):
        sources, folders = pretrained.pool_sources(pool_folder, pool)
        return pretrained.pool_data(sources, patches.build_patch_sets(sources, little.data, 0), folders)

    default, added = recorded(["train_pool"]), recorded(["train_pool", "imagenet_sample"])
    assert default["pool"] != added["pool"]
    assert added["folders"] == {"imagenet_sample": 3, "train_pool": 6}
    assert added["train_images"] + added["val_images"] == 9
    assert recorded(["imagenet_sample", "train_pool"]) == added  # the order that names them does not matter
    assert recorded(["train_pool", "mine"])["pool"] not in (default["pool"], added["pool"])


def test_the_default_pool_records_what_it_did_and_a_run_resumes_on_it_alone(pool_folder, little, tmp_path):
    sources, folders = pretrained.pool_sources(pool_folder, ["train_pool"])
    data = pretrained.pool_data(sources, patches.build_patch_sets(sources, little.data, 0), folders)
    assert set(data) == {"pool", "train_images", "val_images", "data_config"}  # what the shipped state records
    folder = tmp_path / "ship"
    pretrained.train("gaussian", max_minutes=1e-6, data_dir=pool_folder, folder=folder, profile_override=little,
                     progress=False, rt=CPU)  # begun as before: no pool named
    with pytest.raises(Exception, match="data"):
        pretrained.train("gaussian", data_dir=pool_folder, folder=folder, profile_override=little, progress=False,
                         rt=CPU, pool=["train_pool", "imagenet_sample"])
    history = pretrained.train("gaussian", data_dir=pool_folder, folder=folder, profile_override=little,
                               progress=False, rt=CPU, pool=["train_pool"])
    assert history.step[-1] == 6 and len(history.chunks) == 2


def test_the_card_lists_each_pool_folder_its_images_and_its_licence(pool_folder, little, tmp_path):
    folder = tmp_path / "ship"
    pretrained.train("gaussian", data_dir=pool_folder, folder=folder, profile_override=little, progress=False,
                     rt=CPU, pool=["train_pool", "imagenet_sample", "mine"])
    shipped = load_checkpoint(pretrained_path("gaussian", folder))
    assert shipped["pretrained"]["command"] == 'make pretrained NOISE=gaussian POOL="imagenet_sample mine train_pool"'
    card = pretrained.write_card(folder, data_dir=pool_folder, rt=Runtime.resolve("cpu", "fp32"), limit=1).read_text()
    assert "| pool folder | images | licence |" in card
    assert f"| imagenet_sample | 3 | {sets.POOL_LICENCES['imagenet_sample']} |" in card
    assert f"| train_pool | 6 | {sets.POOL_LICENCES['train_pool']} |" in card
    assert "| mine | 3 | licence not recorded |" in card
    # finished weights are not trained again, and not on another pool either: that is said, not passed over
    with pytest.raises(pretrained.PretrainedError, match="trained on the pool imagenet_sample mine train_pool, "
                                                         "not train_pool; .*move the finished weights"):
        pretrained.train("gaussian", data_dir=pool_folder, folder=folder, profile_override=little)


def test_a_pool_folder_that_does_not_exist_is_named_with_the_folders_found(pool_folder, little, tmp_path):
    with pytest.raises(pretrained.PretrainedError,
                       match=r"pool folder 'imagenet'.*it holds imagenet_sample, kodak, mine, train_pool$"):
        pretrained.train("gaussian", data_dir=pool_folder, folder=tmp_path, profile_override=little,
                         pool=["train_pool", "imagenet"])


def test_make_pretrained_passes_its_pool_to_the_command():
    from n2n_core.cli.parser import parser

    assert parser().parse_args(["pretrained"]).pool == ["train_pool"]
    assert parser().parse_args(["pretrained", "--pool", "a", "b"]).pool == ["a", "b"]
    makefile = (Path(__file__).parent.parent / "Makefile").read_text()
    assert "POOL ?= train_pool" in makefile and "--pool $(POOL)" in makefile
