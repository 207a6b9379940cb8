"""A learner's own pictures: files or drawings, turned into exactly what the network receives.

MNIST digits are white on black, fitted into a 20x20 box and placed so that their centre of mass
is at the centre of the 28x28 image (LeCun et al.). A digit drawn or photographed any other way
is normalised the same way, or the network sees something it was never trained on.

A picture costs the server in proportion to its pixels, not its file size: a few kilobytes of PNG
can claim 40 million 16-bit pixels. Its header is read first, and a picture whose pixels or
decoded bytes pass the limits below is refused before any of it is decoded. A JPEG much larger
than the network's image is decoded at 1/2, 1/4 or 1/8 scale, and any other picture is shrunk
right after decoding, so what follows works on a small image.
"""

from __future__ import annotations

import io
import math
import os
import re
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from . import checks
from .errors import LabError, Text

# Measured here (2 cores, AMD EPYC), decoding a picture of photo-like content: a 12-megapixel phone
# JPEG (4000x3000) takes 0.09 s, a 24-megapixel camera JPEG (6000x4000) 0.18 s, a 25-megapixel 8-bit
# RGB PNG 0.22-0.43 s. The 16-bit 6300x6300 PNG the old 40-megapixel limit let through took 0.63 s
# to decode and 3.2 s (and 300 MB) to turn into a digit. 25 megapixels takes every phone photo and
# 6000x4000 camera photos, and bounds a decode to about half a second.
MAX_PIXELS = 25_000_000          # larger images are refused before they are decoded
MAX_DECODED_BYTES = 3 * MAX_PIXELS  # an 8-bit RGB picture at MAX_PIXELS; 16-bit channels take twice the bytes
WORK_SIDE = 512                  # larger pictures are worked on reduced, to no less than this (see _working_factor)
WORK_PIXELS = 2**20              # ...and to no more pixels than this, whatever their shape
MAX_BYTES = 10 * 2**20           # the app's upload limit too (.streamlit/config.toml)
MAX_SIDE = 4096                  # the largest height or width a picture is turned into
MNIST_BOX = 20                   # MNIST fits each digit in a 20x20 box of its 28x28 image
FORMATS = ("PNG", "JPEG", "MPO")  # MPO: the multi-picture JPEG many phones write


def read_image(source: str | Path | bytes, image_shape: tuple[int, int, int], digit: bool | None = None,
               name: str | None = None) -> np.ndarray:
    """A PNG or JPEG (path or bytes, any size or mode) as a raw image of `image_shape`, uint8.

    Grayscale models get luminance, colour models RGB (transparency becomes white paper). A
    digit is normalised as MNIST's were (see normalise_digit); `digit=None` means "when the model
    takes MNIST's 28x28x1 images", so the app and the command line read a file the same way.
    `name` is what a refusal calls the picture, such as an uploaded file's name (by default: a
    path's file name, or "the upload" in the learner's language).
    """
    image_shape = _check_shape(image_shape)
    if digit is None:
        digit = image_shape == (28, 28, 1)
    pixels = _decode(source, image_shape, name)
    if image_shape[-1] == 1:
        grey = np.asarray(_flatten_alpha(pixels).convert("L"), dtype=np.uint8)
        if digit:  # MNIST's proportions: a 20-pixel box in 28, never more than 20 pixels
            box = min(MNIST_BOX, max(1, round(min(image_shape[:2]) * MNIST_BOX / 28)))
            return normalise_digit(grey, image_shape[:2], box)[..., None]
        return np.asarray(Image.fromarray(grey).resize(image_shape[1::-1], Image.BILINEAR))[..., None]
    rgb = _flatten_alpha(pixels).convert("RGB").resize(image_shape[1::-1], Image.BILINEAR)
    return np.asarray(rgb, dtype=np.uint8)


