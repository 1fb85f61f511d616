"""Images in: where the training pool and the test sets come from, and how an image is read.
(Patch sets and training pairs: ``patches.py``.)

Where the images come from, in order (``find_data``):
  1. a folder the user names (argument or ``N2N_DATA_DIR``), laid out as ``train_pool/`` (clean
     training images, searched recursively) and test sets ``kodak/``, ``bsd300/``, ``set14/``;
  2. the official addresses (../PAPER.md): Kodak from r0k.us (SHA-256 checked) and the BSDS300
     archive (its train split is the training pool), cached under ``data/downloads``;
  3. the photographs that ship inside scikit-image, offline. Numbers are then not comparable
     with the paper, and every report says so.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import paths
from .images import read_image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".webp")
TEST_SET_NAMES = ("kodak", "bsd300", "set14")
# The paper's test sets, recognised by their pixels rather than by a folder's name: sha256 over the
# sorted sha256s of each image's RGB pixels (``set_digest``), measured on the copies described in
# ../shared/datasets/SOURCES.md (Kodak 24, BSD300 test 100, Set14 14)
KNOWN_SET_DIGESTS = {
    "kodak": "9d2fddc339cb44249411cc9225fe9901e37e0fcfc9f057a718260951c8f325cf",
    "bsd300": "69d8bf1e1b6f3027f46ab12cccdf0b155d9d75436879d897cb7eb963e9855aa8",
    "set14": "f58a95f24549c95a1b265e155b020c6b54038fe4e3761f7de613678f0ca76a2f",
}

KODAK_URL = "http://r0k.us/graphics/kodak/kodak/"
BSDS300_URL = "https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/bsds/BSDS300-images.tgz"
DOWNLOAD_TIMEOUT_S = 10
# SHA-256 of the 24 PNG files served at KODAK_URL
KODAK_SHA256 = dict(zip([f"kodim{i:02d}.png" for i in range(1, 25)], """
a56e27cbf5f843c048b6af1d6e090760e9c92fadba88b7dee0205918a37523bd
4f4b74a79237e311d72cad958237b5f7088d8bce1c82305ebefe1a70e3022dfd
e25ca1ff2f0c0cb5fdfd5f9b0a0bb21ac4c3de3c84a67f35b09a85d3306249db
e3b946107c5d3441c022f678d0c3caf1e224d81b1604ba840a4f88e562de61aa
10349e963c5c813d327852f82c1795fa4148d69fedffc4c589bee458e3ac3d53
363510303b715d4cbc384e1ce227e466b613a09e1b71ae985882bf8e7fbd9b18
b77d3f006f42414bb242222e0482e750c0fb9e5ee8d4bed2f6f11c5605fe54a4
ba23983c76b4832ee0e8af0592664756841a16779acd69f792e268fb6d13d6e7
6a4361c2fc194feb4edaa9f9a4a0620fb9943e460ac7fdf037fb0f6dd6607a7d
9dfb70f5867c29ff9ed6313683f19b3d867849e40fbc0c4c54a4a89df341cf23
7936814b58b5387fce2e4e2488b4ec830dadd95fa9520f358ddb30990b50f2b6
d78c37c2f04f23761ed2367dd77e2db584ddd4c3950833fecf89f199a8126980
bc34a3ce58dea09dce1704c997171602de90cb34d0c8503a988b77f473d39b08
55a94550ff18f3246c4074fd32b77b0c74447c26b6ad274d564d999c0450ba6e
7538cbb80cb9103606c48b806eae57d56c885c7f90b9b3be70a41160f9cbb683
a89c7268ccd4718ba424a99fc4643c572cf692ca6eae887185ceb4e9f11d2e54
37afcc89fbdcb76d9518e04b2fc011027e2f4cd14b3b2f83cefd721641a47c5b
1a9258c365988961d87a0598725b609139c303ad48a5aad6c503c3b1a87849aa
b7450b264b1b0a411390d8931b112c27905a992520fc90569dc4b920aa32bbdc
3b46c71e3b92a563820ba32936be8330c586c41f938efd94be938386aae4328a
ac958597c82073f6bb65129c68f72b651db5b9efd82e11547d07350214bc268b
1cee58eb1f2d9c7ebb254d208a03c783ce6cf2c4d8c2cf45e235dd23b4ce1b29
e3111a2fd4da24af15d6459ef9eacfe54106b38e27b4a21821b75c3f5d2d5baf
1071c68372cc5a01435c2c225a5cf7d4bb803846ec08bb6b3d6721b156d7cb96
""".split()))

# scikit-image ships these photographs in its wheel: no network needed.
EMBEDDED_TRAIN = ("rocket.jpg", "hubble_deep_field.jpg", "ihc.png", "retina.jpg", "motorcycle_left.png",
                  "motorcycle_right.png", "camera.png", "brick.png", "grass.png", "gravel.png",
                  "moon.png", "coins.png")
EMBEDDED_TEST = ("astronaut.png", "coffee.png", "chelsea.png")


# The licences of the training pool folders this project knows, by folder name (from
# ../shared/datasets/SOURCES.md); the model card lists each folder a run trained on with its own
POOL_LICENCES = {
    "train_pool": "BSDS300 train split and T91 (Yang et al.): research use",
    "imagenet_sample": "ImageNet photographs: owned by their authors; ImageNet's terms allow non-commercial research "
                       "and educational use",
    "bsds500_test": "BSDS500 test split: research and educational use",
}


def pool_licence(folder: str) -> str:
    """The licence of a training pool folder by its name, or that none is recorded."""
    return POOL_LICENCES.get(folder, "licence not recorded")


# ---------------------------------------------------------------------------------------- images
def load_image(path: str | Path) -> torch.Tensor:
    """A 3 x H x W float32 tensor in [0, 1] (``images.read_image``): grey images become three equal
    channels, alpha is dropped, EXIF orientation is applied, 16-bit images keep their precision."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    return read_image(path).rgb


