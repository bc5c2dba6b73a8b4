"""The default thread count fits the machine as it is: fewer threads where other processes keep CPUs busy, this
process's own work (and its children's) never counted against it, OMP_NUM_THREADS (torchrun's) respected."""

import os
import subprocess
import sys
import time

import pytest

from imgclf import cpuload

SPIN = "import time\nt = time.perf_counter()\nwhile time.perf_counter() - t < {s}: pass\n"


@pytest.mark.parametrize("others, cpus, machine, threads", [
    (0.0, 2, 2, 2), (0.2, 2, 2, 2), (0.3, 2, 2, 2),   # background noise: every CPU
    (0.5, 2, 2, 1), (1.1, 2, 2, 1), (4.0, 2, 2, 1),   # a job on a core: one thread, never none
    (3.0, 4, 8, 4),                                    # busy CPUs elsewhere on a bigger machine leave ours free
    (6.5, 4, 8, 1), (0.0, 1, 1, 1),
])
def test_threads_are_the_free_cpus(monkeypatch, others, cpus, machine, threads):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    got, why = cpuload.choose_threads(others, cpus, machine)
    assert got == threads
    assert ("busy" in why) == (threads < cpus)


def test_omp_num_threads_wins_and_unknown_load_means_every_cpu(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert cpuload.choose_threads(0.0, 2, 2) == (1, "OMP_NUM_THREADS=1")
    monkeypatch.setenv("OMP_NUM_THREADS", "")
    assert cpuload.choose_threads(None, 3, 3) == (3, "3 usable CPU(s)")


@pytest.mark.slow
def test_this_process_and_its_children_are_ours_and_another_process_is_not():
    start = cpuload.sample()
    if start is None:
        pytest.skip("no /proc/stat here")
    child = subprocess.Popen([sys.executable, "-c", SPIN.format(s=0.6)])
    time.sleep(0.3)
    mid = cpuload.sample()
    child.wait()
    assert mid.ours - start.ours >= 5           # a live child's CPU time is ours (5 jiffies: 0.05 s at least)
    # a process that is not our child: a grandchild left running by a child that has exited
    subprocess.run([sys.executable, "-c", "import subprocess, sys; subprocess.Popen([sys.executable, '-c', "
                    f"{SPIN.format(s=1.0)!r}])"], check=True)
    since = cpuload.sample()
    time.sleep(0.8)
    assert cpuload.others_busy(since) >= 0.3    # it ran on a CPU most of that time


@pytest.mark.slow
def test_a_run_on_the_cpu_records_the_threads_it_chose(tmp_path, monkeypatch):
    import yaml

    import imgclf

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(cpuload, "others_busy", lambda since=None: 1.0)   # another job on one core
    monkeypatch.setattr(cpuload, "usable_cpus", lambda: 2)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    s = imgclf.train(data="digits", model="fastcnn-tiny", epochs=1, out=str(tmp_path), name="r", plots=False,
                     quiet=True)
    assert yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())["threads"] == 1
    assert s["device"] == "cpu (1 thread)"
    given = imgclf.train(data="digits", model="fastcnn-tiny", epochs=1, threads=2, out=str(tmp_path), name="g",
                         plots=False, quiet=True)
    assert given["device"] == "cpu (2 threads)"
