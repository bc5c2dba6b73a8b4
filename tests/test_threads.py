"""A CPU run whose threads were chosen for the machine keeps them fitted to it while it trains: fewer when another
job arrives mid-run, as many again when it leaves; recorded in summary.json and the checkpoints, said on the console,
and continued by a resume. What other processes keep busy is mocked (by step, not by clock) and the watch checks
after every step, so nothing here depends on the machine's pace."""

from __future__ import annotations

import json
import signal

import pytest
import torch
import yaml

import imgclf
from imgclf import machine
from imgclf.checkpoint import load_checkpoint
from imgclf.engine import threads as watch
from imgclf.engine.train import TrainingStopped

FAST = dict(data="digits", model="fastcnn-tiny", epochs=2, batch_size=64, plots=False, device="cpu")   # 20 steps/epoch
BUSY = "1.0 of 2 CPUs free: other processes keep 1.0 busy"
QUIET = "2 usable CPUs, 2.0 free"


def register_counted_model(name: str, stop_at: int | None = None) -> dict:
    """fastcnn-tiny under `name`, whose training steps are counted (over the process) with the torch threads each
    ran on; at step `stop_at` (1-based) it sends this process a real SIGINT, so the run saves last.pt and stops."""
    from imgclf.models import MODELS, register_model

    state = {"steps": 0, "threads": []}

    def builder(**kw):
        model = MODELS["fastcnn-tiny"].builder(**kw)

        def hook(module, _inputs):
            if module.training:
                state["threads"].append(torch.get_num_threads())
                state["steps"] += 1
                if state["steps"] == stop_at:
                    signal.raise_signal(signal.SIGINT)

        model.register_forward_pre_hook(hook)
        return model

    register_model(name, builder)
    return state


@pytest.fixture
def two_cpus(monkeypatch):
    """A 2-CPU machine with no OMP_NUM_THREADS, checked after every step; `load[0]`: the steps during which another
    job keeps one CPU busy (quiet at start-up, and whenever the count is outside them). Returns (load, checks)."""
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(machine, "usable_cpus", lambda: 2)
    monkeypatch.setattr(machine.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(watch, "CHECK_EVERY_S", 0.0)
    load: list = [range(0), None]   # [busy steps, the counted model's state]
    checks: list[int] = []

    def others_busy(since=None):
        if since is None:   # start-up's measure
            return 0.0
        steps = load[1]["steps"]
        checks.append(steps)
        return 1.0 if steps in load[0] else 0.0

    monkeypatch.setattr(machine, "others_busy", others_busy)
    return load, checks


def test_threads_follow_load_that_arrives_and_leaves_mid_run_and_a_resume_continues(tmp_path, two_cpus, capsys):
    load, checks = two_cpus
    load[0] = range(6, 16)   # another job from step 6 to step 15
    load[1] = state = register_counted_model("tiny-threads-watched")
    s = imgclf.train(FAST | {"model": "tiny-threads-watched", "out": str(tmp_path), "name": "r"})
    out = capsys.readouterr().out
    changes = [{"step": 6, "before": 2, "after": 1, "why": BUSY}, {"step": 16, "before": 1, "after": 2, "why": QUIET}]
    assert s["thread_changes"] == changes
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["thread_changes"] == changes
    assert load_checkpoint(tmp_path / "r" / "last.pt")["thread_changes"] == changes
    # steps 1-6 ran on 2 threads, 7-16 on 1 (the change after step 6), the rest on 2 again
    assert state["threads"] == [2] * 6 + [1] * 10 + [2] * 24
    assert checks == list(range(2, 41))   # after every step but the first, which starts the window
    assert f"threads 2 → 1 at step 6: {BUSY}" in out and f"threads 1 → 2 at step 16: {QUIET}" in out
    assert s["machine"]["threads"] == 2 == yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())["threads"]

    # stopped while the machine is busy: last.pt holds the count of then, and a resume continues with it
    load[1] = state = register_counted_model("tiny-threads-stopped", stop_at=10)
    load[0] = range(6, 16)
    with pytest.raises(TrainingStopped):
        imgclf.train(FAST | {"model": "tiny-threads-stopped", "out": str(tmp_path), "name": "s"}, quiet=True)
    stopped = load_checkpoint(tmp_path / "s" / "last.pt")
    assert stopped["global_step"] == 10 and stopped["config"]["threads"] == 1
    assert stopped["thread_changes"] == changes[:1]
    assert yaml.safe_load((tmp_path / "s" / "config.yaml").read_text())["threads"] == 1
    capsys.readouterr()
    load[0] = range(6, 10)   # the machine is quiet again by the time the run is resumed
    resumed = imgclf.train(resume=tmp_path / "s" / "last.pt", quiet=True)
    assert state["threads"][10:12] == [1, 1] and set(state["threads"][12:]) == {2}
    assert resumed["thread_changes"] == [*changes[:1], {"step": 12, "before": 1, "after": 2, "why": QUIET}]
    assert capsys.readouterr().out == ""   # a quiet run says nothing of it


@pytest.mark.parametrize("given", [{"threads": 2}, {"omp": "2"}])
def test_threads_given_are_never_changed(tmp_path, two_cpus, monkeypatch, given):
    """--threads N, or OMP_NUM_THREADS (torchrun's), is the count the whole run computes with, busy machine or not."""
    load, checks = two_cpus
    load[0] = range(1000)
    name = f"tiny-threads-given-{'omp' if 'omp' in given else 'flag'}"
    load[1] = state = register_counted_model(name)
    if "omp" in given:
        monkeypatch.setenv("OMP_NUM_THREADS", given["omp"])
    flags = {k: v for k, v in given.items() if k == "threads"}
    s = imgclf.train(FAST | {"model": name, "out": str(tmp_path), "name": "r", **flags}, quiet=True)
    assert checks == [] and set(state["threads"]) == {2} and len(state["threads"]) == 40
    assert s["thread_changes"] is None and load_checkpoint(tmp_path / "r" / "last.pt")["thread_changes"] is None


def test_a_checkpoint_without_the_record_resumes_as_it_was_and_a_damaged_record_is_refused(tmp_path, two_cpus):
    """A checkpoint written before the record existed resumes with its threads fixed; a record that is not a list
    of changes is a one-line error naming the field."""
    from imgclf.errors import CheckpointError

    load, checks = two_cpus
    load[1] = register_counted_model("tiny-threads-older", stop_at=10)
    with pytest.raises(TrainingStopped):
        imgclf.train(FAST | {"model": "tiny-threads-older", "out": str(tmp_path), "name": "s"}, quiet=True)
    path = tmp_path / "s" / "last.pt"
    ckpt = load_checkpoint(path)
    torch.save({**ckpt, "thread_changes": "2 → 1"}, tmp_path / "damaged.pt")
    with pytest.raises(CheckpointError, match=r"damaged.pt: field 'thread_changes' is .*expected None or a list"):
        load_checkpoint(tmp_path / "damaged.pt")
    del ckpt["thread_changes"]
    torch.save(ckpt, path)
    load[0], checks[:] = range(1000), []
    s = imgclf.train(resume=path, quiet=True)
    assert s["steps"] == 40 and s["thread_changes"] is None and checks == []
