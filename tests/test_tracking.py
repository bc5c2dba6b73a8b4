"""Training callbacks and the experiment trackers on them: what a run calls, in which order, with the figures its
own files hold; and what MLflow (its file store), Weights & Biases (offline) and TensorBoard read back."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import imgclf
from imgclf.cli import main
from imgclf.errors import ConfigError


def read_csv(path: Path) -> list[dict[str, float]]:
    with path.open(newline="") as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


def settings_of(run_dir: Path) -> dict[str, Any]:
    """config.yaml's settings (without the run record: versions, machine, run id)."""
    from imgclf.config import FIELDS

    return {k: v for k, v in yaml.safe_load((run_dir / "config.yaml").read_text()).items() if k in FIELDS}


class Recorder:
    """Every call, in order, with its arguments."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def on_train_start(self, info):
        self.calls.append(("on_train_start", info))

    def on_step(self, step, row):
        self.calls.append(("on_step", (step, row)))

    def on_epoch_end(self, epoch, row):
        self.calls.append(("on_epoch_end", (epoch, row)))

    def on_checkpoint(self, path, kind):
        self.calls.append(("on_checkpoint", (path, kind)))

    def on_train_end(self, summary):
        self.calls.append(("on_train_end", summary))

    def on_train_error(self, error):
        self.calls.append(("on_train_error", error))

    def of(self, name: str) -> list[Any]:
        return [args for called, args in self.calls if called == name]


class EpochsOnly:
    """A callback with one of the methods: the others are not called."""

    def __init__(self) -> None:
        self.epochs: list[int] = []

    def on_epoch_end(self, epoch, row):
        self.epochs.append(epoch)


def test_callbacks_are_called_in_order_with_the_figures_of_the_run_files(tmp_path, monkeypatch):
    """60 steps (3 epochs of 20), of which steps.csv logs about 15 (every 4th): on_step comes on exactly those, with
    their rows."""
    monkeypatch.setattr("imgclf.report.steps.TARGET_ROWS", 15)
    rec, epochs_only = Recorder(), EpochsOnly()
    s = imgclf.train(data="digits", epochs=3, out=str(tmp_path), name="a", plots=False, quiet=True,
                     callbacks=[rec, epochs_only])
    run_dir = tmp_path / "a"
    info = rec.of("on_train_start")[0]
    assert info["run_dir"] == run_dir and info["config"] == settings_of(run_dir) and not info["resumed"]
    assert (info["epoch"], info["step"], info["steps_per_epoch"], info["total_steps"]) == (0, 0, 20, 60)
    steps = read_csv(run_dir / "steps.csv")
    assert [step for step, _ in rec.of("on_step")] == [r["step"] for r in steps] == [1, *range(4, 61, 4)]
    for (step, row), logged in zip(rec.of("on_step"), steps):
        assert row["step"] == step and row["images_per_second"] > 0
        assert {k: row[k] for k in ("epoch", "loss", "lr")} == pytest.approx({k: logged[k] for k in
                                                                              ("epoch", "loss", "lr")}, rel=1e-5)
    metrics = read_csv(run_dir / "metrics.csv")
    assert [{"epoch": e, **row} for e, row in rec.of("on_epoch_end")] == metrics
    # the order: steps, the epoch's row, its checkpoints (best.pt when val accuracy improved), …, the summary
    expected, best = ["on_train_start"], -1.0
    for m in metrics:
        expected += ["on_step"] * sum(1 for r in steps if m["epoch"] - 1 < r["epoch"] <= m["epoch"])
        expected += ["on_epoch_end", "on_checkpoint"] + ["on_checkpoint"] * (m["val_accuracy"] > best)
        best = max(best, m["val_accuracy"])
    assert [name for name, _ in rec.calls] == [*expected, "on_train_end"]
    kinds = [kind for _, kind in rec.of("on_checkpoint")]
    assert kinds.count("last") == 3 and kinds.count("best") == len(kinds) - 3 >= 1
    assert all(path == run_dir / f"{kind}.pt" for path, kind in rec.of("on_checkpoint"))
    assert rec.of("on_train_end")[0] == s == json.loads((run_dir / "summary.json").read_text())
    assert epochs_only.epochs == [1, 2, 3]


@pytest.mark.parametrize("given, message", [
    ([Recorder], r"callbacks\[0\] is the class Recorder, not a callback object: give an instance, Recorder\(…\)"),
    ([Recorder(), object()], r"callbacks\[1\] \(object\) has none of the callback methods on_train_start, on_step"),
    (Recorder(), r"callbacks: expected a list of callback objects, got Recorder; write callbacks=\[...\]"),
])
def test_a_bad_callback_is_a_one_line_error_before_a_run_folder_is_made(tmp_path, given, message):
    with pytest.raises(ConfigError, match=message):
        imgclf.train(data="digits", epochs=1, out=str(tmp_path), quiet=True, callbacks=given)
    assert list(tmp_path.iterdir()) == []


class FailsToStart:
    def on_train_start(self, info):
        raise RuntimeError("no tracking server")

    def on_train_error(self, error):
        raise AssertionError("not started: never told")


class BadErrorHandler:
    def on_train_error(self, error):
        raise OSError("disk full")


def test_a_failing_callback_stops_the_run_and_the_started_ones_are_told(tmp_path):
    """A callback's error is the run's error; the callbacks started before it hear of it (one that fails then is a
    warning), those after it, never started, do not."""
    before, after = Recorder(), Recorder()
    with pytest.raises(RuntimeError, match="no tracking server"), pytest.warns(UserWarning, match=
                                                                              "BadErrorHandler.on_train_error failed"):
        imgclf.train(data="digits", epochs=1, out=str(tmp_path), plots=False, quiet=True,
                     callbacks=[before, BadErrorHandler(), FailsToStart(), after])
    assert [name for name, _ in before.calls] == ["on_train_start", "on_train_error"] and after.calls == []
    assert str(before.of("on_train_error")[0]) == "no tracking server"


class FailAt:
    """A callback whose on_step raises at a step: the run stops there, its last.pt an epoch end before it."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step(self, step, row):
        if step == self.step:
            raise RuntimeError(f"failed at step {step}")


