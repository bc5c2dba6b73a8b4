"""Image files: which files are images (one walker for train, show and predict), decoding one into a uint8
C×H×W array (the single place where Pillow touches user files), and the one resizer every source goes through."""

from __future__ import annotations

import contextlib
import errno
import io
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from ..errors import DataError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff"}
# Refuse decompression bombs well before they exhaust memory: 40 megapixels is far above any
# image a small-image classifier needs, and Pillow's own limit would only warn below 2× its default.
MAX_PIXELS = 40_000_000
ImageFile.LOAD_TRUNCATED_IMAGES = False


@dataclass(frozen=True)
class EncodedImage:
    """An image file's bytes held where no file of its own is (a row of a Hugging Face dataset), with the name that
    messages give it: decode_image, image_dims and image_header read it as they read a file."""

    name: str
    data: bytes

    def __str__(self) -> str:
        return self.name


ImageSource = str | Path | EncodedImage


def _open(source: ImageSource) -> Image.Image:
    """Pillow's image of a file or of an EncodedImage's bytes (lazy: the header only, until its pixels are asked)."""
    return Image.open(io.BytesIO(source.data) if isinstance(source, EncodedImage) else source)


def is_image_file(path: str | Path) -> bool:
    """True for the file endings we decode (case-insensitive), skipping hidden files (names starting with '.')."""
    return _is_image_name(os.path.basename(path))


def _is_image_name(name: str) -> bool:
    """is_image_file for a bare name, without os.path's splitext: the walker asks it per file on every start."""
    dot = name.rfind(".")
    return dot > 0 and not name.startswith(".") and name[dot:].lower() in IMAGE_EXTENSIONS


def walk_images(folder: str | Path, strict: bool = False) -> list[tuple[str, os.stat_result]]:
    """(path, stat) of every image file below `folder`, sorted by path; hidden files and folders are skipped. A
    symbolic link that loops (ELOOP) or a folder that leads back to one above it is skipped with a warning naming
    it, and a folder reached twice by other links is walked once, so no image is listed twice (or under another
    class). One stat per file: this runs on every start to validate the folder cache (60,000 files in ~0.4 s),
    so it uses os.scandir rather than pathlib. An image name that is no regular file (a FIFO, device or socket:
    reading one could block) is skipped with a warning, or with `strict` (--strict-images) is an error."""
    out: list[tuple[str, os.stat_result]] = []
    stack: list[tuple[str, frozenset]] = [(str(folder), _ancestors(folder))]
    seen: set[tuple[int, int]] = set()
    while stack:
        top, above = stack.pop()
        try:
            st = os.stat(top)
        except OSError as e:
            _warn_skipped(top, e)
            continue
        ident = (st.st_dev, st.st_ino)
        if ident in above:
            warnings.warn(f"skipped {top}: a symbolic link back to itself or a folder above it (a directory loop)",
                          stacklevel=2)
            continue
        if ident in seen:
            continue
        seen.add(ident)
        subdirs = _scan(top, out, strict)
        stack.extend((d, above | {ident}) for d in sorted(subdirs, reverse=True))   # popped in name order
    out.sort(key=lambda t: t[0])
    return out


def _ancestors(folder: str | Path) -> frozenset:
    """(device, inode) of every folder above `folder`, by its path as given and by its real path."""
    out = set()
    for base in (Path(os.path.abspath(folder)), Path(folder).resolve()):
        for p in base.parents:
            with contextlib.suppress(OSError):
                st = os.stat(p)
                out.add((st.st_dev, st.st_ino))
    return frozenset(out)


def _scan(top: str, out: list[tuple[str, os.stat_result]], strict: bool = False) -> list[str]:
    """Append `top`'s image files to `out`; return its sub-folders. An entry that cannot be followed is warned."""
    subdirs: list[str] = []
    try:
        with os.scandir(top) as it:
            for e in it:
                if e.name.startswith("."):
                    continue
                try:
                    if e.is_dir():
                        subdirs.append(e.path)
                    elif _is_image_name(e.name) and e.is_file():
                        out.append((e.path, e.stat()))
                    elif _is_image_name(e.name) and os.path.exists(e.path):   # never opened: a read could block
                        if strict:
                            raise DataError(f"{e.path}: not a regular file (a FIFO, device or socket), named like "
                                            "an image (drop --strict-images to skip it)")
                        warnings.warn(f"skipped {e.path}: not a regular file (a FIFO, device or socket)",
                                      stacklevel=3)
                except OSError as err:
                    _warn_skipped(e.path, err)
    except OSError as err:
        _warn_skipped(top, err)
    return subdirs


