"""The Python API, mirroring the CLI: train(), load() → Classifier with .predict() and .evaluate()."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps

from .checkpoint import load_checkpoint, rebuild
from .config import INFERENCE_PRECISIONS as PRECISIONS
from .config import check_image_size
from .data import Dataset, load_dataset
from .data.batches import Normalizer
from .data.images import decode_image, fit_image, image_to_array, walk_images
from .data.split import Split, test_split_changes
from .data.table import dataframe_settings, is_dataframe
from .engine.device import inference_dtype, precision_name
from .engine.evaluate import metrics_from_logits, predict_logits, test_metrics
from .engine.setup import pick_device
from .engine.train import train as train_run
from .errors import CheckpointError, ConfigError, DataError
from .exported import exported_format, open_exported
from .keywords import keyword_errors, python_errors
from .trained import TrainedRun, card, classes_text
from .words import counted


class Classifier:
    """A trained model ready for use: weights, class names, input size and normalization, on one device."""

    def __init__(self, model: torch.nn.Module, classes: list[str], model_args: dict[str, Any],
                 mean: list[float], std: list[float], device: torch.device, tta: bool = False,
                 source: str = "", config: dict[str, Any] | None = None, channels_last: bool = False,
                 model_name: str = "", tta_mirror: bool = True) -> None:
        self.model, self.classes, self.model_args = model.eval(), classes, model_args
        self.mean, self.std, self.device, self.tta = mean, std, device, tta
        self.source, self.config, self.model_name = source, config or {}, model_name or type(model).__name__
        self.data_identity: dict[str, Any] | None = None   # what the run trained and tested on (its checkpoint)
        self.numbered_classes = False   # a bare state_dict's placeholder names '0', '1', …: the data may name them
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.normalize = Normalizer(mean, std, device, channels_last=channels_last)
        self.tta_shift = int(self.config.get("tta_shift", 0)) if tta else 0   # the run's TTA views (evaluate.py)
        self.tta_mirror = tta_mirror   # False: its TTA has no mirrored views (the run's --tta-mirror, config.py)
        self.autocast_dtype: torch.dtype | None = None   # what it computes in (load's precision): fp32 by default

    @property
    def resize(self) -> str:
        """How images meet the input size: as the run trained (its settings' resize); squashed where no settings are
        recorded (a bare state_dict, as the tutorials' transforms.Resize((h, w)))."""
        return self.config.get("resize", "squash")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        h, w = self.model_args["image_size"]
        return self.model_args["in_channels"], int(h), int(w)

    def _repr_html_(self) -> str:
        """A notebook's view: the model, its input, the data it was tested on, its classes, where it came from."""
        c, h, w = self.image_shape
        data = (self.data_identity or {}).get("name") or self.config.get("data")
        return card("imgclf Classifier", [("model", self.model_name), ("input", f"{c}×{h}×{w}"), ("data", data),
                                          ("classes", classes_text(self.classes)), ("checkpoint", self.source),
                                          ("device", self.device)])

    def __repr__(self) -> str:
        c, h, w = self.image_shape
        shown = ", ".join(map(repr, self.classes[:5])) + (f", … ({len(self.classes)} classes)"
                                                         if len(self.classes) > 5 else "")
        return f"Classifier(model={self.model_name!r}, classes=[{shown}], input={c}×{h}×{w}, device={self.device})"

    @python_errors
    def predict(self, images: Any, topk: int = 1, strict_images: bool = False) -> list[dict[str, Any]]:
        """Classify images; returns one dict per image with 'class', 'probability' and the 'topk' list ('file'
        too for images read from paths). `images`: a path of an image file or folder (walked), a PIL image, a
        numpy array (H×W, H×W×C or C×H×W), a tensor (C×H×W, or an N×C×H×W batch), uint8 in 0–255 or float in
        [0, 1], or a list of any of these. Each is converted as training converts files (grayscale or RGB, alpha
        over white) and resized with the one resizer to what the model expects. An unreadable image file is
        skipped with a warning naming it, as training skips it (an error with `strict_images`)."""
        batch, files = self._gather(images, strict_images)
        split = Split(batch, torch.zeros(len(batch), dtype=torch.int64), "predict")
        logits = predict_logits(self.model, split, self.normalize, self.device, self.tta, self.tta_shift,
                                self.tta_mirror, self.autocast_dtype)
        probs = torch.softmax(logits, 1)
        k = max(1, min(topk, len(self.classes)))
        top_p, top_i = probs.topk(k, 1)
        out = []
        for n in range(len(batch)):
            ranked = [{"class": self.classes[int(i)], "probability": round(float(p), 6)}
                      for p, i in zip(top_p[n], top_i[n])]
            item = {"class": ranked[0]["class"], "probability": ranked[0]["probability"], "topk": ranked}
            if files[n] is not None:
                item = {"file": files[n], **item}
            out.append(item)
        return out

    def _changed_test_split(self, ds: Dataset) -> str | None:
        """How `ds`'s test split differs from the one recorded when this model was tested (None: the same, or
        nothing recorded, or another dataset)."""
        then = self.data_identity
        if not then or then.get("name") != ds.name:
            return None
        now = ds.identity()
        changes = test_split_changes(then, now)
        moved = bool(then.get("source")) and "test_pixels" in now and then["source"] != now["source"]
        if not changes:
            if moved:   # a copy of the folder elsewhere: the same test images, so the figure compares
                warnings.warn(f"{ds.name}: evaluating the folder {now['source']}; the model was tested on "
                              f"{then['source']} (the same test files and pixels)", stacklevel=3)
            return None
        where = f"; in {then['source']} then, {now['source']} now" if moved else ""
        return (f"the test split of {ds.name} has changed since this model was tested ({then['sizes'].get('test')} "
                f"images then, {now['sizes']['test']} now: {', '.join(changes)}{where})")

    def _gather(self, images: Any, strict: bool = False) -> tuple[torch.Tensor, list[str | None]]:
        """predict's input as one uint8 batch of the model's shape, and the file each image came from (or None)."""
        c, h, w = self.image_shape
        if isinstance(images, torch.Tensor) and images.dtype == torch.uint8 and images.shape[1:] == (c, h, w) \
                and images.ndim == 4:
            return images, [None] * len(images)       # already what the model takes
        if isinstance(images, (torch.Tensor, np.ndarray)) and images.ndim == 4:
            items: list[Any] = list(images)
        elif isinstance(images, (str, os.PathLike, Image.Image, torch.Tensor, np.ndarray)):
            items = [images]
        elif isinstance(images, Iterable):
            items = list(images)
        else:
            raise DataError(f"predict takes paths, PIL images, numpy arrays or tensors, or a list of them; got "
                            f"{type(images).__name__}")
        arrays, files, skipped = [], [], []
        for item in items:
            if isinstance(item, (str, os.PathLike)):
                for f in expand_image_paths([item], strict):
                    try:
                        arrays.append(torch.from_numpy(decode_image(f, (h, w), "L" if c == 1 else "RGB",
                                                                    fit=self.resize)))
                        files.append(f)
                    except DataError as e:
                        skipped.append(str(e))
            else:
                arrays.append(as_model_image(item, c, (h, w), self.resize))
                files.append(None)
        report_unreadable(skipped, strict, given_none=not arrays)
        return torch.stack(arrays), files

    @python_errors
    def evaluate(self, data: str | Dataset | None = None, data_dir: str | None = None, split: str = "test",
                 allow_changed_data: bool = False, **load_args: Any) -> dict[str, Any]:
        """Loss, accuracy, per-class accuracy, P/R/F1 and confusion matrix on a split of `data`
        (default: the dataset the model was trained on, with its settings). On the data it was trained on, a test
        split other than the one the run tested is an error unless `allow_changed_data` (then the result says so)."""
        ds = self._dataset(data, data_dir, load_args)
        changed = self._changed_test_split(ds)
        if changed and not allow_changed_data:
            raise DataError(f"{self.source}: {changed}; the figure would not be comparable with the run's. Pass "
                            "--allow-changed-data to evaluate anyway (the result then says the test split differs)")
        part = ds.split(split)
        logits = predict_logits(self.model, part, self.normalize, self.device, self.tta, self.tta_shift,
                                self.tta_mirror, self.autocast_dtype)
        m = metrics_from_logits(logits, part.labels, ds.classes)
        repeats = (self.data_identity or {}).get("test_repeats") if split == "test" and not changed else None
        if repeats:   # the run's test split: its test images repeating training images, under the run's policy
            m, m["test_duplicates"] = test_metrics(logits, part.labels, ds.classes, repeats,
                                                   self.config.get("test_duplicates", "exclude"))
        if changed:
            m["data_changed"] = changed
        return {"dataset": ds.name, "split": split, "checkpoint": self.source, "classes": ds.classes,
                "test_accuracy" if split == "test" else f"{split}_accuracy": m["accuracy"],
                "test_loss" if split == "test" else f"{split}_loss": m["loss"], **m,
                "computed_in": precision_name(self.autocast_dtype)}

    @python_errors
    def split_logits(self, split: str = "test") -> tuple[Split, torch.Tensor]:
        """A split of the data the model was trained on (its settings) and the model's logits for it."""
        part = self._dataset(None, None, {}).split(split)
        return part, predict_logits(self.model, part, self.normalize, self.device, self.tta, self.tta_shift,
                                    self.tta_mirror, self.autocast_dtype)

    def _dataset(self, data: str | Dataset | None, data_dir: str | None, load_args: dict[str, Any]) -> Dataset:
        """`data` loaded as this model takes it (default: the dataset it was trained on, with its settings), its
        shape and classes checked against the model's."""
        if is_dataframe(data):   # as train(data=df) records it: a CSV file, paths relative to images_root
            table = dataframe_settings(data, load_args.get("images_root"))
            data, load_args["images_root"] = table["data"], table["images_root"]
        if isinstance(data, Dataset):
            ds = data
        else:
            cfg = self.config
            name = data or cfg.get("data")
            if not name:
                raise DataError("this checkpoint does not record its dataset; pass --data")
            same = name == cfg.get("data")
            if same:   # a CSV's or Hugging Face dataset's options as the run had them, unless given
                load_args = {k: cfg.get(k) for k in ("images_root", "columns")} | \
                    {k: v for k, v in load_args.items() if v is not None}
            ds = load_dataset(name, data_dir or (cfg.get("data_dir") if same else None),
                              image_size=self.image_shape[1] if self.image_shape[1] == self.image_shape[2] else None,
                              val_split=cfg.get("val_split", 0.0) if same else 0.0,
                              test_split=cfg.get("test_split", 0.2), seed=cfg.get("seed", 0),
                              resize=self.resize, **load_args)
        if ds.shape != self.image_shape:
            raise DataError(f"{ds.name}: images are {ds.shape} (C, H, W) but the model takes {self.image_shape}")
        if ds.classes != self.classes:
            if len(ds.classes) != len(self.classes) or not self.numbered_classes:
                raise CheckpointError(f"{self.source}: trained on classes {self.classes[:5]}… but {ds.name} has "
                                      f"{ds.classes[:5]}…; evaluate on data with the same class list")
            self.classes = list(ds.classes)  # a bare state_dict had numbered classes: adopt the data's names
        return ds


def as_model_image(image: Any, channels: int, size: tuple[int, int], fit: str = "crop") -> torch.Tensor:
    """One in-memory image (PIL image, numpy array or tensor) as a uint8 channels×H×W tensor at `size`: pixels
    to 0–255, the layout to C×H×W (numpy arrays are read as H×W×C when their last axis can be channels, tensors
    as C×H×W when their first can), channels converted through `image_to_array` like files, then resized."""
    mode = "L" if channels == 1 else "RGB"
    if isinstance(image, Image.Image):   # upright by its EXIF orientation, as decode_image turns files
        return fit_image(torch.from_numpy(image_to_array(ImageOps.exif_transpose(image), mode)), size, fit)
    if isinstance(image, np.ndarray):
        arr = np.array(image)                             # a writable copy
        x = torch.from_numpy(arr.astype(np.int64) if arr.dtype.kind in "ui" and arr.dtype != np.uint8 else arr)
    elif isinstance(image, torch.Tensor):
        x = image.detach().cpu()
    else:
        raise DataError(f"predict takes paths, PIL images, numpy arrays or tensors, got {type(image).__name__}")
    x = _to_uint8(x)
    shape, chans = tuple(x.shape), (1, 3, 4)
    if x.ndim == 3 and shape[-1] in chans and (isinstance(image, np.ndarray) or shape[0] not in chans):
        x = x.permute(2, 0, 1)
    elif x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or x.shape[0] not in chans:
        raise DataError(f"predict takes images of H×W, H×W×C or C×H×W with 1, 3 or 4 channels, got shape {shape}")
    if x.shape[0] != channels or x.shape[0] == 4:         # gray ↔ RGB, or RGBA: converted as image files are
        hwc = np.ascontiguousarray(x.permute(1, 2, 0).numpy())
        x = torch.from_numpy(image_to_array(Image.fromarray(hwc[:, :, 0] if x.shape[0] == 1 else hwc), mode))
    return fit_image(x.contiguous(), size, fit)


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Pixels as uint8: floats must lie in [0, 1] (scaled by 255), integers in 0–255."""
    if x.is_floating_point():
        lo, hi = (float(x.min()), float(x.max())) if x.numel() else (0.0, 0.0)
        if not (lo >= 0 and hi <= 1):
            raise DataError(f"predict takes float images in [0, 1], got values from {lo:.3g} to {hi:.3g} (pass the "
                            "pixels before normalizing them, or uint8 0–255)")
        return (x * 255).round().to(torch.uint8)
    if x.dtype == torch.bool or (x.numel() and not (int(x.min()) >= 0 and int(x.max()) <= 255)):
        raise DataError(f"predict takes uint8 images (0–255) or floats in [0, 1], got {x.dtype}"
                        + ("" if x.dtype == torch.bool else f" values from {int(x.min())} to {int(x.max())}"))
    return x.to(torch.uint8)


def report_unreadable(skipped: list[str], strict: bool, given_none: bool = False) -> None:
    """predict's unreadable files, as training reports them: an error with strict (--strict-images), else a
    warning naming each (the first 10); an error too when nothing readable is left."""
    if skipped and (strict or given_none):
        how = " (drop --strict-images to skip them)" if strict else "; no readable image was left to classify"
        raise DataError(f"{counted(len(skipped), 'unreadable image')}; first: {skipped[0]}{how}")
    if given_none:
        raise DataError("predict was given no images")
    for msg in skipped[:10]:
        warnings.warn(f"skipped {msg}", stacklevel=4)
    if len(skipped) > 10:
        warnings.warn(f"skipped {len(skipped) - 10} more unreadable images", stacklevel=4)


def expand_image_paths(items: list[str | os.PathLike], strict: bool = False) -> list[str]:
    """Files as given, folders walked as training walks them (image files only, hidden ones skipped, sorted;
    `strict`: walk_images); a missing path is a DataError."""
    files: list[str] = []
    for item in items:
        if not str(item).strip():   # Path("") is the working folder: an empty argument would classify all of it
            raise DataError(f"{item!r}: an empty path; name image files or folders")
        p = Path(item)
        if p.is_dir():
            found = [path for path, _ in walk_images(p, strict)]
            if not found:
                raise DataError(f"{p}: folder holds no image files (.jpg/.png/.bmp/.webp/.gif)")
            files.extend(found)
        elif p.is_file():
            files.append(str(p))
        elif p.exists():
            raise DataError(f"{p}: not a regular file (a FIFO, device or socket); imgclf reads image files only")
        else:
            raise DataError(f"{p}: no such file or folder")
    return files


@python_errors
def load(path: str | Path, model: str | None = None, device: str = "auto", classes: list[str] | None = None,
         image_size: int | None = None, normalize: str = "half", trust_exported: bool = False,
         precision: str = "run") -> Classifier:
    """Load an imgclf checkpoint, a file from `imgclf export` (.onnx, run by onnxruntime, or TorchScript), or a bare
    state_dict (then `model` names the network; `normalize` 'half' is the tutorial's (x-0.5)/0.5, 'none' leaves
    pixels in [0, 1]). A TorchScript file is a program, whatever its name: it is run only with `trust_exported`.
    `precision` 'run' computes as the run tested (its --precision where native here, else fp32: so `imgclf eval`
    reproduces the run's figure on a machine of its kind); or 'fp32', 'auto', 'amp-bf16' (device.inference_dtype).
    An exported file computes in fp32."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    check_image_size(image_size)
    fmt = exported_format(path)
    if fmt == "torchscript" and not trust_exported:
        raise CheckpointError(f"{path}: a TorchScript program, not a checkpoint; its code would run and could read or "
                              "write any file. If you exported it yourself, pass --trust-exported "
                              "(imgclf.load(..., trust_exported=True)); a checkpoint (best.pt) needs no trust")
    if fmt:  # the exported graph stands in for the network; its metadata gives classes, size and normalization
        r, dev = open_exported(path, fmt, device)
    else:
        ckpt = load_checkpoint(path)
        dev = pick_device(device)
        r = rebuild(ckpt, path, model, classes, image_size, normalize)
    clf = Classifier(r.model.to(dev), r.classes, r.model_args, r.mean, r.std, dev, r.tta, str(path), r.config,
                     r.channels_last and dev.type != "mps", r.model_name, r.tta_mirror)
    if not fmt:
        clf.autocast_dtype = inference_dtype(r.config.get("precision", "fp32") if precision == "run" else precision,
                                             dev)
    clf.data_identity = r.data   # so that eval refuses a changed test split (an export's too)
    clf.numbered_classes = r.numbered_classes
    return clf


@python_errors
def predict(checkpoint: str | Path, images: Any, topk: int = 1, **load_args: Any) -> list[dict[str, Any]]:
    """Shortcut: load(checkpoint).predict(images)."""
    return load(checkpoint, **load_args).predict(images, topk=topk)


@python_errors
def evaluate(checkpoint: str | Path, data: str | None = None, data_dir: str | None = None,
             allow_changed_data: bool = False, **load_args: Any) -> dict[str, Any]:
    """Shortcut: load(checkpoint).evaluate(data)."""
    return load(checkpoint, **load_args).evaluate(data, data_dir, allow_changed_data=allow_changed_data)


def train(config: Any = None, *, resume: str | Path | None = None, quiet: bool = False,
          callbacks: Iterable[Any] | None = None, config_file: dict[str, Any] | None = None,
          started: float | None = None, **settings: Any) -> TrainedRun:
    """Train a model and test it (engine/train.py: the settings are TrainConfig's names, as the flags); returns the
    run: its summary dict (also RUN_DIR/summary.json) with the run's methods (trained.py). `resume`: a last.pt to
    continue from (with `epochs`, to more epochs where that is exact)."""
    with keyword_errors():
        return TrainedRun(train_run(config, resume=resume, quiet=quiet, callbacks=callbacks, config_file=config_file,
                                    started=started, **settings))


@python_errors
def show_batch(data: Any, n: int = 16, split: str = "train", seed: int = 0, augmented: bool = False,
               **load_args: Any) -> Any:
    """A matplotlib Figure of `n` images of `data` as `imgclf show` draws them (a split's images with their
    classes, or with `augmented` the first training batch as training sees it)."""
    from .report.plots import grid_figure
    from .showbatch import SHOW_CELL_PX, batch_to_show

    if n < 1:
        raise ConfigError(f"--n {n}: how many images to draw must be at least 1")
    images, titles, what = batch_to_show(data, n, split, seed, augmented, **load_args)
    return grid_figure(images, titles, suptitle=what, cell_px=SHOW_CELL_PX)


__all__ = ["Classifier", "TrainedRun", "evaluate", "load", "predict", "show_batch", "train"]
