"""Training losses: L2 (the mean, Noise2Noise's default for zero-mean noise) and L1 (the median)."""
from __future__ import annotations

import pytest
import torch

from n2n_core.paper.losses import LOSSES, get_loss, l1, l2


def test_l2_by_hand():
    output = torch.tensor([[0.0, 1.0], [2.0, -1.0]])
    target = torch.tensor([[1.0, 1.0], [-1.0, 1.0]])
    # squared errors 1, 0, 9, 4 -> mean 3.5
    assert l2(output, target).item() == pytest.approx(3.5)


def test_l1_by_hand():
    output = torch.tensor([[0.0, 1.0], [2.0, -1.0]])
    target = torch.tensor([[1.0, 1.0], [-1.0, 1.0]])
    # absolute errors 1, 0, 3, 2 -> mean 1.5
    assert l1(output, target).item() == pytest.approx(1.5)


def test_losses_are_zero_for_a_perfect_output_and_symmetric(generator):
    a, b = torch.rand(2, 3, 5, 7, generator=generator), torch.rand(2, 3, 5, 7, generator=generator)
    for loss in (l1, l2):
        assert loss(a, a).item() == 0
        assert loss(a, b).item() == pytest.approx(loss(b, a).item())
        assert loss(a, b).dim() == 0


def test_l2_is_minimised_by_the_mean_and_l1_by_the_median():
    # the statistical argument of the paper: fit one constant to the targets 0, 0, 1, 10
    targets = torch.tensor([0.0, 0.0, 1.0, 10.0])
    for loss, expected in ((l2, targets.mean().item()), (l1, None)):
        c = torch.zeros(1, requires_grad=True)
        opt = torch.optim.SGD([c], lr=0.05)
        for _ in range(500):
            opt.zero_grad()
            loss(c.expand(4), targets).backward()
            opt.step()
        if expected is not None:
            assert c.item() == pytest.approx(expected, abs=1e-3)
        else:
            assert 0.0 - 0.05 <= c.item() <= 1.0 + 0.05  # any median of {0, 0, 1, 10}


def test_l2_gradient_by_hand():
    output = torch.tensor([1.0, 3.0], requires_grad=True)
    l2(output, torch.tensor([0.0, 0.0])).backward()
    # d/dx mean(x^2) = 2x / n
    assert output.grad.tolist() == pytest.approx([1.0, 3.0])


def test_get_loss():
    assert get_loss("l2") is l2 and get_loss("l1") is l1 and get_loss("l0").gamma(0.0) == 2.0
    assert set(LOSSES) == {"l1", "l2", "l0"}


def test_get_loss_unknown_name_lists_the_choices():
    with pytest.raises(ValueError) as info:
        get_loss("nope")
    message = str(info.value)
    assert "nope" in message and "l2" in message and "l1" in message


def test_masked_l2_by_hand():
    output = torch.tensor([[[[0.0, 1.0], [2.0, -1.0]]]])  # 1 x 1 x 2 x 2
    target = torch.tensor([[[[1.0, 1.0], [-1.0, 1.0]]]])
    mask = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]]])
    # kept squared errors 1 and 9 -> mean 5 over the 2 kept values
    assert l2(output, target, mask).item() == pytest.approx(5.0)
    assert l1(output, target, mask).item() == pytest.approx(2.0)


@pytest.mark.parametrize("loss", [l1, l2])
def test_masked_loss_ignores_dropped_pixels_and_their_gradient(generator, loss):
    output = torch.rand(2, 3, 8, 8, generator=generator, requires_grad=True)
    target = torch.rand(2, 3, 8, 8, generator=generator)
    mask = (torch.rand(2, 1, 8, 8, generator=generator) > 0.5).float()  # one mask for all channels
    garbage = target + (1 - mask) * 100.0  # anything at dropped pixels
    assert loss(output, garbage, mask).item() == pytest.approx(loss(output, target, mask).item())
    loss(output, garbage, mask).backward()
    dropped = (1 - mask).expand_as(output).bool()
    assert torch.all(output.grad[dropped] == 0) and torch.any(output.grad[~dropped] != 0)


def test_masked_loss_with_an_all_ones_mask_is_the_plain_loss(generator):
    a, b = torch.rand(2, 3, 5, 7, generator=generator), torch.rand(2, 3, 5, 7, generator=generator)
    ones = torch.ones(2, 1, 5, 7)
    for loss in (l1, l2):
        assert loss(a, b, ones).item() == pytest.approx(loss(a, b).item())


def test_annealed_l0_is_l2_at_the_start_l1_halfway_and_counts_errors_at_the_end(generator):
    from n2n_core.paper.losses import l0

    a, b = torch.rand(2, 3, 8, 8, generator=generator), torch.rand(2, 3, 8, 8, generator=generator)
    assert l0.gamma(0.0) == 2.0 and l0.gamma(0.5) == 1.0 and l0.gamma(1.0) == 0.0
    assert l0(a, b, progress=0.0).item() == pytest.approx(l2(a, b).item(), rel=1e-6)
    assert l0(a, b, progress=0.5).item() == pytest.approx(l1(a, b).item(), rel=1e-6)
    # gamma -> 0: every error, small or large, costs nearly 1 and an exact value less: the loss
    # prefers more exact values (L0) where L2 prefers many small errors
    zeros = torch.zeros(1, 3, 8, 8)
    half_exact = torch.zeros(1, 3, 8, 8)
    half_exact[..., :4] = 0.5
    all_small = torch.full((1, 3, 8, 8), 0.2)
    assert l2(zeros, all_small) < l2(zeros, half_exact)
    assert l0(zeros, half_exact, progress=0.995) < l0(zeros, all_small, progress=0.995)
    assert l0(zeros, all_small, progress=1.0).item() == pytest.approx(1.0)


@pytest.mark.parametrize("progress,statistic", [(0.0, "mean"), (0.5, "median"), (0.95, "mode")])
def test_annealed_l0_moves_from_the_mean_through_the_median_to_the_mode(progress, statistic):
    # the best constant for the targets 0.3, 0.3, 0.5, 0.6, 0.7 (mean 0.48, median 0.5, mode 0.3)
    from n2n_core.paper.losses import l0

    targets = torch.tensor([0.3, 0.3, 0.5, 0.6, 0.7])
    grid = torch.linspace(0, 1, 101)
    losses = torch.stack([l0(c.expand(5), targets, progress=progress) for c in grid])
    best = grid[losses.argmin()].item()
    assert best == pytest.approx({"mean": 0.48, "median": 0.5, "mode": 0.3}[statistic], abs=1e-6)


def test_every_loss_takes_a_mask_and_progress(generator):
    a, b = torch.rand(1, 3, 4, 4, generator=generator), torch.rand(1, 3, 4, 4, generator=generator)
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :2] = 1
    for name, loss in LOSSES.items():
        masked = loss(a, b, mask, 0.3)
        assert masked.item() == pytest.approx(loss(a[..., :2], b[..., :2], None, 0.3).item(), rel=1e-6), name
