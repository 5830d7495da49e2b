"""Request bodies -> the uint8 28x28 images the model sees, through `to_mnist` like `digitlab predict`.

Image files are checked against the pixel limits from their headers before anything is decoded, so a small
file claiming a huge picture (a decompression bomb) costs nothing. These functions run in worker threads; a
bad input raises ApiError (400) naming the file.
"""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from PIL import Image, ImageOps

from digitlab.data.images import open_image, to_mnist
from digitlab.errors import DigitlabError
from digitlab.serve.errors import ApiError
from digitlab.serve.limits import MAX_IMAGE_PIXELS, MAX_REQUEST_PIXELS

log = logging.getLogger("digitlab.serve")


def image_pixels(data: bytes, name: str) -> int:
    """The image's pixel count from its header, refusing more than MAX_IMAGE_PIXELS before decoding."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:
                width, height = probe.size
    except Exception:  # not decodable: open_image says why, in the one place that does
        return 0
    if width * height > MAX_IMAGE_PIXELS:
        raise ApiError(400, f"{name}: {width}x{height} pixels is too large for the API "
                            f"(at most {MAX_IMAGE_PIXELS:,} pixels, e.g. 4096x4096)")
    return width * height


@contextmanager
def client_image(name: str) -> Iterator[None]:
    """Whatever goes wrong decoding or preparing the client's image `name` is a 400 naming it."""
    try:
        yield
    except DigitlabError as exc:
        raise ApiError(400, str(exc).replace("image:", f"{name}:", 1)) from None
    except (MemoryError, RecursionError, ApiError):
        raise
    except Exception as exc:  # a file Pillow half-understands may raise nearly anything; still bad input
        log.warning("could not process %s: %r", name, exc)
        raise ApiError(400, f"{name}: could not process this image ({type(exc).__name__})") from None


def decode_image(data: bytes, name: str) -> np.ndarray:
    """Image bytes -> the (28, 28) uint8 the model sees; anything undecodable is the client's problem."""
    with client_image(name):
        return to_mnist(open_image(data))


def open_picture(data: bytes, name: str) -> Image.Image:
    """Image bytes -> the decoded picture, upright (its EXIF orientation applied), within the pixel limit."""
    if not data:
        raise ApiError(400, f"{name}: empty file")
    image_pixels(data, name)
    with client_image(name):
        return ImageOps.exif_transpose(open_image(data))


def decode_files(files: list[tuple[str, bytes]]) -> np.ndarray:
    """(name, bytes) of each image -> uint8 (N, 28, 28). Every file's size is checked first (cheap), then they
    are decoded: a bad last file costs no decoding."""
    total = 0
    for name, data in files:
        if not data:
            raise ApiError(400, f"{name}: empty file")
        total += image_pixels(data, name)
    if total > MAX_REQUEST_PIXELS:
        raise ApiError(400, f"the images hold {total:,} pixels together, more than the {MAX_REQUEST_PIXELS:,} "
                            "one request may; send fewer or smaller images")
    return np.stack([decode_image(data, name) for name, data in files])


def decode_pixels(images: list[list[float]]) -> np.ndarray:
    """JSON pixels, 784 values 0..255 per image (validated already) -> uint8 (N, 28, 28)."""
    # Scaled to [0, 1] here so to_mnist never guesses the range: a faint 0..1-valued 0..255 image stays faint.
    # Already 28x28, to_mnist only fixes the polarity (a light border is inverted): no crop, no re-centring.
    return np.stack([to_mnist(np.asarray(values, dtype=np.float32).reshape(28, 28) / 255.0) for values in images])


def pixels_picture(values: list[float], width: int, height: int) -> np.ndarray:
    """JSON pixels (validated already: width x height values 0..255) -> float (height, width) in [0, 1]."""
    return np.asarray(values, dtype=np.float32).reshape(height, width) / 255.0


def picture_input(picture: Image.Image | np.ndarray) -> np.ndarray:
    """A whole picture of one digit -> its (28, 28) input, exactly as /api/predict prepares it."""
    with client_image("picture"):
        return to_mnist(picture)


def digit_inputs(picture: Image.Image | np.ndarray, boxes: list[list[int]]) -> list[np.ndarray]:
    """The (28, 28) input of each digit of a number, from its box [x0, y0, x1, y1] in the picture.

    The ink is found on the whole picture (polarity, uneven light), then each box's ink is shrunk to about
    MNIST's resolution and padded with black before `to_mnist`: a crop tight around a stroke would otherwise
    look like ink on every border, and `to_mnist` would take it for paper.
    """
    from digitlab.data.images import _ink_on_black, _to_gray

    with client_image("picture"):
        gray = _to_gray(picture) if isinstance(picture, Image.Image) else picture
        ink = _ink_on_black(gray)
    height, width = ink.shape
    inputs = []
    for k, (x0, y0, x1, y1) in enumerate(boxes):
        if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
            raise ApiError(422, f"digits[{k}].box: {[x0, y0, x1, y1]} is not a box inside the {width}x{height} "
                                "picture ([x0, y0, x1, y1], end exclusive)")
        crop = ink[y0:y1, x0:x1]
        longer = max(crop.shape)
        if longer > DIGIT_SIDE:
            size = (max(round(crop.shape[1] * DIGIT_SIDE / longer), 1),
                    max(round(crop.shape[0] * DIGIT_SIDE / longer), 1))
            crop = np.asarray(Image.fromarray(crop, mode="F").resize(size, Image.Resampling.BOX))
        crop = np.pad(crop, DIGIT_PAD)
        if crop.shape == (28, 28):  # to_mnist takes a 28x28 array as MNIST-ready; this one is not
            crop = np.pad(crop, ((0, 1), (0, 0)))
        with client_image("picture"):
            inputs.append(to_mnist(crop))
    return inputs


# A digit's ink is shrunk to at most DIGIT_SIDE px and padded by DIGIT_PAD before to_mnist: about MNIST's own
# digit size, inside a margin of black wide enough that to_mnist takes the margin, not the ink, for paper.
DIGIT_SIDE, DIGIT_PAD = 18, 6


def picture_png(picture: Image.Image | np.ndarray) -> bytes:
    """The picture as a PNG to keep: a file of our making, whatever format and metadata the client sent."""
    if isinstance(picture, np.ndarray):
        image = Image.fromarray(np.clip(np.rint(picture * 255), 0, 255).astype(np.uint8), mode="L")
    elif picture.mode in ("1", "L", "LA", "P", "RGB", "RGBA", "I;16"):
        image = picture
    else:
        image = picture.convert("RGBA" if "A" in picture.mode else "RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
