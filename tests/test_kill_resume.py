"""Real interruptions in a child process: SIGKILL at random moments, SIGINT/SIGTERM with a clean save."""

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from kill_resume import ARGS, killed_run, reference, same_weights


def test_sigkill_at_random_moments_then_resume_is_bitwise_exact(tmp_path):
    ref = reference(tmp_path, epochs=4)
    final, landed = killed_run(tmp_path, 4, kills=3, rng=random.Random(1), window=(3.0, 5.5), log=lambda *_: None)
    assert landed >= 1
    assert same_weights(ref, final)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_saves_and_says_how_to_resume(tmp_path, sig):
    cmd = [sys.executable, "-m", "imgclf", "train", *ARGS, "--epochs", "40", "--out", str(tmp_path), "--name", "s"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (tmp_path / "s" / "last.pt").exists() and time.time() < deadline:   # wait until it is training
        time.sleep(0.1)
    proc.send_signal(sig)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Resume with: imgclf train --resume" in err and "Traceback" not in err
    r = subprocess.run([sys.executable, "-c", "import torch,sys; c=torch.load(sys.argv[1], weights_only=True); "
                        "print(c['global_step'])", str(tmp_path / "s" / "last.pt")], capture_output=True, text=True)
    assert int(r.stdout) > 0
