"""Many processes through PyTorch's own engine: torchrun + DistributedDataParallel (gloo on CPU), as the README says."""

import json
import os
import subprocess
import sys

import pytest
import torch
import yaml
from conftest import printed_config

from imgclf.checkpoint import load_checkpoint
from imgclf.data import load_dataset
from imgclf.data.split import hold_out_val

pytestmark = pytest.mark.slow   # the slow tier: see pyproject.toml

ARGS = ["train", "--data", "digits", "--epochs", "2", "--batch-size", "64", "--no-plots", "--seed", "3"]
CPU_ONLY = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}   # gloo on CPU: the test means the same on a GPU machine


def test_torchrun_two_processes_train_one_run_on_half_the_steps(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "imgclf", *ARGS, "--out", str(tmp_path / "ddp")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=CPU_ONLY)
    assert r.returncode == 0, r.stderr[-2000:]
    runs = list((tmp_path / "ddp").iterdir())
    assert len(runs) == 1, runs                      # rank 0 alone writes the run folder
    summary = json.loads((runs[0] / "summary.json").read_text())
    assert summary["test_accuracy"] > 0.3            # 2 epochs on digits learn; chance is 0.1
    # --print-config in a torchrun environment says what each process runs, as the run's config.yaml records it
    world = {**CPU_ONLY, "WORLD_SIZE": "2", "OMP_NUM_THREADS": "1"}   # what torchrun gives each process
    shown = subprocess.run([sys.executable, "-m", "imgclf", *ARGS, "--out", str(tmp_path / "ddp"), "--print-config"],
                           capture_output=True, text=True, timeout=300, env=world)
    printed = printed_config(shown.stdout)
    recorded = yaml.safe_load((runs[0] / "config.yaml").read_text())
    assert printed and {k: recorded[k] for k in printed} == printed

    single = subprocess.run([sys.executable, "-m", "imgclf", *ARGS, "--out", str(tmp_path / "one")],
                            capture_output=True, text=True, timeout=300, env=CPU_ONLY)
    assert single.returncode == 0, single.stderr[-2000:]
    one = load_checkpoint(next((tmp_path / "one").iterdir()) / "last.pt")
    two = load_checkpoint(runs[0] / "last.pt")
    # each process took its own half of every epoch's order (full batches only), so an epoch has half the steps
    n = len(hold_out_val(load_dataset("digits"), 0.1, 3).train)
    assert one["global_step"] == 2 * (n // 64) and two["global_step"] == 2 * ((n // 2) // 64)
    # the saved weights are a plain model state (no DDP "module." prefix) that loads into the model
    assert set(two["model"]) == set(one["model"])
    assert not torch.equal(two["model"]["head.weight"], one["model"]["head.weight"])
