"""The default thread count fits the machine as it is: fewer threads where other processes keep CPUs busy, this
process's own work (and its children's) never counted against it, OMP_NUM_THREADS (torchrun's) respected."""

import os
import subprocess
import sys
import time

import pytest

from imgclf import machine

SPIN = "import time\nt = time.perf_counter()\nwhile time.perf_counter() - t < {s}: pass\n"


@pytest.mark.parametrize("others, cpus, all_cpus, threads", [
    (0.0, 2, 2, 2), (0.2, 2, 2, 2), (0.3, 2, 2, 2),   # background noise: every CPU
    (0.5, 2, 2, 1), (1.1, 2, 2, 1), (4.0, 2, 2, 1),   # a job on a core: one thread, never none
    (3.0, 4, 8, 4),                                    # busy CPUs elsewhere on a bigger machine leave ours free
    (6.5, 4, 8, 1), (0.0, 1, 1, 1),
])
def test_threads_are_the_free_cpus(monkeypatch, others, cpus, all_cpus, threads):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    got, why = machine.choose_threads(others, cpus, all_cpus)
    assert got == threads
    assert ("busy" in why) == (threads < cpus)


def test_omp_num_threads_wins_and_unknown_load_means_every_cpu(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert machine.choose_threads(0.0, 2, 2) == (1, "OMP_NUM_THREADS=1")
    monkeypatch.setenv("OMP_NUM_THREADS", "")
    assert machine.choose_threads(None, 3, 3) == (3, "3 usable CPUs")


@pytest.mark.slow
def _spinner(marker, seconds: float) -> str:
    """A Python program that creates `marker` and then keeps a CPU busy for `seconds`."""
    return f"open({str(marker)!r}, 'w').close()\n" + SPIN.format(s=seconds)


def _wait_for(marker) -> None:
    deadline = time.monotonic() + 60    # a safety net for a child that never starts, not a timing window
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_this_process_and_its_children_are_ours_and_another_process_is_not(tmp_path):
    """Measured once the spinners are spinning (they say so with a file), over windows far longer than a jiffy."""
    start = machine.sample()
    if start is None:
        pytest.skip("no /proc/stat here")
    child = subprocess.Popen([sys.executable, "-c", _spinner(tmp_path / "child", 3.0)])
    _wait_for(tmp_path / "child")
    begun = machine.sample()
    time.sleep(0.5)
    mid = machine.sample()
    child.kill()
    child.wait()
    assert mid.ours - begun.ours >= 5           # a live child's CPU time is ours (5 jiffies: 0.05 s of 0.5 s)
    # a process that is not our child: a grandchild left running by a child that has exited
    subprocess.run([sys.executable, "-c", "import subprocess, sys; subprocess.Popen([sys.executable, '-c', "
                    f"{_spinner(tmp_path / 'orphan', 3.0)!r}])"], check=True)
    _wait_for(tmp_path / "orphan")
    since = machine.sample()
    time.sleep(0.8)
    assert machine.others_busy(since) >= 0.3    # it ran on a CPU most of that time


def test_a_run_on_the_cpu_records_the_threads_it_chose(tmp_path, monkeypatch):
    import yaml

    import imgclf

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(machine, "others_busy", lambda since=None: 1.0)   # another job on one core
    monkeypatch.setattr(machine, "usable_cpus", lambda: 2)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    s = imgclf.train(data="digits", model="fastcnn-tiny", epochs=1, out=str(tmp_path), name="r", plots=False,
                     quiet=True)
    assert yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())["threads"] == 1
    assert s["device"] == "cpu (1 thread)"
    given = imgclf.train(data="digits", model="fastcnn-tiny", epochs=1, threads=2, out=str(tmp_path), name="g",
                         plots=False, quiet=True)
    assert given["device"] == "cpu (2 threads)"


def test_runs_record_the_cpu_they_computed_on(tmp_path):
    """config.yaml and summary.json name the CPU and its speed-deciding features, so figures from two machines are
    never compared blind."""
    import json

    import yaml

    import imgclf
    from imgclf.engine.device import cpu_has_native_bf16

    s = imgclf.train(data="digits", model="fastcnn-tiny", epochs=1, threads=1, out=str(tmp_path), name="r",
                     plots=False, quiet=True)
    config = yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert config["machine"] == summary["machine"] == s["machine"]
    assert s["machine"]["threads"] == 1 and s["machine"]["usable_cpus"] >= 1
    rates = s["machine"]["matmul_gflops"]
    assert rates["fp32"] > 0 and (rates["bf16"] is None) == (not cpu_has_native_bf16())
    cpu = machine.cpu_description()
    assert s["machine"]["cpu"] == cpu and cpu["model"]
    assert set(cpu.get("flags", [])) <= set(machine.SPEED_FLAGS) or "flags" not in cpu or cpu["flags"]
    assert machine.bf16_units(["avx2", "avx512_bf16", "amx_bf16"]) == "AMX-BF16"
    assert machine.bf16_units(["avx512_bf16"]) == "AVX512-BF16" and machine.bf16_units(["avx2"]) is None
