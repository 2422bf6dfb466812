"""The evaluation transform, bit-identical to torchvision's, in PIL and numpy only.

torchvision's `Resize(resize, interpolation) → CenterCrop(crop) → ToTensor() → Normalize(mean, std)`
on `Image.open(p).convert('RGB')` is reproduced step by step:

- Resize: the same output size (short edge to `resize`, long edge truncated, optional
  `max_size`), the image left untouched when it already has that size, and the same PIL call
  (`img.resize((w, h), resample)`, which always antialiases), so the uint8 pixels are PIL's own.
- CenterCrop: the same zero padding when the image is smaller than the crop, then the same
  `int(round(...))` offsets; cropping uint8 pixels moves no value, so it is done before any
  float work. Pillow resizes in two passes through a uint8 intermediate, and each column of the
  vertical pass reads only its own column; so when Pillow runs the horizontal pass first, the
  passes are run as two calls and the columns the crop drops are cut between them: the same
  pixels, with a third less vertical work on a landscape image. Which pass Pillow runs first
  depends on its version (see `horizontal_first`), so the rule is checked against the installed
  Pillow once per process (`split_resize_is_exact`), and any doubt takes the plain path.
- The uint8 output (`pixels`) stops here: the cropped RGB pixels, HWC, as Pillow made them.
- ToTensor + Normalize: each output value is `((float32(v) / 255) - mean[c]) / std[c]`, one float32
  operation at a time as torch does them (it divides by 255, it does not multiply by 1/255). It
  depends only on the channel and the uint8 value, so all 3 x 256 results are computed once into
  a table and every image is a table look-up: the same bits, for a fraction of the work. The
  runner normalises uint8 files for a float32 model with the same look-up (`normalize_batch`).

Importing this module does not import torch, so worker processes start cheaply.
"""

from __future__ import annotations

import functools
import hashlib
import os
from typing import Optional, Sequence, Tuple

import numpy as np
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_RESIZE = 256
DEFAULT_CROP = 224

# bicubic (the default): the ModelZoo Moco-v2 preprocessing script, which the guide's command line
# runs and its published accuracy (PyTorch 67.589, OM 67.31 / 67.41) was measured with;
# bilinear: MoCo's own main_lincls.py evaluation (torchvision Resize's default).
INTERPOLATIONS = {
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
}
DEFAULT_INTERPOLATION = "bicubic"


# Freed image buffers Pillow keeps for the next image. With Pillow's default (none kept), each
# decode and resize maps fresh pages from the kernel and faults them in: about 280 page faults
# and 0.17 ms per ImageNet image, measured (benchmarks/bench_preprocess.py). Eight covers the
# buffers one image passes through; it caps what stays cached at eight of Pillow's blocks (16 MB
# each at most, so 128 MB per process after a huge image, about 1 MB each for ImageNet's). A
# user's PILLOW_BLOCKS_MAX wins.
PILLOW_BLOCKS_KEPT = 8


def keep_pillow_buffers() -> None:
    """Let Pillow reuse its freed image buffers in this process (a speed setting: same pixels)."""
    if "PILLOW_BLOCKS_MAX" not in os.environ and Image.core.get_blocks_max() < PILLOW_BLOCKS_KEPT:
        Image.core.set_blocks_max(PILLOW_BLOCKS_KEPT)


def resized_size(width: int, height: int, size: int, max_size: Optional[int] = None) -> Tuple[int, int]:
    """(width, height) that torchvision's `Resize(size, max_size=max_size)` gives a PIL image.

    Mirrors `torchvision.transforms.functional._compute_resized_output_size` for an int size,
    including its float expression, so the truncation of the long edge is the same.
    """
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = size, int(size * long / short)
    if max_size is not None:
        if max_size <= size:
            raise ValueError(f"max_size = {max_size} must be strictly greater than the requested "
                             f"size for the smaller edge size = {size}")
        if new_long > max_size:
            new_short, new_long = int(max_size * new_short / new_long), max_size
    return (new_short, new_long) if width <= height else (new_long, new_short)


def center_crop_offsets(width: int, height: int, crop: int) -> Tuple[Tuple[int, int, int, int], int, int]:
    """torchvision CenterCrop on a `width` x `height` image: (pad left, top, right, bottom), top, left.

    The padding is zero unless the image is smaller than the crop; top and left are offsets into
    the padded image.
    """
    pad = (
        (crop - width) // 2 if crop > width else 0,
        (crop - height) // 2 if crop > height else 0,
        (crop - width + 1) // 2 if crop > width else 0,
        (crop - height + 1) // 2 if crop > height else 0,
    )
    padded_w, padded_h = width + pad[0] + pad[2], height + pad[1] + pad[3]
    top = int(round((padded_h - crop) / 2.0))
    left = int(round((padded_w - crop) / 2.0))
    return pad, top, left


