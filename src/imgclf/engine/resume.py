"""What a resume checks and repairs before it continues a run in its folder: the settings it keeps, that the folder
is the run's own (never another run's or a user's files), and that the files an epoch's end writes after last.pt
(best.pt, metrics.csv) say what last.pt records — a kill between those writes leaves them a step behind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..checkpoint import load_checkpoint, require, save_checkpoint
from ..checkpoint.format import ADDED_FIELDS, MODEL_FIELDS, RUN_FIELDS, is_bare
from ..config import resume_settings
from ..errors import CheckpointError, ImgclfError
from ..report.run_dir import write_metrics
from .data_policy import recorded_data_dir


def resumed(resume: str | Path, user: dict[str, Any], file: dict[str, Any] | None
            ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The run's checkpoint `resume`, all a resume needs in it, and the run's settings (config.resume_settings: the
    settings `file` and `user` give may change only what a resume may), its data looked for where the run found it."""
    ckpt = load_checkpoint(resume)
    if is_bare(ckpt) or "optimizer" not in ckpt:
        raise ImgclfError(f"{resume}: a bare state_dict holds no optimizer or progress; --resume needs a "
                          "last.pt written by imgclf train (to evaluate or predict with it, use imgclf eval / "
                          "predict with --model)")
    require(ckpt, resume, *MODEL_FIELDS, *(f for f in RUN_FIELDS if f not in ADDED_FIELDS))
    settings = resume_settings(ckpt["config"], {**(file or {}), **user}, str(resume))
    return ckpt, recorded_data_dir(settings, ckpt["data"])


def run_owners(folder: Path, resume: Path) -> list[tuple[str, str]]:
    """(run id, which file says so) for the run(s) a folder belongs to: its config.yaml's run_id and the run_id of
    its last.pt and best.pt (other than `resume`). A config.yaml without a run id, or a summary.json without a
    config.yaml, is not a run's: it owns the folder as 'none'. Unreadable checkpoints say nothing."""
    owners = []
    config = folder / "config.yaml"
    try:
        recorded = yaml.safe_load(config.read_text())
        # a config.yaml that is not a run's record (no run id) is someone's own file: resuming would replace it
        owners.append((str(recorded["run_id"]) if isinstance(recorded, dict) and recorded.get("run_id")
                       else "none (not a run's config.yaml)", "config.yaml"))
    except FileNotFoundError:
        if (folder / "summary.json").exists():   # a run writes config.yaml first: this summary is not its own
            owners.append(("none (a summary.json without the run's config.yaml)", "summary.json"))
    except (OSError, ValueError, yaml.YAMLError):
        owners.append(("none (an unreadable config.yaml)", "config.yaml"))
    for name in ("last.pt", "best.pt"):
        path = folder / name
        try:
            if path.is_file() and not path.samefile(resume):
                owner = load_checkpoint(path).get("run_id")
                if owner:
                    owners.append((str(owner), name))
        except (OSError, ImgclfError):
            continue
    return owners


def check_run_folder(resume: Path, run_id: str, step: int) -> None:
    """Resume writes into the checkpoint's folder: refuse when that folder belongs to another run (a last.pt copied
    into it would overwrite that run's last.pt, best.pt, metrics and summary) — as its config.yaml says, or, when
    that is gone or damaged, its own checkpoints — or when the folder's last.pt is further on
    (resuming from best.pt would silently discard the epochs after it)."""
    owners = run_owners(resume.parent, resume)
    proven = any(owner == run_id and said_by.endswith(".pt") for owner, said_by in owners)   # its own checkpoints
    foreign = [(o, by) for o, by in owners if o != run_id and not (o.startswith("none") and proven)]
    for owner, said_by in sorted(foreign, key=lambda o: o[0].startswith("none")):   # another run's files first
        whose = f"files of {owner}" if owner.startswith("none") else f"run {owner}"
        raise ImgclfError(f"{resume}: this checkpoint belongs to run {run_id}, but {resume.parent} holds {whose} "
                          f"(its {said_by}); resuming here would overwrite them. Copy the whole run folder and resume "
                          "from the copy's last.pt")
    last = resume.parent / "last.pt"
    if last.is_file() and not last.samefile(resume):
        later = load_checkpoint(last).get("global_step", 0)
        if later > step:
            raise ImgclfError(f"{resume}: {last} is further on (step {later} against {step}); resume from it, or, to "
                              f"start again from these weights, a new run with --init-weights {resume}")


def repair_epoch_end(folder: Path, ckpt: dict[str, Any]) -> list[str]:
    """Make best.pt and metrics.csv what last.pt (`ckpt`, this folder's) records; returns the files rewritten.

    An epoch's end writes last.pt, then best.pt (when the epoch is the best so far), then metrics.csv; last.pt is
    the commit point. A kill before it replays the epoch; a kill after it left best.pt or metrics.csv behind, and
    both follow from last.pt: its history is metrics.csv, and when its epoch is the best one, best.pt is the same
    checkpoint (end_epoch saves both from one state)."""
    repaired = []
    best, epoch = ckpt["best_epoch"], ckpt["epoch"]
    best_pt = folder / "best.pt"
    if best is not None and not holds_epoch(best_pt, ckpt["run_id"], best):
        if best != epoch or ckpt["step_in_epoch"]:
            raise CheckpointError(f"{best_pt}: should hold epoch {best} of run {ckpt['run_id']} (the best, as "
                                  f"{folder / 'last.pt'} records) but does not (replaced or removed by hand?); "
                                  "restore it, or start a new run with --init-weights")
        save_checkpoint(ckpt, best_pt)
        repaired.append("best.pt")
    if write_metrics(folder, ckpt["history"]):
        repaired.append("metrics.csv")
    return repaired


def holds_epoch(path: Path, run_id: str | None, epoch: int) -> bool:
    """Whether checkpoint `path` is run `run_id`'s state at the end of epoch `epoch`."""
    try:
        saved = load_checkpoint(path)
    except (OSError, ImgclfError):
        return False
    return saved.get("run_id") == run_id and saved.get("epoch") == epoch and not saved.get("step_in_epoch")
