"""Synthetic shapes for semantic segmentation with a rare class, generated on the fly (no download).

A ``size`` x ``size`` grey image (32 x 32 by default) on Gaussian noise (std 0.25) holds

- 1 to 3 filled **squares** (class 1, common) of side 6 to 11 pixels, and
- with probability ``rare_probability`` (0.3) one small filled **disc** (class 2, rare) of radius 1.5 to 2.5
  pixels (9 to 21 pixels),

every object with its own intensity in [0.5, 1.0] added to the noise, objects at least one pixel apart. Class 0 is
the background. Squares and discs differ in size (and, from radius 2 on, in shape; a disc of radius below 2 is a
3 x 3 block), not in intensity, so the network must look at a neighbourhood to tell them apart. About 14 % of the
pixels are squares and about 0.4 % are discs: the rare class is rare among images (3 in 10) and tiny within them.
"""

from __future__ import annotations

import numpy as np

__all__ = ["BACKGROUND", "COMMON", "RARE", "CLASS_NAMES", "make_shapes"]

BACKGROUND, COMMON, RARE = 0, 1, 2
CLASS_NAMES = ("background", "square", "disc")


def _free_spot(rng: np.random.Generator, occupied: np.ndarray, extent: int) -> tuple[int, int] | None:
    """Top-left corner of a free ``extent`` x ``extent`` window at least one pixel from every other object."""
    size = occupied.shape[0]
    for _ in range(50):
        y, x = (int(v) for v in rng.integers(1, size - extent, size=2))
        if not occupied[y - 1:y + extent + 1, x - 1:x + extent + 1].any():
            return y, x
    return None


def make_shapes(rng: np.random.Generator, batch: int, size: int = 32, *, rare_probability: float = 0.3,
                noise: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """Images (B, 1, size, size) float32 and class maps (B, size, size) int64 in {0, 1, 2}.

    Args:
      rng: the generator that fixes every draw (the same state gives the same images).
      batch: B >= 1; size: image side >= 16 pixels.
      rare_probability: probability in [0, 1] that an image holds a disc.
      noise: standard deviation (>= 0) of the Gaussian background noise.

    Example:
      >>> x, y = make_shapes(np.random.default_rng(0), 4)
      >>> x.shape, y.shape, sorted(set(y.ravel().tolist())) <= [0, 1, 2]
      ((4, 1, 32, 32), (4, 32, 32), True)
    """
    import focalkit

    if not isinstance(batch, (int, np.integer)) or batch < 1:
        raise focalkit.InvalidArgumentError(f"batch: expected an int >= 1, got {batch!r}")
    if not isinstance(size, (int, np.integer)) or size < 16:
        raise focalkit.InvalidArgumentError(f"size: expected an int >= 16, got {size!r}")
    if not 0.0 <= rare_probability <= 1.0:
        raise focalkit.InvalidArgumentError(f"rare_probability: expected a number in [0, 1], got {rare_probability!r}")
    if not 0.0 <= noise < float("inf"):
        raise focalkit.InvalidArgumentError(f"noise: expected a finite number >= 0, got {noise!r}")
    images = rng.normal(0.0, noise, (batch, 1, size, size)).astype(np.float32)
    labels = np.zeros((batch, size, size), dtype=np.int64)
    for b in range(batch):
        occupied = labels[b] > 0
        objects = [COMMON] * int(rng.integers(1, 4)) + ([RARE] if rng.random() < rare_probability else [])
        for kind in objects:
            if kind == COMMON:
                side = int(rng.integers(6, 12))
                spot = _free_spot(rng, occupied, side)
                if spot is None:
                    continue
                mask = np.zeros((size, size), dtype=bool)
                mask[spot[0]:spot[0] + side, spot[1]:spot[1] + side] = True
            else:
                radius = float(rng.uniform(1.5, 2.5))
                spot = _free_spot(rng, occupied, 5)
                if spot is None:
                    continue
                yy, xx = np.mgrid[:size, :size]
                mask = (yy - (spot[0] + 2)) ** 2 + (xx - (spot[1] + 2)) ** 2 <= radius ** 2
            images[b, 0][mask] += rng.uniform(0.5, 1.0)
            labels[b][mask] = kind
            occupied |= mask
    return images, labels
