"""Random crops and the eight flips/rotations of the square."""
from __future__ import annotations

import pytest
import torch

from n2n_core.data.augment import SelfEnsemble, dihedral, random_crop, random_crops, random_dihedral, undo_dihedral


@pytest.fixture
def square(generator) -> torch.Tensor:
    """An asymmetric 3 x 6 x 6 image (random values: no symmetry at all)."""
    return torch.rand(3, 6, 6, generator=generator)


def test_dihedral_index_0_is_the_identity(square):
    assert torch.equal(dihedral(square, 0), square)


def test_dihedral_gives_8_distinct_images(square):
    results = [dihedral(square, i) for i in range(8)]
    assert len({tuple(r.flatten().tolist()) for r in results}) == 8
    for r in results:  # the pixels are only moved, never changed
        assert torch.equal(r.flatten().sort().values, square.flatten().sort().values)


def test_dihedral_results_form_the_group_of_the_square(square):
    # composing two elements gives an element again: the 8 images are closed under the operations
    results = {tuple(dihedral(square, i).flatten().tolist()) for i in range(8)}
    for i in range(8):
        for j in range(8):
            assert tuple(dihedral(dihedral(square, i), j).flatten().tolist()) in results


@pytest.mark.parametrize("index", range(8))
def test_every_dihedral_transform_is_invertible(square, index):
    inverses = [j for j in range(8) if torch.equal(dihedral(dihedral(square, index), j), square)]
    assert len(inverses) == 1


@pytest.mark.parametrize("index", range(4, 8))
def test_indices_4_to_7_are_flips_their_own_inverse(square, index):
    assert torch.equal(dihedral(dihedral(square, index), index), square)


@pytest.mark.parametrize("index", range(1, 4))
def test_indices_1_to_3_are_rotations(square, index):
    x = square
    for _ in range(4):
        x = dihedral(x, index)
    assert torch.equal(x, square)  # four quarter/half turns bring the image back
    # a rotation by 90 degrees moves the corner pixel (0, 0) to another corner
    if index in (1, 3):
        corner = square[:, 0, 0]
        out = dihedral(square, index)
        corners = [out[:, 0, -1], out[:, -1, 0]]
        assert any(torch.equal(corner, c) for c in corners)


def test_dihedral_4_is_a_left_right_mirror(square):
    assert torch.equal(dihedral(square, 4), square[..., torch.arange(5, -1, -1)])


def test_dihedral_works_on_batches_and_non_square_images(generator):
    batch = torch.rand(2, 3, 5, 7, generator=generator)
    for i in range(8):
        out = dihedral(batch, i)
        assert out.shape == ((2, 3, 5, 7) if i % 2 == 0 else (2, 3, 7, 5))
        assert torch.equal(out[1], dihedral(batch[1], i))


@pytest.mark.parametrize("index", [-1, 8])
def test_dihedral_rejects_a_bad_index(square, index):
    with pytest.raises(ValueError, match=str(index)):
        dihedral(square, index)


@pytest.mark.parametrize("index", range(8))
def test_undo_dihedral_turns_each_transform_back(generator, index):
    batch = torch.rand(2, 3, 5, 7, generator=generator)  # not square: a wrong rotation changes the shape
    assert torch.equal(undo_dihedral(dihedral(batch, index), index), batch)
    with pytest.raises(ValueError, match="8"):
        undo_dihedral(batch, 8)


def test_self_ensemble_of_a_symmetric_model_is_the_model(generator):
    torch.manual_seed(0)
    pointwise = torch.nn.Conv2d(3, 3, 1)  # a 1x1 convolution commutes with every flip and rotation
    x = torch.rand(2, 3, 6, 9, generator=generator)
    with torch.no_grad():
        assert torch.allclose(SelfEnsemble(pointwise)(x), pointwise(x), atol=1e-6)


def test_self_ensemble_is_the_model_with_its_kernel_averaged_over_the_group(generator):
    """Turning the input and the output back is turning the kernel: the ensemble of a 3x3 convolution
    (zero padding treats all sides alike) is the convolution with its kernel's 8 turns averaged."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 3, 3, padding=1)
    averaged = torch.nn.Conv2d(3, 3, 3, padding=1)
    with torch.no_grad():
        averaged.weight.copy_(sum(dihedral(conv.weight, k) for k in range(8)) / 8)
        averaged.bias.copy_(conv.bias)
        x = torch.rand(1, 3, 7, 10, generator=generator)
        ensemble = SelfEnsemble(conv)(x)
        assert ensemble.shape == x.shape
        assert torch.allclose(ensemble, averaged(x), atol=1e-5)
        assert not torch.allclose(ensemble, conv(x), atol=1e-3)  # a real change: the kernel is not symmetric


def test_random_dihedral_visits_all_eight(square, generator):
    seen = {tuple(random_dihedral(square, generator).flatten().tolist()) for _ in range(200)}
    assert len(seen) == 8


# ------------------------------------------------------------------------------------------ crops
def _numbered(h: int, w: int) -> torch.Tensor:
    """A 3 x h x w image whose every pixel value says where it is."""
    return torch.arange(3 * h * w, dtype=torch.float32).reshape(3, h, w)


def test_random_crop_is_a_window_of_the_image(generator):
    image = _numbered(37, 31)
    for _ in range(20):
        crop = random_crop(image, 8, generator)
        assert crop.shape == (3, 8, 8)
        top, left = divmod(int(crop[0, 0, 0]), 31)
        assert torch.equal(crop, image[:, top:top + 8, left:left + 8])


def test_random_crop_reaches_every_offset(generator):
    image = _numbered(5, 4)
    offsets = set()
    for _ in range(300):
        crop = random_crop(image, 3, generator)
        offsets.add(divmod(int(crop[0, 0, 0]), 4))
    assert offsets == {(t, l) for t in range(3) for l in range(2)}


def test_random_crop_of_the_full_size_is_the_image(generator):
    image = _numbered(6, 6)
    assert torch.equal(random_crop(image, 6, generator), image)


def test_random_crop_same_seed_same_crop():
    image = _numbered(37, 31)
    a = random_crop(image, 9, torch.Generator().manual_seed(4))
    b = random_crop(image, 9, torch.Generator().manual_seed(4))
    assert torch.equal(a, b)


def test_random_crop_uses_one_offset_for_a_whole_batch(generator):
    batch = torch.stack([_numbered(20, 18), _numbered(20, 18) + 1000])
    crop = random_crop(batch, 7, generator)
    assert crop.shape == (2, 3, 7, 7)
    assert torch.equal(crop[1], crop[0] + 1000)


@pytest.mark.parametrize("height,width,size", [(37, 31, 40), (37, 31, 32), (10, 50, 11)])
def test_random_crop_of_a_too_small_image_names_the_sizes(generator, height, width, size):
    with pytest.raises(ValueError) as info:
        random_crop(torch.zeros(3, height, width), size, generator)
    message = str(info.value)
    assert f"{width}x{height}" in message and f"{size}x{size}" in message


def test_random_crops_crops_and_transforms_each_image(generator):
    batch = torch.stack([_numbered(13, 11) + 10_000 * i for i in range(4)])
    out = random_crops(batch, 5, generator)
    assert out.shape == (4, 3, 5, 5)
    for i in range(4):
        source = batch[i]
        # the crop is one of the 8 transforms of some 5 x 5 window of its own image
        windows = [dihedral(source[:, t:t + 5, l:l + 5], k)
                   for t in range(13 - 4) for l in range(11 - 4) for k in range(8)]
        assert any(torch.equal(out[i], w) for w in windows)
