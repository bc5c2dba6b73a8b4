"""The machine a run is on: how many CPUs this process can have to itself (so that the default thread count fits a
busy machine), and what the CPU is.

PyTorch's default is one thread per core. With another CPU-bound job on the cores, every parallel region then
waits for a thread the scheduler has parked behind that job: a 2-core run went 10-30× slower than with one thread.
So the default is measured: the CPUs this process may use (affinity, a cgroup's CPU quota) less the CPU time other
processes took while this one started (from /proc/stat, less this process and its children). Linux only; elsewhere
the count is the usable CPUs. Imports nothing heavy: `mark()` runs before torch is imported.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

from .words import counted

MIN_WINDOW_S = 0.05    # a shorter window since mark() is sampled again for this long (jiffies are 10 ms)
MAX_AGE_S = 30.0       # an older mark (a notebook's import long ago) says nothing about now: sample afresh
ROUND_UP_FROM = 0.7    # 1.7 free CPUs give 2 threads; 1.6 give 1 (a parked thread costs far more than an idle core)


@dataclass(frozen=True)
class Sample:
    """Cumulative CPU time at one moment: the whole machine's busy and total jiffies, and this process tree's."""

    at: float
    busy: int
    total: int
    ours: int


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity, capped by a cgroup v2 CPU quota (a container's --cpus)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cpus


def _own_jiffies(children: bool = True) -> int:
    """user + system jiffies of this process (all its threads) and, with `children`, of its live children (decode
    workers, the plot painter)."""
    me, total = os.getpid(), 0
    for stat in [Path("/proc/self/stat"), *(Path("/proc").glob("[0-9]*/stat") if children else ())]:
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if stat.parent.name == "self":      # utime, stime, and the children's it has waited for (cutime, cstime)
            total += sum(int(v) for v in fields[11:15])
        elif int(fields[1]) == me:          # a live child (fields[1]: its parent's pid): utime, stime
            total += int(fields[11]) + int(fields[12])
    return total


def sample(children: bool = True) -> Sample | None:
    """The counters now, or None where /proc/stat is not there to read (`children`: see _own_jiffies)."""
    try:
        cpu = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = cpu[3] + (cpu[4] if len(cpu) > 4 else 0)               # idle, iowait
    total = sum(cpu[:8])                                           # guest time is already in user
    return Sample(time.monotonic(), total - idle, total, _own_jiffies(children))


_MARK: Sample | None = None


def mark() -> None:
    """Start the window over which other processes' CPU use is measured (imgclf's import does this)."""
    global _MARK
    _MARK = sample(children=False)   # a process starting has none yet; reading every /proc entry costs ~5 ms


def others_busy(since: Sample | None = None) -> float | None:
    """CPUs' worth of work done by other processes since `since` (any age: the caller's window; default: the mark, or
    a fresh short window when the mark is missing or old), or None where it cannot be measured."""
    start = since or _MARK
    if start is None or (since is None and time.monotonic() - start.at > MAX_AGE_S):
        start = sample()
    if start is None:
        return None
    if time.monotonic() - start.at < MIN_WINDOW_S:
        time.sleep(MIN_WINDOW_S - (time.monotonic() - start.at))
    end = sample()
    if end is None or end.total <= start.total:
        return None
    cpus = os.cpu_count() or 1
    busy_share = (end.busy - start.busy) / (end.total - start.total)   # of all the machine's CPUs
    ours = (end.ours - start.ours) / (end.total - start.total) * cpus
    return max(0.0, busy_share * cpus - ours)


def omp_threads() -> int | None:
    """The thread count OMP_NUM_THREADS sets (by you, or by torchrun: 1 per process), or None where it sets none."""
    omp = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    return int(omp) if omp.isdigit() and int(omp) > 0 else None


def choose_threads(others: float | str | None = "measure", cpus: int | None = None, all_cpus: int | None = None
                   ) -> tuple[int, str]:
    """The thread count for a run that was given none, and why (a phrase for the run header): the usable CPUs less
    what other processes keep busy (`others`: measured by others_busy unless given; None: unknown), rounded down
    unless nearly a whole CPU is free, at least 1. `cpus`: usable by this process; `all_cpus`: the machine's."""
    cpus = usable_cpus() if cpus is None else cpus
    omp = omp_threads()
    if omp:
        return min(cpus, omp), f"OMP_NUM_THREADS={omp}"
    if others == "measure":
        others = others_busy()
    if not isinstance(others, float | int):
        return cpus, counted(cpus, "usable CPU")
    free = min(cpus, (all_cpus or os.cpu_count() or cpus) - others)
    threads = max(1, min(cpus, math.floor(free + 1 - ROUND_UP_FROM)))
    if threads == cpus:
        return threads, f"{counted(cpus, 'usable CPU')}, {free:.1f} free"
    return threads, f"{free:.1f} of {counted(cpus, 'CPU')} free: other processes keep {others:.1f} busy"


# the CPU features that decide how fast training runs, as /proc/cpuinfo names them (in this order in the record)
SPEED_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16",
               "amx_int8")


def cpu_description() -> dict[str, object]:
    """The CPU's model name and the speed-deciding features it reports (SPEED_FLAGS; ARM's from `Features`), so
    figures from different machines can be told apart; what cannot be read is left out."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        import platform
        return {"model": platform.processor() or platform.machine()}
    fields: dict[str, str] = {}
    for line in info.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
        if not line.strip() and fields:
            break   # the first processor's block is enough
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    model = fields.get("model name") or fields.get("Model") or fields.get("CPU part") or "unknown"
    return {"model": model, "flags": [f for f in SPEED_FLAGS if f in flags] or sorted(flags)[:12]}


def bf16_units(flags: list[str] | tuple[str, ...]) -> str | None:
    """Which bf16 hardware the flags name (AMX over AVX512-BF16), or None."""
    if "amx_bf16" in flags:
        return "AMX-BF16"
    if "avx512_bf16" in flags:
        return "AVX512-BF16"
    return None


_RATES: dict[int, dict[str, float | None]] = {}


def matmul_rates(native_bf16: bool, n: int = 512, reps: int = 3) -> dict[str, float | None]:
    """GFLOP/s of an n×n matmul in fp32 and (where the CPU has native bf16; emulated it would take seconds) bf16, on
    this process's threads: what a step's arithmetic costs here, recorded so runs on two machines compare honestly.
    Measured once per thread count (~20 ms)."""
    import torch

    threads = torch.get_num_threads()
    if threads not in _RATES:
        def rate(dtype: torch.dtype) -> float:
            a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
            a @ b   # warm-up: the kernel's first call allocates
            t0 = time.perf_counter()
            for _ in range(reps):
                a @ b
            return round(2 * n ** 3 * reps / max(time.perf_counter() - t0, 1e-9) / 1e9, 1)
        _RATES[threads] = {"fp32": rate(torch.float32), "bf16": rate(torch.bfloat16) if native_bf16 else None}
    return dict(_RATES[threads])
