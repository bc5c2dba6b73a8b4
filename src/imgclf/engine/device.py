"""Where training runs and in which precision: device choice, autocast, channels_last, threads."""

from __future__ import annotations

import contextlib
import os
import warnings
from dataclasses import dataclass

import torch

from ..config import TrainConfig
from ..errors import ConfigError
from ..machine import bf16_units, cpu_description
from ..words import counted


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
    if dev.type == "cpu" and dev.index not in (None, 0):
        raise ConfigError(f"--device {name}: there is one CPU device (its cores are --threads); use --device cpu")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA GPU is visible to PyTorch here; use --device cpu or auto")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ConfigError(f"--device {name}: PyTorch sees {counted(torch.cuda.device_count(), 'GPU')} here, cuda:0 to "
                          f"cuda:{torch.cuda.device_count() - 1}")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("--device mps: Apple's MPS backend is not available here; use --device cpu or auto")
    return dev


@dataclass
class Precision:
    """How the forward/backward pass runs: autocast dtype (None = full fp32), grad scaling, memory format."""

    autocast_dtype: torch.dtype | None
    scaler: torch.amp.GradScaler  # enabled for fp16 only (bf16 and fp32 need no loss scaling): a no-op otherwise
    channels_last: bool
    reason: str = ""              # why this precision (the run header says it)

    @property
    def name(self) -> str:
        return precision_name(self.autocast_dtype)

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
    """'auto': on CUDA amp-bf16 (amp-fp16 where bf16 is unsupported); on a CPU amp-bf16 where it has native bf16
    (AVX512-BF16 or AMX: 1.1-2.1× the fp32 training img/s of our models on a Zen 4, benchmarks/RESULTS.md) and fp32
    where bf16 is emulated (a Zen 3: a bf16 matmul at 0.9 GFLOP/s against fp32's 107). Autocast leaves weights,
    BatchNorm statistics and the loss (computed on fp32 logits) in fp32. channels_last is on unless set (CPU:
    1.4-1.6× faster training and inference), except on MPS."""
    mode, reason = cfg.precision, "set by --precision"
    if mode == "auto":
        mode, reason = auto_precision(device)
    dtype = {"fp32": None, "amp-bf16": torch.bfloat16, "amp-fp16": torch.float16}[mode]
    if device.type == "cpu" and dtype is not None and not cpu_has_native_bf16():
        warnings.warn(f"--precision {mode}: this CPU ({torch.backends.cpu.get_cpu_capability()}) has no native "
                      "bf16/fp16 arithmetic, so training will be many times slower than fp32; use --precision fp32",
                      stacklevel=2)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    channels_last = cfg.channels_last if cfg.channels_last is not None else device.type in ("cuda", "cpu")
    return Precision(dtype, scaler, channels_last, reason)


def inference_dtype(setting: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype a trained model is evaluated in here, from its run's --precision `setting` (or yours):
    as the run tested where this device computes that precision natively ('auto' as a run here would pick), else
    fp32, never an emulated half precision (a Zen 3's bf16 is ~100× slower)."""
    if setting == "auto" and device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    dtype = {"auto": torch.bfloat16, "amp-bf16": torch.bfloat16, "amp-fp16": torch.float16}.get(setting)
    if dtype is None or device.type == "cuda":
        return dtype
    return dtype if device.type == "cpu" and dtype == torch.bfloat16 and cpu_has_native_bf16() else None


def precision_name(dtype: torch.dtype | None) -> str:
    """'fp32', 'amp-bf16' or 'amp-fp16': the --precision name of an autocast dtype."""
    return {None: "fp32", torch.bfloat16: "amp-bf16", torch.float16: "amp-fp16"}[dtype]


def auto_precision(device: torch.device) -> tuple[str, str]:
    """The precision `--precision auto` picks on this device, and why (one phrase for the run header)."""
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return "amp-bf16", "this GPU computes bf16 natively"
        return "amp-fp16", "this GPU has no bf16; fp16 with loss scaling"
    if device.type == "cpu":
        capability = torch.backends.cpu.get_cpu_capability()
        if cpu_has_native_bf16():
            units = bf16_units(cpu_description().get("flags") or ())
            return "amp-bf16", f"this CPU computes bf16 natively ({units or capability + ' with AVX512-BF16 or AMX'})"
        return "fp32", f"this CPU has no native bf16 ({capability}): bf16 would be emulated, many times slower"
    return "fp32", f"{device.type}: fp32"