def _warn_skipped(path: str, e: OSError) -> None:
    why = "a symbolic link that loops (ELOOP)" if e.errno == errno.ELOOP else (e.strerror or str(e))
    warnings.warn(f"skipped {path}: {why}", stacklevel=3)


def resize_images(images: torch.Tensor, size: tuple[int, int], chunk: int = 4096) -> torch.Tensor:
    """Resize uint8 (N, C, H, W) images to `size` (H, W): bilinear with antialiasing (PIL's filter), in chunks to
    bound memory. Named datasets, image folders and predict all resize here, so an image gets the same pixels
    whichever way it comes in."""
    size = (int(size[0]), int(size[1]))
    if tuple(images.shape[2:]) == size:
        return images
    if size[1] == 1 and size[0] != 1:
        # torch's antialiased CPU kernel (2.13) gets an output one pixel wide wrong (its height pass gives a constant
        # or scrambled column), one pixel high right: a padded strip resizes transposed
        return resize_images(images.transpose(2, 3), (1, size[0]), chunk).transpose(2, 3).contiguous()
    out = torch.empty((len(images), images.shape[1], *size), dtype=torch.uint8)
    for i in range(0, len(images), chunk):
        x = images[i:i + chunk].float()
        y = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
        out[i:i + chunk] = y.round_().clamp_(0, 255).to(torch.uint8)
    return out


FITS = ("crop", "squash", "pad")
LARGE_INTERMEDIATE = 8   # a crop whose scaled image would hold more than this many outputs' pixels cuts first


def fit_image(image: torch.Tensor, size: tuple[int, int], fit: str = "crop") -> torch.Tensor:
    """One uint8 (C, H, W) image to `size` (H, W): 'crop' scales the shorter side to fit and cuts the centre
    (aspect ratio kept), 'squash' scales each side on its own, 'pad' scales the longer side to fit and pads with
    black. All through resize_images."""
    (h, w), (th, tw) = image.shape[1:], size
    if fit == "squash" or (h, w) == (th, tw):
        return resize_images(image[None], size)[0]
    scale = max(th / h, tw / w) if fit == "crop" else min(th / h, tw / w)
    nh, nw = (max(th, round(h * scale)), max(tw, round(w * scale))) if fit == "crop" else \
        (min(th, max(1, round(h * scale))), min(tw, max(1, round(w * scale))))
    if fit == "crop" and nh * nw > LARGE_INTERMEDIATE * th * tw:
        return _crop_first(image, size, scale, (nh, nw))
    scaled = resize_images(image[None], (nh, nw))[0]
    if fit == "crop":
        top, left = (nh - th) // 2, (nw - tw) // 2
        return scaled[:, top:top + th, left:left + tw].contiguous()
    out = torch.zeros((image.shape[0], th, tw), dtype=torch.uint8)
    top, left = (th - nh) // 2, (tw - nw) // 2
    out[:, top:top + nh, left:left + nw] = scaled
    return out


def _crop_first(image: torch.Tensor, size: tuple[int, int], scale: float, scaled: tuple[int, int]) -> torch.Tensor:
    """fit_image's crop for an image of extreme aspect (a 1×100,000 strip): cut the part of the source the centre
    crop shows (and 2 pixels around it for the filter), then scale, so the work is bounded by the output, not by the
    image scaled whole (64 × 6.4 million pixels for that strip)."""
    (h, w), (th, tw), (nh, nw) = image.shape[1:], size, scaled
    top, left = (nh - th) // 2, (nw - tw) // 2
    r0, c0 = max(0, math.floor(top / scale) - 2), max(0, math.floor(left / scale) - 2)
    r1, c1 = min(h, math.ceil((top + th) / scale) + 2), min(w, math.ceil((left + tw) / scale) + 2)
    part = resize_images(image[None, :, r0:r1, c0:c1], (max(th, round((r1 - r0) * scale)),
                                                        max(tw, round((c1 - c0) * scale))))[0]
    t = min(max(0, top - round(r0 * scale)), part.shape[1] - th)
    s = min(max(0, left - round(c0 * scale)), part.shape[2] - tw)
    return part[:, t:t + th, s:s + tw].contiguous()


