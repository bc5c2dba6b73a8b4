"""Experiment trackers as training callbacks (callbacks.py): MLflow (`--mlflow [URI]`, `imgclf[mlflow]`) and Weights &
Biases (`--wandb [PROJECT]`, `imgclf[wandb]`). Both log the resolved settings, the figures of each step steps.csv
records under step/ (against the global step), each epoch's row of metrics.csv under epoch/ (against the epoch)
and the summary's test figures; MLflow also keeps the run folder as artifacts. A resumed run continues the
tracker's run of its run folder. Each package is imported only when its logger is made."""

from __future__ import annotations

import hashlib
import importlib
import os
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from ..errors import ConfigError
from .callbacks import Callback, final_figures, was_stopped

STEP_KEYS = ("loss", "lr", "images_per_second")   # on_step's figures a tracker logs, as step/KEY


def need(module: str, who: str, extra: str) -> ModuleType:
    """Import an optional package, or fail in one line naming the pip extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"{who} needs the {module} package, which is not installed: "
                          f"pip install 'imgclf[{extra}]'") from None


def numbers(row: dict[str, Any], prefix: str) -> dict[str, float]:
    """A row's numeric figures (not its epoch or step), named PREFIX/KEY."""
    return {f"{prefix}/{k}": v for k, v in row.items()
            if k not in ("epoch", "step") and isinstance(v, (int, float)) and not isinstance(v, bool)}


def local_store(uri: str) -> str:
    """A tracking URI with a local folder (a path, or file:) as an absolute path. MLflow 3 serves a folder (its
    file store) only with MLFLOW_ALLOW_FILE_STORE=true, which naming a folder here sets unless already set."""
    if "://" in uri and not uri.startswith("file:"):
        return uri
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return uri if uri.startswith("file:") else str(Path(uri).expanduser().resolve())


