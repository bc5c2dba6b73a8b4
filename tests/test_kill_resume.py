"""Real interruptions in a child process: SIGKILL on progress at random steps, SIGINT/SIGTERM with a clean save."""

import random
import signal
import subprocess
import sys
import time

import pytest
from kill_chain import ARGS, CPU_ONLY, STEPS_PER_EPOCH, killed_run, reference, same_weights


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
