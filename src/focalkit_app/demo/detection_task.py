"""The generated detection task of ``focalkit demo --task detection``: long-tailed classes, small overlapping objects,
object-like clutter, and RetinaNet's anchor assignment with one sigmoid per (class, anchor).

Image
-----
A ``size`` x ``size`` grey image (24 x 24 in the demo) on Gaussian noise (std 0.15) holds 2-5 *objects* and 2-4 pieces
of *clutter*. An object is an axis-aligned box of height and width drawn uniformly from 3..7 pixels, painted with
intensity v ~ U(0.5, 1.0) in the pattern of its class:

- ``solid``: every pixel of the box;
- ``hollow``: the one-pixel outline of the box;
- ``striped``: every other row of the box (rows 0, 2, 4, ...).

Classes follow a long tail: class c is drawn with probability pi_c proportional to rho^(-c / (C - 1)) with imbalance
factor rho = 10, i.e. (0.706, 0.223, 0.071) for C = 3. Objects may overlap: a new box is accepted when its IoU with
every earlier object is at most 0.3 (patterns add up where they overlap). Clutter is object-like but belongs to no
class: a box of the same size range filled with a random speckle (each pixel on with probability 0.5), or the two
sides of an outline that meet at one corner (an "L"), placed anywhere, also on objects.

Anchors and targets
-------------------
Every pixel centre carries A = 4 anchors of shapes (h, w) in ``ANCHOR_SHAPES`` = (4, 4), (6, 6), (3, 6), (6, 3):
A * size^2 = 2,304 anchors per image for 24 x 24, each with C = 3 sigmoids. As in RetinaNet (section 4, "Box
assignment"), an anchor is matched to the object of largest IoU; it is *foreground* of that object's class when the
IoU is >= 0.5, *ignored* when the IoU lies in [0.4, 0.5), and *background* below 0.4. With these shapes every object size of 3..7 has a best anchor IoU
of at least 0.56, so every object gets foreground anchors. Targets are class indices of shape (B, A, size, size):
c in [0, C) for foreground, C for background (focalkit's index-target convention), and ``IGNORE`` for ignored
anchors. The *quality* of a foreground anchor (the target score of Quality Focal Loss and Varifocal Loss) is its IoU
with the matched box; 0 elsewhere.

Reference:
  T.-Y. Lin, P. Goyal, R. Girshick, K. He, P. Dollar. Focal Loss for Dense Object Detection. ICCV 2017
  (arXiv:1708.02002), section 4 (anchors, IoU thresholds 0.5 / 0.4, one sigmoid per class and anchor).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["CLASS_NAMES", "ANCHOR_SHAPES", "IGNORE", "FG_IOU", "BG_IOU", "IMBALANCE", "MAX_OBJECT_IOU",
           "class_frequencies", "DetectionBatch", "make_batch", "anchor_boxes", "box_iou", "assign_anchors"]

CLASS_NAMES: tuple[str, ...] = ("solid", "hollow", "striped")
ANCHOR_SHAPES: tuple[tuple[int, int], ...] = ((4, 4), (6, 6), (3, 6), (6, 3))
IGNORE = -100          # focalkit's default ignore_index
FG_IOU, BG_IOU = 0.5, 0.4
IMBALANCE = 10.0       # rho: most frequent / rarest class
MAX_OBJECT_IOU = 0.3   # overlap allowed between two objects
OBJECT_SIDES = (3, 7)  # inclusive range of object heights and widths
NOISE_STD = 0.15
INTENSITY = (0.5, 1.0)


def class_frequencies(num_classes: int = len(CLASS_NAMES), imbalance: float = IMBALANCE) -> np.ndarray:
    """Long-tailed class probabilities pi_c = rho^(-c / (C - 1)) / Z, c = 0..C-1.

    Example:
      >>> np.round(class_frequencies(3, 10.0), 3)
      array([0.706, 0.223, 0.071])
    """
    c = np.arange(num_classes, dtype=np.float64)
    p = imbalance ** (-c / max(num_classes - 1, 1))
    return p / p.sum()


def anchor_boxes(size: int) -> np.ndarray:
    """Anchor boxes (A, size, size, 4) as (y0, x0, y1, x1), centred on pixel centres (i + 0.5, j + 0.5)."""
    i = np.arange(size, dtype=np.float64) + 0.5
    cy, cx = np.meshgrid(i, i, indexing="ij")
    out = np.empty((len(ANCHOR_SHAPES), size, size, 4))
    for a, (h, w) in enumerate(ANCHOR_SHAPES):
        out[a] = np.stack([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2], -1)
    return out


def box_iou(boxes: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """IoU of K boxes (K, 4) with anchors (..., 4), both (y0, x0, y1, x1): shape (K, ...)."""
    b = boxes.reshape((len(boxes),) + (1,) * (anchors.ndim - 1) + (4,))
    ih = np.clip(np.minimum(b[..., 2], anchors[..., 2]) - np.maximum(b[..., 0], anchors[..., 0]), 0, None)
    iw = np.clip(np.minimum(b[..., 3], anchors[..., 3]) - np.maximum(b[..., 1], anchors[..., 1]), 0, None)
    inter = ih * iw
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    area_a = (anchors[..., 2] - anchors[..., 0]) * (anchors[..., 3] - anchors[..., 1])
    return inter / (area_b + area_a - inter)


@dataclass(frozen=True)
class DetectionBatch:
    """One batch of the task.

    images: (B, 1, S, S) float32; labels: (B, A, S, S) int64 with c in [0, C), C = background, ``IGNORE``;
    quality: (B, A, S, S) float32, the IoU of each foreground anchor with its matched box (0 elsewhere);
    objects: per image an int array (K, 5) of (class, y0, x0, h, w).
    """

    images: np.ndarray
    labels: np.ndarray
    quality: np.ndarray
    objects: tuple[np.ndarray, ...]


def assign_anchors(objects: np.ndarray, anchors: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """RetinaNet's assignment of one image's anchors to its objects.

    Args:
      objects: (K, 5) int rows (class, y0, x0, h, w); anchors: (A, S, S, 4) from :func:`anchor_boxes`.
    Returns:
      labels (A, S, S) int64: the class of the object of largest IoU when that IoU is >= ``FG_IOU``, ``IGNORE`` when
      it lies in [``BG_IOU``, ``FG_IOU``), ``num_classes`` (background) otherwise; quality (A, S, S) float32: that
      IoU on foreground anchors, 0 elsewhere.
    """
    labels = np.full(anchors.shape[:-1], num_classes, dtype=np.int64)
    quality = np.zeros(anchors.shape[:-1], dtype=np.float32)
    if len(objects) == 0:
        return labels, quality
    boxes = np.stack([objects[:, 1], objects[:, 2], objects[:, 1] + objects[:, 3], objects[:, 2] + objects[:, 4]],
                     1).astype(np.float64)
    iou = box_iou(boxes, anchors)             # (K, A, S, S)
    best = iou.argmax(0)
    best_iou = np.take_along_axis(iou, best[None], 0)[0]
    fg = best_iou >= FG_IOU
    labels[fg] = objects[best[fg], 0]
    labels[(best_iou >= BG_IOU) & ~fg] = IGNORE
    quality[fg] = best_iou[fg]
    return labels, quality


def _paint(image, kind, y0, x0, h, w, value, rng):
    box = image[y0:y0 + h, x0:x0 + w]
    if kind == "solid":
        box += value
    elif kind == "hollow":
        box[0, :] += value
        box[-1, :] += value
        box[1:-1, 0] += value
        box[1:-1, -1] += value
    elif kind == "striped":
        box[::2, :] += value
    elif kind == "speckle":
        box += value * (rng.random((h, w)) < 0.5)
    else:  # "corner": two sides of an outline meeting at a random corner
        row = 0 if rng.random() < 0.5 else h - 1
        col = 0 if rng.random() < 0.5 else w - 1
        box[row, :] += value
        box[:, col] += value
        box[row, col] -= value


def _draw_objects(rng, size, num_classes, freqs):
    lo, hi = OBJECT_SIDES
    objects = []
    for _ in range(int(rng.integers(2, 6))):
        c = int(rng.choice(num_classes, p=freqs))
        for _attempt in range(20):
            h, w = int(rng.integers(lo, hi + 1)), int(rng.integers(lo, hi + 1))
            y0, x0 = int(rng.integers(0, size - h + 1)), int(rng.integers(0, size - w + 1))
            if objects:
                prev = np.array([[o[1], o[2], o[1] + o[3], o[2] + o[4]] for o in objects], dtype=np.float64)
                if box_iou(prev, np.array([y0, x0, y0 + h, x0 + w], dtype=np.float64)).max() > MAX_OBJECT_IOU:
                    continue
            objects.append((c, y0, x0, h, w))
            break
    return np.array(objects, dtype=np.int64).reshape(-1, 5)


def make_batch(rng: np.random.Generator, batch: int, size: int = 32,
               num_classes: int = len(CLASS_NAMES)) -> DetectionBatch:
    """Draw ``batch`` images with their anchor targets (deterministic given ``rng``'s state).

    Example:
      >>> b = make_batch(np.random.default_rng(0), 2)
      >>> b.images.shape, b.labels.shape, int(b.labels.max())
      ((2, 1, 32, 32), (2, 4, 32, 32), 3)
    """
    freqs = class_frequencies(num_classes)
    anchors = anchor_boxes(size)
    images = rng.normal(0.0, NOISE_STD, (batch, 1, size, size)).astype(np.float32)
    labels = np.full((batch, len(ANCHOR_SHAPES), size, size), num_classes, dtype=np.int64)
    quality = np.zeros(labels.shape, dtype=np.float32)
    lo, hi = OBJECT_SIDES
    all_objects = []
    for b in range(batch):
        objects = _draw_objects(rng, size, num_classes, freqs)
        for c, y0, x0, h, w in objects:
            _paint(images[b, 0], CLASS_NAMES[c % len(CLASS_NAMES)], y0, x0, h, w, rng.uniform(*INTENSITY), rng)
        for _ in range(int(rng.integers(2, 5))):
            h, w = int(rng.integers(lo, hi + 1)), int(rng.integers(lo, hi + 1))
            y0, x0 = int(rng.integers(0, size - h + 1)), int(rng.integers(0, size - w + 1))
            kind = "speckle" if rng.random() < 0.5 else "corner"
            _paint(images[b, 0], kind, y0, x0, h, w, rng.uniform(*INTENSITY), rng)
        labels[b], quality[b] = assign_anchors(objects, anchors, num_classes)
        all_objects.append(objects)
    return DetectionBatch(images, labels, quality, tuple(all_objects))