EXIF_ORIENTATION = 0x0112   # the EXIF tag ImageOps.exif_transpose follows


def image_dims(path: ImageSource) -> tuple[int, int] | None:
    """(width, height) as decode_image gives the image, upright (an EXIF orientation of 5-8 turns it a quarter, so
    the two swap), from the file's header alone (no decode), or None."""
    try:
        with _open(path) as im:
            w, h = im.size
            return (h, w) if im.getexif().get(EXIF_ORIENTATION) in (5, 6, 7, 8) else (w, h)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


def image_header(path: ImageSource) -> tuple[int, int, str, str] | None:
    """(width, height) upright as image_dims gives them, the mode ('P' with a transparent colour as 'PA': it
    decodes over white like RGBA) and the format Pillow finds in the file's bytes (whatever its name says), from
    the header alone; None when the file is not an image Pillow can open."""
    try:
        with _open(path) as im:
            w, h = im.size
            turned = im.getexif().get(EXIF_ORIENTATION) in (5, 6, 7, 8)
            mode = "PA" if im.mode == "P" and "transparency" in im.info else im.mode
            return (h, w, mode, im.format or "") if turned else (w, h, mode, im.format or "")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


DRAFT_MARGIN = 2   # a JPEG decodes reduced (Image.draft) to no less than this many times the size `fit` needs


def _draft(im: Image.Image, size: tuple[int, int], fit: str) -> None:
    """Let the JPEG decoder shrink a large photo by 2/4/8 while decoding, to no less than twice what `fit` needs:
    a 12-megapixel photo decodes ~10× faster and the antialiased resize after it loses nothing visible."""
    if im.format != "JPEG":
        return
    w, h = im.size
    ratios = (size[0] / h, size[1] / w)
    k = DRAFT_MARGIN * (min(ratios) if fit == "pad" else max(ratios))
    if k < 1:
        im.draft(im.mode, (max(1, int(w * k)), max(1, int(h * k))))


def decode_image(path: ImageSource, size: tuple[int, int] | None = None, mode: str | None = None,
                 fit: str = "crop") -> np.ndarray:
    """Read `path` (a file, or an EncodedImage's bytes) as uint8 (C, H, W), turned upright by its EXIF orientation:
    grayscale stays 1 channel unless `mode` says 'RGB'; RGBA/palette become RGB over white; fitted to `size` (H, W)
    by `fit` (see fit_image) only when given. Raises DataError naming the file."""
    path = path if isinstance(path, EncodedImage) else Path(path)
    try:
        if (len(path.data) if isinstance(path, EncodedImage) else path.stat().st_size) == 0:
            raise DataError(f"{path}: empty file (0 bytes)")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with _open(path) as im:
                if im.width * im.height > MAX_PIXELS:
                    raise DataError(f"{path}: {im.width}×{im.height} pixels is over the {MAX_PIXELS:,} pixel "
                                    "limit (a decompression bomb?); shrink the image first")
                im.seek(0)  # first frame of a GIF/animated WebP
                if size is not None:
                    _draft(im, size, fit)
                arr = image_to_array(ImageOps.exif_transpose(im), mode)
    except DataError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise DataError(f"{path}: not a readable image ({e})") from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:  # truncated or corrupt data inside a real image
        raise DataError(f"{path}: broken image data ({e})") from None
    if size is not None and arr.shape[1:] != tuple(size):
        arr = fit_image(torch.from_numpy(arr), size, fit).numpy()
    return arr


def image_to_array(im: Image.Image, mode: str | None = None) -> np.ndarray:
    """A decoded image as uint8 (C, H, W), converted as `decode_image` converts files (see `_to_mode`): the one
    conversion for image files and for images handed to predict in memory."""
    arr = np.array(_to_mode(im, mode), dtype=np.uint8)  # a writable copy (torch refuses read-only arrays)
    return np.ascontiguousarray(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1))


# Modes with an alpha channel (a palette image 'P' with a transparent colour too): composited over this colour.
ALPHA_MODES, ALPHA_BACKGROUND = ("RGBA", "LA", "PA"), (255, 255, 255)
# Full scale of the high-bit-depth grayscale modes, by what the file declares (never by an image's own maximum:
# one bright pixel would darken all the others): 16-bit PNG and TIFF integers, float TIFF in [0, 1].
FULL_SCALE = {"I;16": 65535.0, "I;16B": 65535.0, "I;16L": 65535.0, "I;16N": 65535.0, "I": 65535.0, "F": 1.0}


