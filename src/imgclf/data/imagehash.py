"""Two keys per image for finding repeated images, computed on whole batches of imgclf's uint8 N×C×H×W form: an
exact key (a 128-bit hash of the decoded pixels) and a perceptual hash that survives re-encoding, rescaling, small
crops and colour shifts, made of two pHashes of the image's 32×32 grey thumbnail: each of its lowest-frequency DCT
coefficients as one bit, above or below their median — 143 bits from the 12×12 lowest frequencies (fine), 63 from the
8×8 (coarse). Two images are near-duplicates when their fine hashes differ in at most NEAR_BITS bits, or in at most
WIDE_BITS while their coarse ones differ in at most COARSE_BITS (a crop moves the finer frequencies first):
benchmarks/duplicates.py measures the choice, on generated copies and on CIFAR-10."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

HASH_VERSION = 1          # in every cached hashes part: a change to how hashes are made invalidates them
THUMB = 32                # the grey thumbnail's side
BLOCK, COARSE = 12, 8     # coefficients (u, v) with u, v < BLOCK (fine), < COARSE (coarse); the constant one left out
BITS, COARSE_BITS_N = BLOCK * BLOCK - 1, COARSE * COARSE - 1
FINE_WORDS = -(-BITS // 64)
WORDS = FINE_WORDS + 1    # uint64 words per perceptual hash: the fine hash's 3 (the top 49 bits 0), the coarse one's
NEAR_BITS = 28            # near-duplicates: at most this many of the 143 fine bits differ (about 1 in 5) ...
WIDE_BITS, COARSE_BITS = 32, 12   # ... or at most 32 of them, and at most 12 of the 63 coarse bits
GREY = (0.299, 0.587, 0.114)
CHUNK_VALUES = 1 << 24    # uint8 values per batch (16 MB; as float32 64 MB)
_EXACT_SEED = 0x1D0C5EED  # the exact key's multipliers: fixed, so that a cached key stays valid


@dataclass
class ImageHashes:
    """Per image: `exact` (N, 2) uint64 — equal for identical pixels — and `perceptual` (N, WORDS) uint64."""

    exact: np.ndarray
    perceptual: np.ndarray

    def __len__(self) -> int:
        return len(self.exact)

    def take(self, rows: np.ndarray) -> ImageHashes:
        return ImageHashes(self.exact[rows], self.perceptual[rows])

    @staticmethod
    def empty(n: int) -> ImageHashes:
        return ImageHashes(np.zeros((n, 2), np.uint64), np.zeros((n, WORDS), np.uint64))

    @staticmethod
    def concat(parts: list[ImageHashes]) -> ImageHashes:
        if not parts:
            return ImageHashes.empty(0)
        return ImageHashes(np.concatenate([p.exact for p in parts]), np.concatenate([p.perceptual for p in parts]))


def hash_images(images: torch.Tensor) -> ImageHashes:
    """Both keys of every image of a uint8 (N, C, H, W) tensor, in batches of about CHUNK_VALUES values (a
    memory-mapped split is read batch by batch, never copied whole)."""
    n = len(images)
    out = ImageHashes.empty(n)
    step = max(1, CHUNK_VALUES // max(1, math.prod(images.shape[1:])))
    for s in range(0, n, step):
        batch = images[s:s + step].cpu()        # a split already moved to a GPU is hashed on the CPU
        out.exact[s:s + len(batch)] = exact_keys(batch)
        out.perceptual[s:s + len(batch)] = perceptual_hashes(batch)
    return out


def exact_keys(images: torch.Tensor) -> np.ndarray:
    """(N, 2) uint64: two sums of each image's bytes, read as uint64 words, times fixed random odd multipliers
    (modulo 2**64). Identical pixels give identical keys; different pixels collide with negligible odds, and the
    duplicate finder compares the pixels of a matching pair before calling it exact."""
    flat = images.reshape(len(images), -1).numpy()
    pad = -flat.shape[1] % 8
    if pad:
        flat = np.pad(flat, ((0, 0), (0, pad)))
    words = np.ascontiguousarray(flat).view(np.uint64)
    return words @ _multipliers(words.shape[1])


@lru_cache(maxsize=8)
def _multipliers(n: int) -> np.ndarray:
    rng = np.random.default_rng(_EXACT_SEED)
    return rng.integers(0, np.iinfo(np.uint64).max, size=(n, 2), dtype=np.uint64, endpoint=True) | np.uint64(1)


def perceptual_hashes(images: torch.Tensor) -> np.ndarray:
    """(N, WORDS) uint64: the fine hash in the first FINE_WORDS words, bit b being whether the b-th lowest-frequency
    DCT coefficient (frequency_order) of the image's 32×32 grey thumbnail is above the median of the BITS; the coarse
    hash, the same for the 8×8 lowest frequencies, in the last word. The median makes them blind to brightness and
    contrast, the low frequencies to JPEG noise, resampling and a few pixels' shift."""
    grey = _grey(images)
    if grey.shape[-2:] != (THUMB, THUMB):
        grey = F.interpolate(grey, size=(THUMB, THUMB), mode="bilinear", antialias=True, align_corners=False)
    d = _dct(THUMB)[:BLOCK]
    block = d @ grey[:, 0] @ d.T
    fine = _median_bits(block.reshape(len(images), -1)[:, frequency_order(BLOCK)])
    coarse = _median_bits(block[:, :COARSE, :COARSE].reshape(len(images), -1)[:, frequency_order(COARSE)])
    return np.concatenate([_pack(fine, FINE_WORDS), _pack(coarse, 1)], axis=1)