@pytest.fixture
def file_store(tmp_path, monkeypatch):
    """A local MLflow folder; the environment variable MLflow 3 wants for it is put back after the test."""
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "")
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE")          # the logger sets it (restored to absent after)
    return tmp_path / "mlruns"


def mlflow_runs(store: Path, experiment: str = "imgclf") -> tuple[Any, list[Any]]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(str(store))
    return client, client.search_runs([client.get_experiment_by_name(experiment).experiment_id])


@pytest.mark.slow
def test_mlflow_reads_back_the_settings_and_the_step_and_epoch_figures_and_a_resume_continues_its_run(
        tmp_path, file_store):
    from imgclf.report.trackers import MLflowLogger

    with pytest.raises(RuntimeError, match="failed at step 25"):
        imgclf.train(data="digits", epochs=2, out=str(tmp_path), name="a", plots=False, quiet=True,
                     callbacks=[MLflowLogger(str(file_store)), FailAt(25)])
    client, runs = mlflow_runs(file_store)
    assert [r.info.status for r in runs] == ["FAILED"]
    assert [m.step for m in client.get_metric_history(runs[0].info.run_id, "step/loss")] == list(range(1, 26))
    run_dir = tmp_path / "a"
    s = imgclf.train(resume=run_dir / "last.pt", quiet=True, callbacks=[MLflowLogger(str(file_store))])
    client, runs = mlflow_runs(file_store)
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"        # the same MLflow run, continued
    run = runs[0]
    assert run.data.params == {k: str(v) for k, v in settings_of(run_dir).items()}
    assert run.data.tags["imgclf.run_dir"] == str(run_dir.resolve()) and run.info.run_name == "a"

    def history(key):
        return [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, key)]

    steps, metrics = read_csv(run_dir / "steps.csv"), read_csv(run_dir / "metrics.csv")
    for key in ("loss", "lr"):            # steps 21-25, logged before the failure and replayed, are there once
        assert history(f"step/{key}") == [(int(r["step"]), pytest.approx(r[key], rel=1e-5)) for r in steps]
    assert [step for step, _ in history("step/images_per_second")] == list(range(1, 41))
    for key in ("train_loss", "val_loss", "val_accuracy", "lr", "seconds"):
        assert history(f"epoch/{key}") == [(int(m["epoch"]), m[key]) for m in metrics], key
    for key in ("test_accuracy", "test_loss", "test_macro_f1", "best_epoch", "steps"):
        assert run.data.metrics[key] == s[key]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert artifacts == {"config.yaml", "metrics.csv", "steps.csv", "summary.json"}   # no checkpoints, no plots


