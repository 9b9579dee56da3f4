"""Images in and out for the vision models: read the ``image`` / ``image_b64`` inputs, decode PNG/JPEG/...
safely with Pillow, encode PNG answers.

Clients send ``image`` (raw encoded bytes: binary extension, tritonclient) or ``image_b64`` (base64 text, for
JSON/curl clients); exactly one of the two must be present (models with a tensor input such as ``pixels``
count it as a third choice). Decoding errors and oversized images are the client's fault (400), never a crash.
"""

from __future__ import annotations

import base64
import binascii
import io
import warnings

import numpy as np

from aiaas.errors import InvalidInput

MAX_PIXELS = 40_000_000  # larger images are refused before they are decoded (decompression bombs)


def encoded_images(inputs: dict[str, np.ndarray], others: tuple[str, ...] = ()) -> list[bytes] | None:
    """The encoded images of the request, one per row, or None when one of ``others`` was sent instead.

    Exactly one of ``image``, ``image_b64`` and ``others`` must be present."""
    given = [n for n in ("image", "image_b64", *others) if n in inputs]
    if len(given) != 1:
        choices = ", ".join(repr(n) for n in ("image", "image_b64", *others))
        raise InvalidInput(f"send exactly one of {choices}; got {given or 'none'}")
    name = given[0]
    if name in others:
        return None
    rows = [_as_bytes(v) for v in np.asarray(inputs[name], dtype=object).reshape(-1)]
    if name == "image_b64":
        try:
            rows = [base64.b64decode(r, validate=False) for r in rows]
        except (binascii.Error, ValueError) as e:
            raise InvalidInput(f"image_b64 is not valid base64: {e}") from None
    return rows


def _as_bytes(v: object) -> bytes:
    if isinstance(v, bytes):
        return v
    if isinstance(v, str):
        return v.encode()
    raise InvalidInput(f"image rows must be BYTES, got {type(v).__name__}")


def decode(data: bytes):  # -> PIL.Image.Image
    """Decode one encoded image (any format Pillow reads), applying its EXIF orientation."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not data:
        raise InvalidInput("empty image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            w, h = img.size
            if w * h > MAX_PIXELS:
                raise InvalidInput(f"image of {w}x{h} pixels is too large (limit {MAX_PIXELS} pixels)")
            img.load()
        return ImageOps.exif_transpose(img)
    except InvalidInput:
        raise
    except (
        UnidentifiedImageError,
        OSError,
        ValueError,
        SyntaxError,
        Image.DecompressionBombWarning,
        Image.DecompressionBombError,
    ) as e:
        raise InvalidInput(f"cannot decode the image ({type(e).__name__}: {e}); send PNG or JPEG bytes") from None


def flatten_alpha(img):  # PIL.Image -> PIL.Image in RGB or L
    """Transparent pixels become white: a cut-out product on a transparent canvas reads as one on paper."""
    from PIL import Image

    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    if img.mode not in ("RGB", "L"):
        return img.convert("RGB")
    return img


def gray(img) -> np.ndarray:
    """uint8 [H, W] grayscale of a decoded image."""
    return np.asarray(flatten_alpha(img).convert("L"), dtype=np.uint8)


def bgr(img) -> np.ndarray:
    """uint8 [H, W, 3] BGR (OpenCV's order) of a decoded image."""
    rgb = np.asarray(flatten_alpha(img).convert("RGB"), dtype=np.uint8)
    return np.ascontiguousarray(rgb[:, :, ::-1])


def png(pixels: np.ndarray) -> bytes:
    """PNG bytes of a uint8 [H, W] (grayscale) or [H, W, 3] (RGB) array."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8)).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def bytes_tensor(values: list[bytes] | list[str]) -> np.ndarray:
    """A 1-D BYTES tensor (numpy object array of bytes)."""
    out = np.empty(len(values), dtype=object)
    out[:] = [v.encode() if isinstance(v, str) else v for v in values]
    return out