def normalise_digit(grey: np.ndarray, size: tuple[int, int] = (28, 28), box: int = 20) -> np.ndarray:
    """A digit as MNIST has it: white on black, fitted in a box x box square keeping its aspect
    ratio, its centre of mass at the centre of a `size` image.

    Dark ink on light paper is inverted first (the border tells which is the background).
    Raises a LabError (a ValueError) for an image with no ink at all.
    """
    try:
        if np.asarray(grey).dtype.kind not in "biuf":  # text, objects, complex numbers are not pixels
            raise TypeError
        grey = np.asarray(grey, dtype=np.float64)
    except (TypeError, ValueError):
        raise LabError("images.digit_pixels", type=type(grey).__name__) from None
    if grey.ndim != 2 or min(grey.shape) < 1:
        raise LabError("images.digit_shape", shape=str(grey.shape))
    if not np.isfinite(grey).all():
        raise LabError("images.digit_finite")
    size = _check_sides(size, "size")
    box = min(checks.whole(box, "box", 1), *size)
    background = np.median(np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]]))
    if background > 127:
        grey, background = 255 - grey, 255 - background
    grey = np.clip(grey - background, 0, 255)
    if grey.max() < 30:
        raise LabError("no_digit")
    rows, cols = np.nonzero(grey > 0.1 * grey.max())
    crop = grey[rows.min(): rows.max() + 1, cols.min(): cols.max() + 1]
    scale = box / max(crop.shape)
    fitted_size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    fitted = np.asarray(Image.fromarray((crop * 255 / crop.max()).astype(np.uint8)).resize(fitted_size, Image.LANCZOS),
                        dtype=np.float64)
    canvas = np.zeros(size, dtype=np.float64)
    top, left = (size[0] - fitted.shape[0]) // 2, (size[1] - fitted.shape[1]) // 2
    canvas[top: top + fitted.shape[0], left: left + fitted.shape[1]] = fitted
    return _centre_of_mass_shift(canvas)


def _centre_of_mass_shift(canvas: np.ndarray) -> np.ndarray:
    total = canvas.sum()
    if total <= 0:  # a stroke too thin to survive the fitting: nothing to centre
        return canvas.astype(np.uint8)
    ys, xs = np.indices(canvas.shape)
    cy, cx = (ys * canvas).sum() / total, (xs * canvas).sum() / total
    dy, dx = int(round((canvas.shape[0] - 1) / 2 - cy)), int(round((canvas.shape[1] - 1) / 2 - cx))
    shifted = np.zeros_like(canvas)
    src = canvas[max(0, -dy): canvas.shape[0] - max(0, dy), max(0, -dx): canvas.shape[1] - max(0, dx)]
    shifted[max(0, dy): max(0, dy) + src.shape[0], max(0, dx): max(0, dx) + src.shape[1]] = src
    return np.clip(shifted, 0, 255).astype(np.uint8)


def _check_sides(size, what: str) -> tuple[int, int]:
    """(height, width), each a whole number of pixels from 1 to MAX_SIDE."""
    sides = tuple(size) if isinstance(size, (tuple, list)) else None
    if sides is None or len(sides) != 2 or not all(checks.is_whole(d) and 1 <= d <= MAX_SIDE for d in sides):
        raise LabError("images.sides", what=what, most=str(MAX_SIDE), value=checks.shown(size))
    return int(sides[0]), int(sides[1])


def _check_shape(image_shape) -> tuple[int, int, int]:
    """The raw image a network takes: (height, width, 1 or 3 channels)."""
    shape = tuple(image_shape) if isinstance(image_shape, (tuple, list)) else None
    if shape is None or len(shape) != 3 or not checks.is_whole(shape[2]) or shape[2] not in (1, 3):
        raise LabError("images.image_shape", value=checks.shown(image_shape))
    return _check_sides(shape[:2], "image_shape[:2]") + (int(shape[2]),)


# What Pillow raises for a file that is not a picture it can decode, or is damaged.
_UNREADABLE = (OSError, ValueError, EOFError, SyntaxError, IndexError, KeyError, TypeError, struct.error, zlib.error)


def _decode(source, image_shape: tuple[int, int, int], name: str | None = None):
    """The picture's first frame, decoded once its header has passed the limits, at a scale no
    larger than the network's image needs (see _working_factor)."""
    data, name = _read(source, name)
    try:
        image = _open(data, name)
        factor = _working_factor(image.size, image_shape)
        if factor > 1 and image.format in ("JPEG", "MPO"):  # decoded at 1/2, 1/4 or 1/8 of its size, at most `factor`
            image.draft(None, (image.width // factor, image.height // factor))
        image.load()
    except LabError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError) + _UNREADABLE as error:
        raise LabError("image_unreadable", name=name, reason=_reason(error)) from None
    factor = _working_factor(image.size, image_shape)
    turn = _UPRIGHT.get(_orientation(image))
    image = _reducible(image).reduce(factor) if factor > 1 else _reducible(image)
    return image.transpose(turn) if turn is not None else image


# A phone stores a photo taken upright on its side, with an EXIF tag saying how to turn it
# (the table of ImageOps.exif_transpose).
_UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
            5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_90}


def _orientation(image) -> int | None:
    try:
        return image.getexif().get(0x0112)
    except _UNREADABLE:
        return None


