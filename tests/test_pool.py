"""ImagePool: capacity, the 50 % swap once full, detached outputs, exact save / restore."""

from __future__ import annotations

import pytest
import torch

from cyclegan.recipes.cycle_gan.pool import ImagePool


def numbered(n: int, start: int = 0) -> torch.Tensor:
    """A batch whose image i is filled with the value start + i, so identity is visible."""
    return torch.arange(start, start + n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 3, 2, 2).clone()


def values(batch: torch.Tensor) -> list[int]:
    return [int(v) for v in batch[:, 0, 0, 0]]


def test_disabled_pool_returns_the_input_detached():
    pool = ImagePool(0)
    x = torch.rand(2, 3, 2, 2, requires_grad=True)
    out = pool.query(x)
    assert torch.equal(out, x) and not out.requires_grad and len(pool) == 0


def test_fills_then_swaps_about_half():
    pool = ImagePool(4, seed=1)
    assert values(pool.query(numbered(4))) == [0, 1, 2, 3]  # filling: returned as given
    assert len(pool) == 4
    swapped = 0
    for step in range(200):
        out = values(pool.query(numbered(1, start=100 + step)))[0]
        swapped += out != 100 + step
    assert len(pool) == 4  # never grows beyond capacity
    assert 70 <= swapped <= 130  # ~ 50 %


def test_per_image_decisions_within_a_batch():
    pool = ImagePool(2, seed=0)
    out = pool.query(numbered(5))
    assert values(out)[:2] == [0, 1]  # the first two fill the pool
    assert len(pool) == 2 and out.shape == (5, 3, 2, 2)


def test_returned_tensors_are_detached_copies():
    pool = ImagePool(3)
    x = numbered(3).requires_grad_(True)
    out = pool.query(x)
    assert not out.requires_grad
    pool.images[0].add_(1000)  # stored copies do not alias the caller's tensor
    assert x[0, 0, 0, 0].item() == 0


def test_state_round_trip_gives_the_same_future():
    pool = ImagePool(3, seed=7)
    pool.query(numbered(5))
    state = pool.state_dict()
    restored = ImagePool(3, seed=999)
    restored.load_state_dict(state)
    for step in range(20):
        batch = numbered(2, start=10 * step)
        assert torch.equal(pool.query(batch), restored.query(batch))


def test_state_of_a_different_size_is_refused():
    with pytest.raises(ValueError, match="up to 3"):
        ImagePool(5).load_state_dict(ImagePool(3).state_dict())


def test_negative_size_is_refused():
    with pytest.raises(ValueError):
        ImagePool(-1)