def to_uint8(image: torch.Tensor) -> torch.Tensor:
    return (image.clamp(0, 1) * 255).round().to(torch.uint8)


def list_images(folder: str | Path, recursive: bool = True) -> list[Path]:
    """The image files below ``folder``, sorted; a clear error when there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    pattern = "**/*" if recursive else "*"
    files = sorted(p for p in folder.glob(pattern) if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise FileNotFoundError(f"{folder}: no image files ({', '.join(IMAGE_SUFFIXES)}) found")
    return files


# ------------------------------------------------------------------------------ where data comes from
@dataclass
class DataSources:
    train: list[Path]
    test_sets: dict[str, list[Path]]
    origin: str  # "folder", "download" or "embedded"
    description: str
    comparable: bool = True  # are the test numbers comparable with the paper's?

    @property
    def main_test_set(self) -> str:
        return next(iter(self.test_sets))

    def summary(self) -> str:
        sets = ", ".join(f"{k} ({len(v)})" for k, v in self.test_sets.items())
        line = f"Data: {self.description}; training pool: {len(self.train)} images; test sets: {sets}."
        return line + (f"\n{self.note}" if self.note else "")

    @property
    def note(self) -> str:
        """Why numbers measured on these sets are not comparable with the paper's ('' when they are)."""
        if self.comparable:
            return ""
        if self.origin == "embedded":
            return ("NOTE: these are the embedded scikit-image photographs, not the paper's data: PSNRs are NOT "
                    "comparable with the paper's Table 1. Set N2N_DATA_DIR to a folder with train_pool/ and kodak/ "
                    "for comparable numbers.")
        return ("NOTE: the test sets are not the paper's test sets (recognised by their pixels, not their names): "
                "PSNRs are NOT comparable with the paper's Table 1.")


def find_data(data_dir: str | Path | None = None, download: bool | None = None) -> DataSources:
    """Resolve the training pool and test sets (see the module docstring for the order)."""
    data_dir = Path(data_dir).expanduser() if data_dir else paths.user_data_dir()
    if data_dir is not None:
        return _from_folder(data_dir)
    if download is None:
        download = os.environ.get("N2N_OFFLINE", "") in ("", "0")
    cache = paths.data_cache_dir() / "downloads"
    if download or _downloads_complete(cache):
        try:
            return _from_downloads(cache)
        except Exception as err:  # network down, server moved, checksum mismatch: fall back
            print(f"Download of the paper's data failed ({type(err).__name__}: {err}).")
    else:
        print("Downloads disabled (N2N_OFFLINE).")
    return _embedded()