def _read(source, name: str | None) -> tuple[bytes, str | Text]:
    """The file's bytes, and what to call it in a message: never an object's repr."""
    if name is not None and not isinstance(name, str):
        raise LabError("images.name", type=type(name).__name__)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, shown = bytes(source), Text("errors.the_upload")
    elif not isinstance(source, (str, os.PathLike)):
        raise LabError("images.source", type=type(source).__name__)
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"No such image file: {path}")
        size = path.stat().st_size
        if size > MAX_BYTES:  # before reading it: a file named .png may be gigabytes
            raise LabError("image_too_big", name=name or path.name, mb=f"{size / 2**20:.1f}",
                           limit=str(MAX_BYTES // 2**20))
        data, shown = path.read_bytes(), path.name
    if name and name.strip():
        shown = " ".join(name.split())[:100]
    if len(data) > MAX_BYTES:
        raise LabError("image_too_big", name=shown, mb=f"{len(data) / 2**20:.1f}", limit=str(MAX_BYTES // 2**20))
    if not data:
        raise LabError("image_empty", name=shown)
    return data, shown


def _open(data: bytes, name):
    """The picture with only its header read, refused if decoding it would cost more than the limits."""
    try:
        with warnings.catch_warnings():  # Pillow's own limit, far above MAX_PIXELS, is only a warning
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as bomb:
        claimed = re.search(r"\((\d+) pixels\)", str(bomb))
        raise LabError("image_pixels", name=name, size=f"{int(claimed[1]) if claimed else Image.MAX_IMAGE_PIXELS:,}",
                       limit=str(MAX_PIXELS // 1_000_000)) from None
    if image.format not in FORMATS:
        raise LabError("image_format", name=name, format=str(image.format))
    image.seek(0)  # the first frame only: an MPO's first picture is the photo itself, an animated PNG's the first
    if image.width * image.height > MAX_PIXELS:
        raise LabError("image_pixels", name=name, size=f"{image.width}x{image.height}",
                       limit=str(MAX_PIXELS // 1_000_000))
    bits = _bits_per_pixel(image)
    if image.width * image.height * bits // 8 > MAX_DECODED_BYTES:
        raise LabError("image_decoded", name=name, mb=f"{image.width * image.height * bits / 8 / 2**20:.0f}",
                       size=f"{image.width}x{image.height}", bits=str(bits), limit=f"{MAX_DECODED_BYTES / 2**20:.0f}",
                       megapixels=f"{MAX_DECODED_BYTES * 8 / bits / 1e6:.1f}")
    return image


def _bits_per_pixel(image) -> int:
    """What the decoder unpacks per pixel, or the mode it is then converted to for reducing
    (`_reducible`: a palette picture becomes RGB(A), 16-bit grey 32-bit), whichever is more. Pillow
    shows a 16-bit colour PNG as "RGB", like an 8-bit one; the raw mode of its tiles ("RGB;16B")
    tells that each channel takes two bytes."""
    deep = any(";16" in str(tile[3]) for tile in image.tile)
    decoded = len(image.getbands()) * (16 if deep else 8)
    converted = {"P": 32 if "transparency" in image.info else 24, "I;16": 32, "I;16B": 32, "I;16L": 32}
    return max(decoded, converted.get(image.mode, 0))


def _working_factor(size: tuple[int, int], image_shape: tuple[int, int, int]) -> int:
    """How many times smaller a (width, height) picture can be worked on: down to twice the
    network's image, whose resizing then averages as it would over the whole picture, and never
    below WORK_SIDE, where a digit photographed small on its page is still many pixels tall."""
    need_w, need_h = max(2 * image_shape[1], WORK_SIDE), max(2 * image_shape[0], WORK_SIDE)
    by_side = min(size[0] // need_w, size[1] // need_h)
    by_pixels = math.ceil(math.sqrt(size[0] * size[1] / WORK_PIXELS))  # a long, narrow strip has a short side
    return max(1, by_side, by_pixels)


def _reducible(image):
    """The picture in a mode Pillow's reduce() averages; palette, 1-bit and 16-bit modes have none."""
    if image.mode == "P":
        return image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode == "1":
        return image.convert("L")
    if image.mode.startswith("I;16"):  # 16-bit grey to 8: Pillow's own conversion clips at 255 instead of scaling
        return image.convert("I").point(lambda value: value / 257).convert("L")
    return image


_OBJECT_REPR = re.compile(r"<[^<>]*\bat 0x[0-9a-fA-F]+>")


def _reason(error: Exception):
    """Why a picture could not be read, in words: never an object's repr (Pillow names a file in
    memory by its address, <_io.BytesIO object at 0x...>)."""
    if isinstance(error, UnidentifiedImageError):
        return Text("errors.image_unknown")
    words = " ".join(_OBJECT_REPR.sub("", str(error)).split()).strip(" :")
    return words[:200] or type(error).__name__


def _flatten_alpha(image):
    """Transparent pixels become white paper, as a drawing on a page would be."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(paper, rgba)
    return image