def _to_mode(im: Image.Image, mode: str | None) -> Image.Image:
    """Convert to 'L' or 'RGB' (alpha composited on white), keeping grayscale unless `mode` forces RGB; a high-bit-
    depth grayscale image is first scaled to 8 bits by its mode's FULL_SCALE (Pillow's own conversion clips it)."""
    if im.mode in FULL_SCALE:
        arr = np.asarray(im, dtype=np.float64)
        im = Image.fromarray(np.clip(np.rint(arr * (255.0 / FULL_SCALE[im.mode])), 0, 255).astype(np.uint8), "L")
    if im.mode in ALPHA_MODES or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (*ALPHA_BACKGROUND, 255))
        im = Image.alpha_composite(bg, rgba)
        gray = False
    else:
        gray = im.mode in ("L", "1")
    return im.convert(mode or ("L" if gray else "RGB"))


FIT_STEPS = {
    "squash": "resize to (H, W), each side scaled on its own",
    "crop": "s = max(H/h, W/w); resize to (nh, nw) = (max(H, round(h*s)), max(W, round(w*s))); keep rows top = "
            "(nh-H)//2 to top+H and columns left = (nw-W)//2 to left+W. If nh*nw > crop_first_above*H*W, only the "
            "part shown is resized: rows r0 = max(0, floor(top/s) - 2) to r1 = min(h, ceil((top+H)/s) + 2), columns "
            "c0 to c1 likewise, to (max(H, round((r1-r0)*s)), max(W, round((c1-c0)*s))), then rows from "
            "min(max(0, top - round(r0*s)), its height - H) and columns likewise",
    "pad": "s = min(H/h, W/w); resize to (nh, nw) = (min(H, max(1, round(h*s))), min(W, max(1, round(w*s)))); "
           "paste at ((H-nh)//2, (W-nw)//2) on an H×W image of pad_value",
}


def decoding_contract(channels: int, size: tuple[int, int], fit: str) -> dict[str, Any]:
    """What decode_image does to an image file for a model of `channels` at `size` (H, W) with `fit`, as data (the
    exported model's sidecar): enough for code outside imgclf to give the model the very same pixels."""
    h, w = int(size[0]), int(size[1])
    mode = "L" if channels == 1 else "RGB"
    return {
        "decode": {
            "library": "Pillow", "frame": 0, "max_pixels": MAX_PIXELS,
            "jpeg_draft_margin": DRAFT_MARGIN, "exif_transpose": True,
            "high_bit_depth_full_scale": dict(FULL_SCALE), "alpha_modes": list(ALPHA_MODES),
            "palette_transparency_is_alpha": True, "alpha_background": list(ALPHA_BACKGROUND), "channels": mode,
            "steps": [
                "Image.open; the first frame of an animation; more than max_pixels pixels is refused",
                "a JPEG stored w×h: k = jpeg_draft_margin * (min if resize.mode is pad else max)(H/h, W/w); if k < 1, "
                "Image.draft(its mode, (max(1, int(w*k)), max(1, int(h*k)))) before decoding",
                "ImageOps.exif_transpose (turned upright by its EXIF orientation)",
                "a mode of high_bit_depth_full_scale: v → clip(rint(v*255/full_scale), 0, 255) as mode L",
                "a mode of alpha_modes, or P with info['transparency']: Image.alpha_composite over an opaque "
                "alpha_background",
                f"Image.convert({mode!r})",
                "resize (see resize): none if already H×W",
            ],
        },
        "resize": {
            "mode": fit, "size": [h, w], "filter": "bilinear", "antialias": True, "align_corners": False,
            "arithmetic": "torch.nn.functional.interpolate(mode='bilinear', antialias=True, align_corners=False) on "
                          "float32 pixels, rounded half to even, clipped to 0..255: the triangle filter of PIL's "
                          "BILINEAR resample, widened by the shrink factor, without PIL's rounding to 8 bits between "
                          "its two passes",
            "steps": FIT_STEPS[fit], "round": "Python's round(): half to even",
            "crop_first_above": LARGE_INTERMEDIATE, "pad_value": 0,
        },
    }