def set_digest(files: list[Path]) -> str:
    """A digest of a set of images by their RGB pixels, independent of names, order and file format."""
    from PIL import Image

    digests = []
    for path in files:
        with Image.open(path) as img:
            pixels = np.asarray(img.convert("RGB"), dtype=np.uint8)
        digests.append(hashlib.sha256(f"{pixels.shape}".encode() + pixels.tobytes()).hexdigest())
    return hashlib.sha256("".join(sorted(digests)).encode()).hexdigest()


def paper_sets(test_sets: dict[str, list[Path]]) -> bool:
    """Whether every set is the paper's set of its name, image for image (``KNOWN_SET_DIGESTS``)."""
    return all(KNOWN_SET_DIGESTS.get(name) == set_digest(files) for name, files in test_sets.items())


def from_image_folders(folders: list[str | Path]) -> DataSources:
    """Test sets from any folders of clean images, each named after its folder (``n2n eval --images``);
    comparable with the paper only where a folder holds one of its test sets."""
    tests: dict[str, list[Path]] = {}
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: no such folder (--images takes folders of clean images)")
        if folder.name in tests:
            raise ValueError(f"two --images folders are named {folder.name!r}; the name labels the results: "
                             f"rename one")
        tests[folder.name] = list_images(folder, recursive=False)
    return DataSources([], tests, "folder", "your folders " + ", ".join(map(str, folders)), paper_sets(tests))


def _from_folder(root: Path) -> DataSources:
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {root} does not exist (from N2N_DATA_DIR or data_dir)")
    pool = root / "train_pool"  # needed to train, not to evaluate: an empty pool fails in split_pool
    tests = {name: list_images(root / name, recursive=False) for name in TEST_SET_NAMES if (root / name).is_dir()}
    if not tests:
        raise FileNotFoundError(f"{root} has no test set folder; expected one of {', '.join(TEST_SET_NAMES)}")
    return DataSources(list_images(pool) if pool.is_dir() else [], tests, "folder", f"folder {root}",
                       comparable=paper_sets(tests))  # a folder named kodak/ is not Kodak by its name


def _downloads_complete(cache: Path) -> bool:
    return (cache / "kodak" / "kodim24.png").is_file() and (cache / "BSDS300" / "images" / "train").is_dir()


def download(url: str, sha256: str | None, dest: Path, progress: bool = True) -> Path:
    """``url`` saved as ``dest`` (with a progress bar), unless a file there already has ``sha256`` (None:
    any file there is kept); the download is checked against ``sha256`` (every data set's one downloader)."""
    import pooch  # a dependency of scikit-image; imported here so that offline use never needs it

    downloader = pooch.HTTPDownloader(progressbar=progress, timeout=DOWNLOAD_TIMEOUT_S)
    return Path(pooch.retrieve(url, known_hash=sha256 and f"sha256:{sha256}", fname=dest.name, path=dest.parent,
                               downloader=downloader))


def _from_downloads(cache: Path) -> DataSources:
    kodak_url = os.environ.get("N2N_KODAK_URL", KODAK_URL)
    kodak = [download(kodak_url + name, sha, cache / "kodak" / name) for name, sha in KODAK_SHA256.items()]
    train_dir = cache / "BSDS300" / "images" / "train"
    if not train_dir.is_dir():
        archive = download(os.environ.get("N2N_BSDS300_URL", BSDS300_URL), None, cache / "BSDS300-images.tgz")
        shutil.unpack_archive(archive, cache, filter="data")
    # the archive's test split (100 images) is the paper's BSD300 test set; Set14 has no official address
    tests = {"kodak": kodak, "bsd300": list_images(cache / "BSDS300" / "images" / "test")}
    return DataSources(list_images(train_dir), tests, "download", f"downloaded to {cache}")


def _embedded() -> DataSources:
    import skimage.data

    folder = Path(skimage.data.__file__).parent
    print("Falling back to the photographs embedded in scikit-image (offline default).")
    return DataSources([folder / n for n in EMBEDDED_TRAIN], {"skimage": [folder / n for n in EMBEDDED_TEST]},
                       "embedded", "scikit-image's embedded photographs", comparable=False)