def normalize_table(mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> np.ndarray:
    """float32 [channels, 256]: ToTensor then Normalize of every uint8 value, with torch's operations.

    torch: `img.to(float32).div(255)`, then `tensor.sub_(mean).div_(std)` with mean and std as
    float32 tensors. Each is one IEEE float32 operation, which numpy performs identically.
    """
    values = np.arange(256, dtype=np.float32) / np.float32(255)
    mean32 = np.asarray(mean, dtype=np.float32).reshape(-1, 1)
    std32 = np.asarray(std, dtype=np.float32).reshape(-1, 1)
    if (std32 == 0).any():
        raise ValueError("std evaluated to zero after conversion to float32")
    return np.ascontiguousarray((values[None, :] - mean32) / std32, dtype=np.float32)


@functools.lru_cache(maxsize=None)
def imagenet_table() -> np.ndarray:
    """`normalize_table()` for the ImageNet mean and std, computed once per process (read-only)."""
    table = normalize_table()
    table.setflags(write=False)
    return table


def normalize_into(table: np.ndarray, pixels: np.ndarray, out: np.ndarray) -> np.ndarray:
    """ToTensor + Normalize of uint8 HWC pixels into float32 CHW `out`, by look-up in `table`
    (`normalize_table`). Preprocessing's float32 files and the runner's host normalisation of
    uint8 files both come from here, so the two give the same bits."""
    chw = pixels.transpose(2, 0, 1)
    for c in range(chw.shape[0]):
        # uint8 indices are always inside the 256-entry table, so no bounds mode ever applies;
        # "wrap" spares the buffered copy that the default "raise" makes of `out`.
        np.take(table[c], chw[c], out=out[c], mode="wrap")
    return out


def normalize_batch(pixels: np.ndarray, out: np.ndarray, table: Optional[np.ndarray] = None) -> np.ndarray:
    """`normalize_into` for each sample of uint8 [n,H,W,3] into float32 [n,3,H,W] (ImageNet's
    mean and std unless `table` is given)."""
    table = imagenet_table() if table is None else table
    for i in range(len(pixels)):
        normalize_into(table, pixels[i], out[i])
    return out


def horizontal_first(width: int, height: int, new_w: int, new_h: int) -> bool:
    """Whether Pillow's one-call resize of a `width` x `height` image runs its horizontal pass first.

    Pillow up to 12 always does. Pillow 13 (python-pillow/Pillow#9549) runs the vertical pass
    first when the height shrinks by more than twice as many pixels as the width: e.g.
    300x900 → 256x768, but not 375x500 → 256x341.
    """
    return not (new_h < height and height - new_h > 2 * (width - new_w))


# (width, height, new width, new height): both sides of `horizontal_first`'s boundary, with
# upscales and mixed cases, on noise small enough to check in a few milliseconds.
_ORDER_PROBES = (
    (64, 64, 60, 63), (64, 64, 60, 60), (64, 64, 60, 57), (64, 64, 60, 56), (64, 64, 60, 55),
    (64, 64, 60, 52), (64, 64, 60, 40), (64, 64, 40, 40), (64, 64, 40, 17), (64, 64, 40, 16),
    (64, 64, 40, 15), (64, 64, 80, 100), (64, 64, 100, 80), (64, 64, 80, 40), (64, 64, 40, 80),
    (32, 96, 27, 81), (96, 32, 81, 27), (48, 64, 33, 44), (40, 120, 34, 102), (40, 120, 34, 103),
)


@functools.lru_cache(maxsize=None)
def split_resize_is_exact() -> bool:
    """True when this Pillow's pass order is `horizontal_first`'s, checked on noise images.

    Each probe whose two pass orders give different pixels must match the order predicted;
    a Pillow with another rule turns the split off, costing speed, never bits.
    """
    images = {}
    for width, height, new_w, new_h in _ORDER_PROBES:
        if (width, height) not in images:
            noise = hashlib.shake_128(f"{width}x{height}".encode()).digest(width * height * 3)
            images[width, height] = Image.frombytes("RGB", (width, height), noise)
        img = images[width, height]
        for resample in INTERPOLATIONS.values():
            one_call = img.resize((new_w, new_h), resample).tobytes()
            h_first = img.resize((new_w, height), resample).resize((new_w, new_h), resample).tobytes()
            v_first = img.resize((width, new_h), resample).resize((new_w, new_h), resample).tobytes()
            if h_first == v_first:
                continue  # this probe cannot tell the orders apart
            expected = h_first if horizontal_first(width, height, new_w, new_h) else v_first
            if one_call != expected:
                return False
    return True


def load_rgb(path: str) -> Image.Image:
    """`Image.open(path).convert('RGB')`, as torchvision's ImageFolder loader and the guide do.

    EXIF orientation is ignored, as torchvision ignores it. The file is closed before returning.
    """
    with Image.open(path) as img:
        # convert() starts with load() (which may settle the mode) and, on an RGB image, only
        # copies it: load() alone gives the same pixels without the copy.
        img.load()
        if img.mode == "RGB":
            return img
        return img.convert("RGB")


class EvalTransform:
    """The evaluation transform as a callable: PIL image → float32 numpy array [3, crop, crop]."""

    def __init__(self, resize: int = DEFAULT_RESIZE, crop: int = DEFAULT_CROP,
                 interpolation: str = DEFAULT_INTERPOLATION,
                 mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                 max_size: Optional[int] = None):
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"unknown interpolation {interpolation!r} (choose from {', '.join(INTERPOLATIONS)})")
        if resize < 1 or crop < 1:
            raise ValueError(f"resize and crop must be >= 1, got {resize} and {crop}")
        if len(mean) != 3 or len(std) != 3:
            raise ValueError("mean and std need one value per RGB channel")
        self.resize = resize
        self.crop = crop
        self.interpolation = interpolation
        self.max_size = max_size
        self.mean = tuple(mean)
        self.std = tuple(std)
        self._resample = INTERPOLATIONS[interpolation]
        self._table = normalize_table(mean, std)
        split_resize_is_exact()  # once, here, so that forked workers inherit the answer

    def __repr__(self) -> str:
        return (f"EvalTransform(resize={self.resize}, crop={self.crop}, interpolation={self.interpolation!r}, "
                f"mean={self.mean}, std={self.std}, max_size={self.max_size})")

    @property
    def output_shape(self) -> Tuple[int, int, int]:
        return (3, self.crop, self.crop)

    def resize_image(self, img: Image.Image) -> Image.Image:
        """torchvision `Resize(self.resize, interpolation)` on a PIL image."""
        width, height = img.size
        new_size = resized_size(width, height, self.resize, self.max_size)
        if new_size == (width, height):
            return img
        return img.resize(new_size, self._resample)

    def crop_pixels(self, img: Image.Image) -> np.ndarray:
        """torchvision `CenterCrop(self.crop)` on an RGB image, as uint8 [crop, crop, 3]."""
        pixels = np.asarray(img)
        height, width = pixels.shape[:2]
        crop = self.crop
        (pad_l, pad_t, pad_r, pad_b), top, left = center_crop_offsets(width, height, crop)
        if pad_l or pad_t or pad_r or pad_b:
            padded = np.zeros((height + pad_t + pad_b, width + pad_l + pad_r, 3), dtype=np.uint8)
            padded[pad_t:pad_t + height, pad_l:pad_l + width] = pixels
            pixels = padded
        return pixels[top:top + crop, left:left + crop]

    def to_normalized(self, pixels: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        """ToTensor + Normalize of uint8 HWC RGB pixels: float32 [3, H, W] by table look-up.

        `out`, a float32 C-contiguous array of that shape, is filled and returned: a worker reuses
        one, sparing the kernel a fresh 600 KB of zeroed pages per image.
        """
        shape = (pixels.shape[2], pixels.shape[0], pixels.shape[1])
        if out is None:
            out = np.empty(shape, dtype=np.float32)
        elif out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous float32 array of shape {shape}")
        return normalize_into(self._table, pixels, out)

    def resized_crop_pixels(self, img: Image.Image) -> np.ndarray:
        """Resize then CenterCrop, as uint8 [crop, crop, 3]: `crop_pixels(resize_image(img))`, faster."""
        width, height = img.size
        new_w, new_h = resized_size(width, height, self.resize, self.max_size)
        crop = self.crop
        if (new_w < crop or new_h < crop or not horizontal_first(width, height, new_w, new_h)
                or not split_resize_is_exact()):
            return self.crop_pixels(self.resize_image(img))
        _, top, left = center_crop_offsets(new_w, new_h, crop)
        if new_w != width:
            img = img.resize((new_w, height), self._resample)
        if new_w != crop:
            img = img.crop((left, 0, left + crop, height))
        if new_h != height:
            img = img.resize((crop, new_h), self._resample)
        return np.asarray(img)[top:top + crop]

    def pixels(self, img: Image.Image) -> np.ndarray:
        """uint8 [crop, crop, 3] (C-contiguous) for an RGB image: what torchvision holds before ToTensor.

        That is `np.asarray(CenterCrop(crop)(Resize(resize, interpolation)(img)))`; the float32
        output is exactly `to_normalized` of it, so these pixels lose nothing against it.
        """
        if img.mode != "RGB":
            raise ValueError(f"expected an RGB image, got mode {img.mode!r} (convert('RGB') first)")
        # Cropping columns on the one-call path leaves a strided view; a file write needs one block.
        return np.ascontiguousarray(self.resized_crop_pixels(img))

    def pixels_from_file(self, path: str) -> np.ndarray:
        """`pixels` of `Image.open(path).convert('RGB')`."""
        return self.pixels(load_rgb(path))

    def __call__(self, img: Image.Image, out: Optional[np.ndarray] = None) -> np.ndarray:
        """float32 [3, crop, crop] for an RGB image (into `out` when given)."""
        if img.mode != "RGB":
            raise ValueError(f"expected an RGB image, got mode {img.mode!r} (convert('RGB') first)")
        return self.to_normalized(self.resized_crop_pixels(img), out)

    def from_file(self, path: str, out: Optional[np.ndarray] = None) -> np.ndarray:
        """The transform applied to `Image.open(path).convert('RGB')`."""
        return self(load_rgb(path), out)
