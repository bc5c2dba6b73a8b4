"""Where training runs and in which precision: device choice, autocast, channels_last, threads."""

from __future__ import annotations

import contextlib
import os
import warnings
from dataclasses import dataclass

import torch

from ..config import TrainConfig
from ..errors import ConfigError


def pick_device(name: str = "auto") -> torch.device:
    """'auto': cuda:LOCAL_RANK (or cuda:0) if available, then mps, else cpu; otherwise the named device, checked."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"--device {name!r} is not a device name (auto, cpu, cuda, cuda:1, mps)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA GPU is visible to PyTorch here; use --device cpu or auto")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("--device mps: Apple's MPS backend is not available here; use --device cpu or auto")
    return dev


@dataclass
class Precision:
    """How the forward/backward pass runs: autocast dtype (None = full fp32), grad scaling, memory format."""

    autocast_dtype: torch.dtype | None
    scaler: torch.amp.GradScaler  # enabled for fp16 only (bf16 and fp32 need no loss scaling): a no-op otherwise
    channels_last: bool

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=self.autocast_dtype)


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN can run bf16 in hardware here (AVX512-BF16 or AMX); without it bf16 is emulated."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def pick_precision(cfg: TrainConfig, device: torch.device) -> Precision:
    """'auto' is amp-bf16 (or fp16 where bf16 is unsupported) on CUDA and fp32 elsewhere: our 2-core CPUs (AMD
    Zen 3, AVX2 only) have no native bf16, so a bf16 matmul runs at 0.9 GFLOP/s against fp32's 107 and a bf16
    training step is ~10× slower. channels_last is on unless set (CPU: 1.4-1.6× faster training and inference,
    benchmarks/RESULTS.md), except on MPS."""
    mode = cfg.precision
    if mode == "auto":
        if device.type == "cuda":
            mode = "amp-bf16" if torch.cuda.is_bf16_supported() else "amp-fp16"
        else:
            mode = "fp32"
    dtype = {"fp32": None, "amp-bf16": torch.bfloat16, "amp-fp16": torch.float16}[mode]
    if device.type == "cpu" and dtype is not None and not cpu_has_native_bf16():
        warnings.warn(f"--precision {mode}: this CPU ({torch.backends.cpu.get_cpu_capability()}) has no native "
                      "bf16/fp16 arithmetic, so training will be many times slower than fp32; use --precision fp32",
                      stacklevel=2)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    channels_last = cfg.channels_last if cfg.channels_last is not None else device.type in ("cuda", "cpu")
    return Precision(dtype, scaler, channels_last)
