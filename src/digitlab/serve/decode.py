"""Request bodies -> the uint8 28x28 images the model sees, through `to_mnist` like `digitlab predict`.

Image files are checked against the pixel limits from their headers before anything is decoded, so a small
file claiming a huge picture (a decompression bomb) costs nothing. These functions run in the runner's worker
threads; a bad input raises ApiError (400) naming the file.
"""

from __future__ import annotations

import io
import logging
import warnings

import numpy as np
from PIL import Image

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


def decode_image(data: bytes, name: str) -> np.ndarray:
    """Image bytes -> the (28, 28) uint8 the model sees; anything undecodable is the client's problem."""
    try:
        return to_mnist(open_image(data))
    except DigitlabError as exc:
        raise ApiError(400, str(exc).replace("image:", f"{name}:", 1)) from None
    except (MemoryError, RecursionError):
        raise
    except Exception as exc:  # a file Pillow half-understands may raise nearly anything; still bad input
        log.warning("could not process %s: %r", name, exc)
        raise ApiError(400, f"{name}: could not process this image ({type(exc).__name__})") from None


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