def _median_bits(coef: torch.Tensor) -> np.ndarray:
    return (coef > coef.median(dim=1, keepdim=True).values).numpy()


def _pack(bits: np.ndarray, words: int) -> np.ndarray:
    padded = np.zeros((len(bits), words * 64), dtype=bool)
    padded[:, :bits.shape[1]] = bits
    return np.packbits(padded, axis=1, bitorder="little").view(np.uint64)


def _grey(images: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) float grey: one channel as it is, RGB weighted by GREY (channel by channel: 2.5× faster than a
    broadcast product and sum)."""
    if images.shape[1] < 3:
        return images[:, :1].float()
    grey = images[:, 0].float().mul_(GREY[0])
    grey.add_(images[:, 1].float(), alpha=GREY[1]).add_(images[:, 2].float(), alpha=GREY[2])
    return grey[:, None]


@lru_cache(maxsize=2)
def _dct(n: int) -> torch.Tensor:
    """The orthonormal DCT-II matrix (rows: frequencies)."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None]
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    d[0] /= math.sqrt(2.0)
    return d.float()


@lru_cache(maxsize=2)
def frequency_order(block: int = BLOCK) -> torch.Tensor:
    """The flat indices of the block×block coefficients but the constant one, lowest frequency (u + v) first."""
    uv = [(u, v) for u in range(block) for v in range(block) if u or v]
    return torch.tensor([u * block + v for u, v in sorted(uv, key=lambda p: (p[0] + p[1], p[0]))])


def popcount(x: np.ndarray) -> np.ndarray:
    """Set bits of each uint64 (uint8 counts); numpy before 2.0 has no bitwise_count: the SWAR sum instead."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x)
    m1, m2, m4 = np.uint64(0x5555555555555555), np.uint64(0x3333333333333333), np.uint64(0x0F0F0F0F0F0F0F0F)
    x = x - ((x >> np.uint64(1)) & m1)
    x = (x & m2) + ((x >> np.uint64(2)) & m2)
    x = (x + (x >> np.uint64(4))) & m4
    return ((x * np.uint64(0x0101010101010101)) >> np.uint64(56)).astype(np.uint8)


def distances(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fine, coarse) differing bits between rows of two (N, WORDS) perceptual hashes."""
    x = popcount(a ^ b)
    return x[:, :FINE_WORDS].sum(axis=1, dtype=np.int64), x[:, FINE_WORDS].astype(np.int64)


def is_near(fine: np.ndarray, coarse: np.ndarray) -> np.ndarray:
    """Whether hashes this many bits apart (distances) are near-duplicates."""
    return (fine <= NEAR_BITS) | ((fine <= WIDE_BITS) & (coarse <= COARSE_BITS))