class MLflowLogger(Callback):
    """Log a run to MLflow: params (the resolved settings), metrics per step and per epoch, the final test
    figures, and the run folder as artifacts (checkpoints only with `checkpoints=True`). `tracking_uri`: a
    tracking server or a local folder (default $MLFLOW_TRACKING_URI, else ./mlruns); `experiment`: default
    $MLFLOW_EXPERIMENT_NAME, else imgclf. Metrics are sent in batches: every `flush_seconds`, at epoch ends and
    checkpoints."""

    def __init__(self, tracking_uri: str | None = None, experiment: str | None = None, checkpoints: bool = False,
                 flush_seconds: float = 10.0) -> None:
        need("mlflow", "--mlflow (MLflowLogger)", "mlflow")
        self.uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or "mlruns"
        self.experiment = experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or "imgclf"
        self.checkpoints, self.flush_seconds = checkpoints, flush_seconds
        self.run_id: str | None = None

    def on_train_start(self, info: dict[str, Any]) -> None:
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        self.info, self.pending, self.flushed = info, [], time.monotonic()
        self.client = client = MlflowClient(local_store(self.uri))
        found = client.get_experiment_by_name(self.experiment)
        experiment_id = found.experiment_id if found else client.create_experiment(self.experiment)
        run_dir = str(Path(info["run_dir"]).resolve())
        run = self.run_of(experiment_id, info["run_id"], run_dir) if info["resumed"] else None
        if run is None:
            run = client.create_run(experiment_id, run_name=Path(run_dir).name, tags={
                "imgclf.run_id": info["run_id"], "imgclf.run_dir": run_dir, "imgclf.dataset": info["dataset"],
                "imgclf.model": info["model"], "mlflow.source.name": "imgclf"})
        else:
            client.update_run(run.info.run_id, status="RUNNING")
        self.run_id, self.params = run.info.run_id, dict(run.data.params)
        # what a killed process logged after its checkpoint is not logged twice when the resumed run replays it
        self.logged = {k: max(m.step for m in client.get_metric_history(self.run_id, k)) for k in run.data.metrics}
        new = [Param(k, str(v)) for k, v in info["config"].items() if k not in self.params]
        for i in range(0, len(new), 100):   # MLflow takes at most 100 params a call
            client.log_batch(self.run_id, params=new[i:i + 100])
        self.params.update({p.key: p.value for p in new})

    def run_of(self, experiment_id: str, run_id: str, run_dir: str) -> Any:
        """The MLflow run of this imgclf run and run folder (a copied run folder gets its own), or None."""
        runs = self.client.search_runs([experiment_id], f"tags.`imgclf.run_id` = '{run_id}'")
        return next((r for r in runs if r.data.tags.get("imgclf.run_dir") == run_dir), None)

    def add(self, figures: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.pending += [Metric(k, float(v), now, step) for k, v in figures.items() if step > self.logged.get(k, -1)]

    def flush(self) -> None:
        for i in range(0, len(self.pending), 1000):   # MLflow takes at most 1000 metrics a call
            self.client.log_batch(self.run_id, metrics=self.pending[i:i + 1000])
        self.pending, self.flushed = [], time.monotonic()

    def on_step(self, step: int, row: dict[str, Any]) -> None:
        self.add({f"step/{k}": row[k] for k in STEP_KEYS}, step)
        if len(self.pending) >= 1000 or time.monotonic() - self.flushed > self.flush_seconds:
            self.flush()

    def on_epoch_end(self, epoch: int, row: dict[str, Any]) -> None:
        self.add(numbers(row, "epoch"), epoch)
        self.flush()

    def on_checkpoint(self, path: Path, kind: str) -> None:
        self.flush()   # the metrics a checkpoint has seen are sent before a resume from it could replay them

    def on_train_end(self, summary: dict[str, Any]) -> None:
        self.add(final_figures(summary), summary.get("epochs_run") or 0)
        self.flush()
        run_dir = Path(self.info["run_dir"])
        for f in sorted(run_dir.rglob("*")):
            if f.is_file() and (self.checkpoints or f.suffix != ".pt"):
                parent = f.parent.relative_to(run_dir).as_posix()
                self.client.log_artifact(self.run_id, str(f), None if parent == "." else parent)
        for k, v in self.info["config"].items():   # a --budget's re-plan changed them after they were logged
            if k in self.params and self.params[k] != str(v):
                self.client.set_tag(self.run_id, f"imgclf.replanned.{k}", str(v))
        self.client.set_terminated(self.run_id, "FINISHED")

    def on_train_error(self, error: BaseException) -> None:
        if self.run_id is None:
            return
        try:
            self.flush()
        finally:
            self.client.set_terminated(self.run_id, "KILLED" if was_stopped(error) else "FAILED")


def wandb_id(run_id: str, run_dir: Path) -> str:
    """The W&B run id of an imgclf run folder: its run id and its path's hash (a copied run folder gets its own)."""
    return f"{run_id}-{hashlib.sha256(str(run_dir.resolve()).encode()).hexdigest()[:8]}"


class WandbLogger(Callback):
    """Log a run to Weights & Biases: the resolved settings as config, step/ metrics against global_step, epoch/
    metrics against epoch, the final test figures in the summary. `project`: default $WANDB_PROJECT, else imgclf;
    other keyword arguments go to wandb.init (entity, group, tags, mode, dir, …). WANDB_MODE=offline (or
    mode="offline") logs to local files without a network; `wandb sync` uploads them later."""

    def __init__(self, project: str | None = None, **init: Any) -> None:
        self.wandb = need("wandb", "--wandb (WandbLogger)", "wandb")
        self.project = project or os.environ.get("WANDB_PROJECT") or "imgclf"
        self.init = init
        self.run: Any = None

    def on_train_start(self, info: dict[str, Any]) -> None:
        self.info, self.config = info, dict(info["config"])
        run_dir = Path(info["run_dir"])
        self.run = run = self.wandb.init(**{
            "project": self.project, "id": wandb_id(info["run_id"], run_dir), "resume": "allow",
            "name": run_dir.name, "config": self.config, "reinit": "create_new", **self.init})
        run.define_metric("global_step")
        run.define_metric("step/*", step_metric="global_step")
        run.define_metric("epoch")
        run.define_metric("epoch/*", step_metric="epoch")

    def on_step(self, step: int, row: dict[str, Any]) -> None:
        self.run.log({"global_step": step, **{f"step/{k}": row[k] for k in STEP_KEYS}})

    def on_epoch_end(self, epoch: int, row: dict[str, Any]) -> None:
        self.run.log({"epoch": epoch, **numbers(row, "epoch")})

    def on_train_end(self, summary: dict[str, Any]) -> None:
        changed = {k: v for k, v in self.info["config"].items() if self.config.get(k) != v}   # a --budget's re-plan
        if changed:
            self.run.config.update(changed, allow_val_change=True)
        self.run.summary.update(final_figures(summary))
        self.run.finish()

    def on_train_error(self, error: BaseException) -> None:
        if self.run is not None:
            self.run.finish(exit_code=130 if was_stopped(error) else 1)