def wandb_records(wandb_dir: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The offline run's history records and its state (config, summary), read from its .wandb file by wandb's own
    reader (`wandb leet inspect`)."""
    [run] = (wandb_dir / "wandb").glob("offline-run-*")

    def inspect(*flags):
        return subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--json", *flags, str(run)],
                              capture_output=True, text=True, timeout=300, check=True).stdout

    records = [json.loads(line) for line in inspect().splitlines() if line.strip()]
    return [r["history"]["item"] for r in records if r["type"] == "history"], json.loads(inspect("--summary"))


@pytest.fixture
def wandb_offline(tmp_path, monkeypatch):
    """W&B offline, writing to a folder of this test's (wandb reads its environment once a process: it is reset)."""
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wb"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    (tmp_path / "wb").mkdir()
    wandb.teardown()
    yield tmp_path / "wb"
    wandb.teardown()


@pytest.mark.slow
def test_wandb_offline_reads_back_the_settings_and_the_step_and_epoch_figures(tmp_path, wandb_offline):
    from imgclf.report.trackers import WandbLogger

    s = imgclf.train(data="digits", epochs=2, out=str(tmp_path), name="a", plots=False, quiet=True,
                     callbacks=[WandbLogger()])
    run_dir = tmp_path / "a"
    history, state = wandb_records(wandb_offline)
    assert state["project"] == "imgclf" and state["name"] == "a" and state["state"] == "finished"
    assert state["config"] == json.loads(json.dumps(settings_of(run_dir)))
    steps, metrics = read_csv(run_dir / "steps.csv"), read_csv(run_dir / "metrics.csv")
    per_step = [h for h in history if "global_step" in h]
    assert [h["global_step"] for h in per_step] == [r["step"] for r in steps] == list(range(1, 41))
    for key in ("loss", "lr"):
        assert [h[f"step/{key}"] for h in per_step] == pytest.approx([r[key] for r in steps], rel=1e-5)
    per_epoch = [h for h in history if "epoch" in h]
    assert [{"epoch": h["epoch"], **{k[6:]: v for k, v in h.items() if k.startswith("epoch/")}} for h in per_epoch] \
        == metrics
    for key in ("test_accuracy", "test_loss", "test_balanced_accuracy", "best_epoch"):
        assert state["summary"][key] == s[key]


def test_the_cli_flags_log_to_mlruns_and_the_given_project_and_a_missing_package_names_its_extra(
        tmp_path, file_store, wandb_offline, monkeypatch, capsys):
    out = tmp_path / "runs"
    monkeypatch.chdir(tmp_path)                                      # --mlflow with no URI: ./mlruns
    monkeypatch.delenv("WANDB_SILENT")                               # -q silences W&B too
    assert main(["train", "--epochs", "1", "--out", str(out), "--name", "a", "--no-plots", "-q",
                 "--mlflow", "--wandb", "digits-runs"]) == 0
    printed = capsys.readouterr()
    assert printed.err == "" and printed.out.startswith("test accuracy ") and printed.out.count("\n") == 1
    _, runs = mlflow_runs(tmp_path / "mlruns")
    assert [(r.info.run_name, r.info.status) for r in runs] == [("a", "FINISHED")]
    assert runs[0].data.metrics["test_accuracy"] == json.loads((out / "a" / "summary.json").read_text())[
        "test_accuracy"]
    assert wandb_records(wandb_offline)[1]["project"] == "digits-runs"
    capsys.readouterr()
    for flag, module in (("--mlflow", "mlflow"), ("--wandb", "wandb")):
        monkeypatch.setitem(sys.modules, module, None)               # as if not installed
        assert main(["train", "--epochs", "1", "--out", str(tmp_path / "none"), flag]) == 3
        assert capsys.readouterr().err == (f"error: {flag} ({'MLflowLogger' if module == 'mlflow' else 'WandbLogger'}"
                                           f") needs the {module} package, which is not installed: pip install "
                                           f"'imgclf[{module}]'\n")
    assert not (tmp_path / "none").exists()

