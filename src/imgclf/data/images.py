"""Decode one image file into a uint8 C×H×W array: the single place where Pillow touches user files."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from ..errors import DataError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff"}
# Refuse decompression bombs well before they exhaust memory: 40 megapixels is far above any
# image a small-image classifier needs, and Pillow's own limit would only warn below 2× its default.
MAX_PIXELS = 40_000_000
ImageFile.LOAD_TRUNCATED_IMAGES = False


def is_image_file(path: Path) -> bool:
    """True for the file endings we decode (case-insensitive), skipping hidden files."""
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def decode_image(path: str | Path, size: tuple[int, int] | None = None, mode: str | None = None) -> np.ndarray:
    """Read `path` as uint8 (C, H, W): grayscale stays 1 channel unless `mode` says 'RGB'; RGBA/palette
    become RGB over white; resized to `size` (H, W) only when given. Raises DataError naming the file."""
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise DataError(f"{path}: empty file (0 bytes)")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                if im.width * im.height > MAX_PIXELS:
                    raise DataError(f"{path}: {im.width}×{im.height} pixels is over the {MAX_PIXELS:,} pixel "
                                    "limit (a decompression bomb?); shrink the image first")
                im.seek(0)  # first frame of a GIF/animated WebP
                im = _to_mode(im, mode)
                if size is not None and (im.height, im.width) != tuple(size):
                    im = im.resize((size[1], size[0]), Image.Resampling.BILINEAR)
                arr = np.asarray(im, dtype=np.uint8)
    except DataError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise DataError(f"{path}: not a readable image ({e})") from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:  # truncated or corrupt data inside a real image
        raise DataError(f"{path}: broken image data ({e})") from None
    if arr.ndim == 2:
        arr = arr[None]
    else:
        arr = arr.transpose(2, 0, 1)
    return np.ascontiguousarray(arr)


def _to_mode(im: Image.Image, mode: str | None) -> Image.Image:
    """Convert to 'L' or 'RGB' (alpha composited on white), keeping grayscale unless `mode` forces RGB."""
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, rgba)
        gray = False
    else:
        gray = im.mode in ("L", "1", "I", "I;16", "F")
    target = mode or ("L" if gray else "RGB")
    if gray and target == "L" and im.mode in ("I", "I;16", "F"):
        arr = np.asarray(im, dtype=np.float64)
        hi = 65535.0 if arr.max(initial=0) > 255 else 255.0
        return Image.fromarray(np.clip(arr * (255.0 / hi), 0, 255).astype(np.uint8), "L")
    return im.convert(target)
