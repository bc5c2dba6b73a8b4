"""Real interruptions in a child process: SIGKILL on progress at random steps and in the middle of checkpoint and plot
writes, SIGINT/SIGTERM with a clean save."""

import random
import signal
import subprocess
import sys
import time

import pytest
import torch
from kill_chain import (
    ARGS,
    BALLAST_ARGS,
    CPU_ONLY,
    STEPS_PER_EPOCH,
    ballast_cmd,
    kill_mid_write,
    killed_run,
    reference,
    same_weights,
    temporaries,
)

pytestmark = pytest.mark.slow   # the slow tier: see pyproject.toml


def test_sigkill_at_random_steps_then_resume_is_bitwise_exact(tmp_path):
    epochs = 4
    ref = reference(tmp_path, epochs)
    final, resumed_from = killed_run(tmp_path, epochs, kills=3, rng=random.Random(), log=lambda *_: None)
    assert len(resumed_from) == 3
    # at least one resume continued from the middle of the run, not from its start or its end
    assert any(0 < s < epochs * STEPS_PER_EPOCH for s in resumed_from), resumed_from
    assert same_weights(ref, final)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_saves_and_says_how_to_resume(tmp_path, sig):
    cmd = [sys.executable, "-m", "imgclf", "train", *ARGS, "--epochs", "40", "--out", str(tmp_path), "--name", "s"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=CPU_ONLY)
    deadline = time.time() + 300   # a safety net for a hung child, not a timing window
    while not (tmp_path / "s" / "last.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)             # wait until it is training (the first save)
    proc.send_signal(sig)
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "Resume with: imgclf train --resume" in err and "Traceback" not in err
    r = subprocess.run([sys.executable, "-c", "import torch,sys; c=torch.load(sys.argv[1], weights_only=True); "
                        "print(c['global_step'])", str(tmp_path / "s" / "last.pt")], capture_output=True, text=True)
    assert int(r.stdout) > 0


def _everything_loads_and_resume_leaves_no_temporaries(run, tmp_path):
    """Every .pt left on disk loads; resuming finishes the run; afterwards no temporary file is left, and the
    plots are whole images."""
    from PIL import Image

    for pt in run.glob("*.pt"):
        torch.load(pt, weights_only=True)
    done = subprocess.run(ballast_cmd("train", "--resume", str(run / "last.pt"), "--threads", "1"),
                          capture_output=True, text=True, env=CPU_ONLY, timeout=600)
    assert done.returncode == 0, done.stderr[-1000:]
    assert temporaries(run) == []
    for png in (run / "plots").glob("*.png"):
        with Image.open(png) as im:
            im.verify()
    assert torch.load(run / "last.pt", weights_only=True)["epoch"] == 3


def test_sigkill_during_a_checkpoint_write(tmp_path):
    run = tmp_path / "k"
    cmd = ballast_cmd("train", *BALLAST_ARGS, "--epochs", "3", "--out", str(tmp_path), "--name", "k")
    for _ in range(6):   # a kill can land just after the rename: then try again at a later write
        left = kill_mid_write(cmd, run, ".*.pt.tmp*", ready=lambda: (run / "last.pt").exists())
        assert left is not None, "the run finished before a checkpoint write was caught"
        if left:
            break
        cmd = ballast_cmd("train", "--resume", str(run / "last.pt"), "--threads", "1")
    assert left and all(p.name.startswith((".last.pt.tmp", ".best.pt.tmp")) for p in left), left
    _everything_loads_and_resume_leaves_no_temporaries(run, tmp_path)


def test_sigkill_while_plots_are_written(tmp_path):
    from PIL import Image

    run = tmp_path / "p"
    cmd = ballast_cmd("train", *BALLAST_ARGS, "--epochs", "3", "--out", str(tmp_path), "--name", "p")
    for _ in range(4):   # the plots are drawn at the end of the run and again by each resume
        left = kill_mid_write(cmd, run / "plots", ".*.png.tmp*")
        assert left is not None, "the run finished before a plot write was caught"
        if left:
            break
        cmd = ballast_cmd("train", "--resume", str(run / "last.pt"), "--threads", "1")
    assert left, "every kill landed between two plot writes"
    for png in (run / "plots").glob("*.png"):   # the plot being drawn is not there half-written
        with Image.open(png) as im:
            im.verify()
    _everything_loads_and_resume_leaves_no_temporaries(run, tmp_path)
