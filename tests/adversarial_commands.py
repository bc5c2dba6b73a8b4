"""Adversarial cases on commands and run folders (tests/test_adversarial.py runs them): crafted checkpoints for eval
and predict, settings (flags and --config files), find-lr and show, --resume (other runs' files, changed settings),
predict's inputs, and report and export writing beside runs."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import shutil
import stat
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from adversarial import (
    TINY,
    Case,
    Cases,
    Ctx,
    Result,
    _Evil,
    edit_checkpoint,
    flag_name,
    json_out,
    nothing_left,
    png_claiming,
    require_text,
    run_config,
    save_image,
    short_and_quick,
)
from conftest import torchscript_writer
from PIL import Image

CASES = Cases()
case, simple = CASES.case, CASES.simple


# ----- crafted checkpoints: eval and predict --------------------------------------------------------------------------


def _tensors(edit: Callable[[Any], Any]) -> Callable[[dict], None]:
    def apply(c: dict) -> None:
        c["model"] = {k: edit(v) if v.is_floating_point() else v for k, v in c["model"].items()}
    return apply


def _set(**values: Any) -> Callable[[dict], None]:
    def apply(c: dict) -> None:
        for k, v in values.items():
            if v is _DROP:
                c.pop(k, None)
            else:
                c[k] = v
    return apply


def _args(**values: Any) -> Callable[[dict], None]:
    def apply(c: dict) -> None:
        c["model_args"] = {**c["model_args"], **values}
    return apply


_DROP = object()


def _nan(v: Any) -> Any:
    return v * float("nan")


def _one_nan(c: dict) -> None:
    w = next(k for k in c["model"] if k.endswith("conv1.weight"))
    c["model"][w] = c["model"][w].contiguous().clone()
    c["model"][w].view(-1)[3] = float("nan")


def _drop_key(c: dict) -> None:
    c["model"].pop(next(k for k in c["model"] if k.endswith("conv2.weight")))


def _extra_key(c: dict) -> None:
    import torch

    c["model"]["extra.weight"] = torch.zeros(3)


def _ema_tensor(c: dict) -> None:
    import torch

    c["ema"] = torch.zeros(3)


def _ckpt(edit: Callable[[dict], Any], command: str = "eval", *extra: str) -> Callable[[Ctx], Result]:
    def build(ctx: Ctx) -> Result:
        path = ctx.craft("crafted.pt", edit)
        if command == "predict":
            return ctx.run("predict", path, save_image(ctx.p("img.png"), 8, channels=1), *extra)
        return ctx.run(command, path, *extra)
    return build


NAN = "nan|finite|infinite"
CASES += [
    Case("nan-weights-eval", "checkpoint", "error", _ckpt(_tensors(_nan)), names=NAN,
         what="eval of a checkpoint whose weights are NaN: an error, not a figure"),
    Case("nan-weights-predict", "checkpoint", "error", _ckpt(_tensors(_nan), "predict"), names=NAN,
         what="predict with NaN weights: an error, not a class"),
    Case("inf-weights-eval", "checkpoint", "error", _ckpt(_tensors(lambda v: v * float("inf"))), names=NAN,
         what="eval with infinite weights"),
    Case("one-nan-weight-eval", "checkpoint", "error", _ckpt(_one_nan), names=NAN,
         what="eval with a single NaN in one conv weight"),
    Case("missing-model-name", "checkpoint", "error", _ckpt(_set(model_name=_DROP)), names="model",
         what="a checkpoint without model_name"),
    Case("model-name-unknown", "checkpoint", "error", _ckpt(_set(model_name="resnet99")), names="resnet99",
         what="model_name resnet99"),
    Case("model-name-not-text", "checkpoint", "error", _ckpt(_set(model_name=5)), names="model",
         what="model_name 5"),
    Case("unknown-act", "checkpoint", "error", _ckpt(_args(act="swish")), names="act|swish",
         what="model_args act 'swish'"),
    Case("act-not-text", "checkpoint", "error", _ckpt(_args(act=5)), names="act", what="model_args act 5"),
    Case("absurd-image-size", "checkpoint", "error", _ckpt(_args(image_size=[100000, 100000])), names="size",
         what="model_args image_size 100000×100000: an error before any allocation"),
    Case("absurd-image-size-predict", "checkpoint", "error", _ckpt(_args(image_size=[100000, 100000]), "predict"),
         names="size", what="predict with image_size 100000×100000"),
    Case("zero-image-size", "checkpoint", "error", _ckpt(_args(image_size=[0, 0])), names="size",
         what="image_size 0×0"),
    Case("negative-image-size", "checkpoint", "error", _ckpt(_args(image_size=[-8, -8])), names="size",
         what="image_size -8×-8"),
    Case("image-size-not-numbers", "checkpoint", "error", _ckpt(_args(image_size=["a", "b"])), names="size",
         what="image_size ['a', 'b']"),
    Case("in-channels-mismatch", "checkpoint", "error", _ckpt(_args(in_channels=3)), names="channel|shape|fit|normali",
         what="model_args in_channels 3 for 1-channel weights"),
    Case("future-format-version", "checkpoint", "error", _ckpt(_set(format_version=99)), names="format",
         what="format_version 99"),
    Case("format-version-text", "checkpoint", "error", _ckpt(_set(format_version="1")), names="format",
         what="format_version '1'"),
    Case("weights-not-a-dict", "checkpoint", "error", _ckpt(_set(model=[1, 2])), names="model|weights",
         what="'model' is a list"),
    Case("class-count-mismatch", "checkpoint", "error", _ckpt(_set(classes=["a", "b", "c", "d", "e"])),
         names="class", what="5 class names for 10 outputs"),
    Case("classes-missing", "checkpoint", "error", _ckpt(_set(classes=_DROP)), names="class",
         what="no class names"),
    Case("classes-none-predict", "checkpoint", "error", _ckpt(_set(classes=None), "predict"), names="class",
         what="class names None"),
    Case("normalization-missing", "checkpoint", "error", _ckpt(_set(normalization=_DROP)), names="normali",
         what="no normalization"),
    Case("zero-std", "checkpoint", "error", _ckpt(_set(normalization={"mean": [0.5], "std": [0.0]})),
         names="std|normali", what="normalization std 0 (every input would become inf/NaN)"),
    Case("nan-mean-predict", "checkpoint", "error",
         _ckpt(_set(normalization={"mean": [float("nan")], "std": [0.5]}), "predict"),
         names="mean|normali|nan", what="normalization mean NaN"),
    Case("config-missing-eval", "checkpoint", "error", _ckpt(_set(config=_DROP)), names="data|config",
         what="eval of a checkpoint without its config: an error asking for --data"),
    Case("model-args-missing", "checkpoint", "error", _ckpt(_set(model_args=_DROP)), names="model_args|args",
         what="no model_args"),
    Case("weight-missing", "checkpoint", "error", _ckpt(_drop_key), names="missing", what="a conv weight left out"),
    Case("weight-unexpected", "checkpoint", "error", _ckpt(_extra_key), names="unexpected|extra",
         what="an extra weight"),
    Case("ema-not-a-dict", "checkpoint", "error", _ckpt(_ema_tensor), names="ema", what="'ema' is a tensor"),
]


@case("checkpoint", "either", what="members re-zipped with deflate: loads with the same accuracy, or a clear error")
def compressed_zip_members(ctx: Ctx) -> Result:
    src = ctx.shared.digits_run() / "best.pt"
    dst = ctx.p("deflated.pt")
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info.filename), compress_type=zipfile.ZIP_DEFLATED)
    r = ctx.run("eval", dst, "--json")
    want = json.loads((ctx.shared.digits_run() / "summary.json").read_text())["test_accuracy"]
    res = json_out(r)
    if r.rc == 0 and (not isinstance(res, dict) or res.get("accuracy") != want):
        r.wrong = f"accuracy {res and res.get('accuracy')} where the checkpoint's run measured {want}"
    return r


def _bytes_ckpt(make: Callable[[bytes], bytes], names: str, what: str, name: str) -> None:
    def build(ctx: Ctx) -> Result:
        p = ctx.p("bad.pt")
        p.write_bytes(make((ctx.shared.digits_run() / "best.pt").read_bytes()))
        return ctx.run("eval", p)
    CASES.append(Case(name, "checkpoint", "error", build, names, what))


_bytes_ckpt(lambda b: b[:len(b) // 2], "bad.pt", "a checkpoint cut in half", "truncated")
_bytes_ckpt(lambda b: b"", "bad.pt", "a 0-byte checkpoint", "empty-file")
_bytes_ckpt(lambda b: os.urandom(4096), "bad.pt", "4 KB of random bytes", "random-bytes")


@case("checkpoint", "error", names="refus|code|python objects", what="a .pt whose pickle calls os.system: refused")
def pickled_code(ctx: Ctx) -> Result:
    import torch

    torch.save({"format_version": 1, "model": {}, "payload": _Evil()}, ctx.p("evil.pt"))
    r = ctx.run("eval", ctx.p("evil.pt"))
    if ctx.p("PWNED").exists():
        r.wrong = "the checkpoint's pickled code RAN (PWNED was created)"
    return r


@case("checkpoint", "error", names="best.pt", what="a folder named best.pt")
def checkpoint_is_a_folder(ctx: Ctx) -> Result:
    ctx.p("best.pt").mkdir()
    return ctx.run("eval", ctx.p("best.pt"))


def _bare(ctx: Ctx) -> Path:
    import torch

    state = torch.load(ctx.shared.digits_run() / "best.pt", map_location="cpu", weights_only=True)["model"]
    torch.save(state, ctx.p("bare.pth"))
    return ctx.p("bare.pth")


@case("checkpoint", "error", names="--model", what="predict with a bare state_dict and no --model")
def bare_state_dict_without_model(ctx: Ctx) -> Result:
    return ctx.run("predict", _bare(ctx), save_image(ctx.p("img.png"), 8, channels=1))


@case("checkpoint", "ok", what="control: predict with a bare state_dict and --model fastcnn-tiny")
def bare_state_dict_with_model(ctx: Ctx) -> Result:
    return ctx.run("predict", _bare(ctx), save_image(ctx.p("img.png"), 8, channels=1), "--model", "fastcnn-tiny")


def _huge_shared_classes(c: dict) -> None:
    big: Any = list(range(1000))
    for _ in range(5):
        big = [big] * 10                          # 10^8 numbers in all, a few KB pickled (one object, shared)
    c["classes"] = [big] * 10_000


def _deep_epochs(c: dict) -> None:
    deep: Any = [1]
    for _ in range(60):
        deep = [deep, deep]                       # 60 deep, 2^60 leaves: any full repr never ends
    c["config"] = {**c["config"], "epochs": deep}


def _deep_image_size(c: dict) -> None:
    deep: Any = [8]
    for _ in range(60):
        deep = [deep, deep]
    c["model_args"] = {**c["model_args"], "image_size": deep}


def _bounded(edit: Callable[[dict], Any], command: str, *extra: str) -> Callable[[Ctx], Result]:
    def build(ctx: Ctx) -> Result:
        return short_and_quick(_ckpt(edit, command, *extra)(ctx), ctx)
    return build


CASES += [
    Case("classes-shared-huge-list-predict", "checkpoint", "error", _bounded(_huge_shared_classes, "predict"),
         names="classes", what="classes: 10,000 references to one list of 10^8 numbers: one short line, at once"),
    Case("classes-shared-huge-list-export", "checkpoint", "error",
         _bounded(_huge_shared_classes, "export", "--format", "torchscript", "--out", "m.ts"), names="classes",
         what="... given to export"),
    Case("config-epochs-deeply-nested-eval", "checkpoint", "error", _bounded(_deep_epochs, "eval"), names="epochs",
         what="config.epochs a list nested 60 deep (shared items): one short line, at once"),
    Case("image-size-deeply-nested-eval", "checkpoint", "error", _bounded(_deep_image_size, "eval"),
         names="image_size|size", what="model_args.image_size nested 60 deep: one short line, at once"),
    Case("normalization-1e300-predict", "checkpoint", "error",
         _ckpt(_set(normalization={"mean": [1e300], "std": [1e-300]}), "predict"), names="normali",
         what="normalization mean 1e300, std 1e-300: refused, never a 'nan%' prediction"),
]
simple("checkpoint", "eval-device=cpu:1", lambda ctx: ["eval", ctx.digits_run() / "best.pt", "--device", "cpu:1"],
       names="cpu:1", what="eval --device cpu:1 (there is one CPU device): an error naming it")
simple("checkpoint", "predict-device=cpu:1",
       lambda ctx: ["predict", ctx.digits_run() / "best.pt", save_image(ctx.p("img.png"), 8, channels=1), "--device",
                    "cpu:1"], names="cpu:1", what="predict --device cpu:1")


def _torchscript_writer(path: Path, victim: Path) -> Path:
    """conftest.torchscript_writer for the digits run's 8×8 grayscale input."""
    return torchscript_writer(path, victim, channels=1, classes=10)


def _torchscript_named_pt(command: str) -> Callable[[Ctx], Result]:
    def build(ctx: Ctx) -> Result:
        img = save_image(ctx.p("img.png"), 8, channels=1)
        prog = _torchscript_writer(ctx.p("best.pt"), ctx.p("victim.txt"))
        r = ctx.run(command, prog, *([img] if command == "predict" else []))
        if ctx.p("victim.txt").read_bytes() != b"user data":
            r.wrong = f"the TorchScript program RAN: victim.txt now holds {ctx.p('victim.txt').read_bytes()!r}"
        elif command == "predict":   # control: trusted, such a program does run and write (so the check means it)
            trusted = _torchscript_writer(ctx.p("trusted.pt"), ctx.p("control.txt"))
            c = ctx.cli("predict", trusted, img, "--trust-exported")
            if c.rc != 0 or ctx.p("control.txt").read_bytes() == b"user data":
                r.wrong = (f"the control (the same program run with --trust-exported: exit {c.rc}) wrote nothing, so "
                           "the check proves nothing")
        return r
    return build


CASES += [
    Case("torchscript-named-best-pt-predict", "checkpoint", "error", _torchscript_named_pt("predict"),
         names="--trust-exported", what="a TorchScript program named best.pt, with imgclf's metadata, to predict "
                                        "without --trust-exported: refused naming the flag, its forward never run"),
    Case("torchscript-named-best-pt-eval", "checkpoint", "error", _torchscript_named_pt("eval"),
         names="--trust-exported", what="... to eval: refused naming --trust-exported, its forward never run"),
]


@case("checkpoint", "error", names="onnx", what="an ONNX export renamed m.pt: an error saying it looks like ONNX")
def onnx_named_pt(ctx: Ctx) -> Result:
    if importlib.util.find_spec("onnx"):
        ctx.prep("export", ctx.shared.digits_run() / "best.pt", "--format", "onnx", "--out", "m.onnx")
        ctx.p("m.onnx").rename(ctx.p("m.pt"))
    else:                            # no exporter installed: an ONNX ModelProto's first fields (ir_version 8, producer)
        ctx.p("m.pt").write_bytes(b"\x08\x08\x12\x07pytorch\x1a\x052.5.0")
    return ctx.run("predict", ctx.p("m.pt"), save_image(ctx.p("img.png"), 8, channels=1))


# ----- settings: flags and --config files ---------------------------------------------------------------------------


def train_args(*extra: Any) -> list[Any]:
    return ["train", "--data", "digits", *TINY, "--out", "runs", *extra]


for _flag, _value, _names in [
        ("--lr", "inf", "lr"), ("--lr", "nan", "lr"), ("--lr", "-0.1", "lr"), ("--lr", "0", "lr"),
        ("--momentum", "nan", "momentum"), ("--weight-decay", "nan", "weight.decay"),
        ("--weight-decay", "-1", "weight.decay"), ("--warmup", "inf", "warmup"), ("--warmup", "nan", "warmup"),
        ("--label-smoothing", "nan", "smoothing"), ("--image-size", "0", "image.size"),
        ("--image-size", "1", "image.size"), ("--image-size", "-4", "image.size"),
        ("--image-size", "100000", "image.size"), ("--threads", "-1", "threads"), ("--threads", "100000", "threads"),
        ("--seed", str(2**70), "seed"), ("--seed", "-1", "seed"), ("--epochs", "0", "epochs"),
        ("--batch-size", "0", "batch"), ("--batch-size", "100000", "batch"), ("--eval-every", "0", "eval.every"),
        ("--save-every-steps", "-1", "save.every"), ("--log-every", "-1", "log.every"), ("--cutout", "-1", "cutout"),
        ("--freeze-epochs", "5", "freeze"), ("--val-split", "nan", "val.split"), ("--device", "cuda", "cuda"),
        ("--device", "banana", "banana|device"), ("--device", "cuda:99", "cuda"), ("--model", "resnet99", "resnet99"),
        ("--recipe", "fastest", "recipe"), ("--data", "no/such/folder", "no/such/folder"),
        ("--init-weights", "missing.pt", "missing.pt"), ("--pretrained", None, "pretrained|fastcnn-tiny"),
        ("--out", "afile/runs", "afile|out"), ("--resize", "stretch", "resize")]:
    _args_ = [_flag] if _value is None else [f"{_flag}={_value}"]

    def _build(ctx: Ctx, a: list[str] = _args_) -> Result:
        ctx.p("afile").write_text("not a folder")
        return ctx.run(*train_args(*a))
    CASES.append(Case(flag_name(_args_), "settings", "error", _build,
                      _names, f"train {' '.join(_args_)}: an error naming it, before any work"))

for _flag, _value, _names in [("--lr", "1e308", "lr"), ("--warmup", "1e308", "warmup"),
                              ("--weight-decay", "1e308", "weight.decay"),
                              ("--progressive-size", "100000", "progressive.size")]:
    def _build(ctx: Ctx, a: list[str] = [_flag, _value]) -> Result:   # noqa: B006 (bound per case)
        return nothing_left(ctx.run(*train_args(*a)), ctx.p("runs"))
    CASES.append(Case(flag_name([_flag, _value]), "settings", "error", _build, _names,
                      f"train {_flag} {_value}: an error naming it, no run folder left behind (not even config.yaml)"))

simple("settings", "seed-largest-allowed", train_args("--seed", str(2**63 - 1)), "ok",
       what="the largest seed (2^63-1) trains")
simple("settings", "crop-pad-beyond-image", train_args("--crop-pad", "100"), "either", "crop.pad",
       what="--crop-pad 100 on 8×8 images: trains, or an error naming --crop-pad")
simple("settings", "progressive-on-fixed-size-net",
       train_args("--model", "tutorial-net", "--image-size", "32", "--epochs", "2", "--progressive-size", "8",
                  "--progressive-epochs", "1"),
       names="progressive", what="progressive resizing with a fixed-size network")
simple("settings", "precision-fp16-on-cpu", train_args("--precision", "amp-fp16"), "either", "fp16|precision",
       what="amp-fp16 on a CPU: trains (with a note), or an error naming it")
simple("settings", "data-empty-string", train_args("--data="), names="data|folder|class",
       what="--data '' (the cwd, which holds no class folders)")


@case("settings", "error", names="nan|finite|weights", what="--init-weights from a checkpoint whose weights are NaN")
def init_weights_nan(ctx: Ctx) -> Result:
    ctx.craft("nan.pt", _tensors(_nan))
    return ctx.run(*train_args("--init-weights", "nan.pt"))


@case("settings", "either", what="--name ../escape: a run folder inside --out, or an error naming --name")
def name_escapes_out(ctx: Ctx) -> Result:
    r = ctx.run(*train_args("--name", "../../escape"))
    if r.rc == 0 and not any(ctx.p("runs").rglob("summary.json")):
        r.wrong = "the run folder was made outside --out: " + ", ".join(
            str(p.parent) for p in ctx.dir.parent.rglob("escape*/summary.json"))
    return r


def _config_case(name: str, text: str | bytes, names: str, what: str, expect: str = "error",
                 suffix: str = ".yaml") -> None:
    def build(ctx: Ctx) -> Result:
        p = ctx.p("settings" + suffix)
        p.write_bytes(text if isinstance(text, bytes) else text.encode())
        t = time.perf_counter()
        r = ctx.run(*train_args("--config", p))
        if r.rc != 0 and time.perf_counter() - t > 30:
            r.wrong = f"took {time.perf_counter() - t:.0f}s to refuse it"
        return r
    CASES.append(Case(name, "settings", expect, build, names, what))


_LOL = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi")) + "epochs: *i\n"
for _n, _text, _names, _what in [
        ("config-int-key", "1: 2\n", "name|text|1", "a setting named 1"),
        ("config-bool-key", "true: 2\n", "name|text|true", "a setting named true"),
        ("config-null-key", "null: 2\n", "name|text|none", "a setting named null"),
        ("config-billion-laughs", _LOL, "alias", "YAML billion laughs: refused quickly"),
        ("config-list", "- epochs\n- 1\n", "mapping", "a list, not a mapping"),
        ("config-nested-value", "epochs: {a: 1}\n", "epochs", "epochs: {a: 1}"),
        ("config-unknown-key", "epochz: 1\n", "epochz", "an unknown setting"),
        ("config-inf-lr", "lr: .inf\n", "lr", "lr: .inf"),
        ("config-huge-threads", f"threads: {10**30}\n", "threads", "threads: 10^30"),
        ("config-binary", b"\xff\xfe\x00garbage\x00", "settings.yaml|parse", "binary garbage"),
        ("config-long-value", "epochs: " + "x" * 100_000 + "\n", "epochs", "a 100 KB value (message stays short)")]:
    _config_case(_n, _text, _names, _what)
_config_case("config-bad-toml", "epochs = = 1\n", "settings.toml|parse", "malformed TOML", suffix=".toml")
_config_case("config-duplicate-key", "epochs: 1\nlr: 0.1\nepochs: 5\n", "epochs.*(twice|duplicate)",
             "a YAML key given twice (epochs): an error naming it, not the last one silently winning")


@case("settings", "ok", what="a config file named x.TOML is read as TOML (its lr 0.05 and name used), not as YAML")
def config_upper_case_toml(ctx: Ctx) -> Result:
    ctx.p("x.TOML").write_text('lr = 0.05\nname = "tomlrun"\n')
    r = ctx.run(*train_args("--config", "x.TOML"))
    if r.rc == 0:
        run = ctx.p("runs", "tomlrun")
        lr = run_config(run).get("lr") if run.is_dir() else None
        if lr != 0.05:
            found = f"runs/tomlrun has lr {lr}" if run.is_dir() else "no runs/tomlrun"
            r.wrong = f"x.TOML's settings were not used: {found}"
    return r


simple("settings", "config-missing-file", train_args("--config", "nope.yaml"), names="nope.yaml",
       what="--config of a missing file")


@case("settings", "error", names="cfgdir", what="--config of a folder")
def config_is_a_folder(ctx: Ctx) -> Result:
    ctx.p("cfgdir.yaml").mkdir()
    return ctx.run(*train_args("--config", "cfgdir.yaml"))


@case("settings", "ok", what="a run's own config.yaml is accepted by --config: a new run NAME-2, the old one untouched")
def config_is_a_runs_own_config_yaml(ctx: Ctx) -> Result:
    run = ctx.digits_run()
    r = ctx.run("train", "--config", run / "config.yaml")
    if r.rc == 0 and not ctx.p("runs", "digits-2", "summary.json").is_file():
        r.wrong = "no new run folder runs/digits-2 with a summary.json"
    return r


@case("settings", "ok", what="... and with flags on top (--epochs 1 --name again)")
def config_own_config_yaml_with_flags(ctx: Ctx) -> Result:
    run = ctx.digits_run()
    r = ctx.run("train", "--config", run / "config.yaml", "--epochs", "1", "--name", "again")
    if r.rc == 0 and not ctx.p("runs", "again", "summary.json").is_file():
        r.wrong = "no new run folder runs/again"
    return r


# ----- find-lr and show ---------------------------------------------------------------------------------------------

for _args_, _names in [(["--steps", "0"], "steps"), (["--steps", "-5"], "steps"), (["--min-lr", "0"], "min.lr"),
                       (["--min-lr=-1"], "min.lr"), (["--min-lr", "nan"], "min.lr"), (["--max-lr", "inf"], "max.lr"),
                       (["--max-lr", "nan"], "max.lr"), (["--min-lr", "1", "--max-lr", "0.1"], "max.lr")]:
    simple("find-lr", "find-lr-" + flag_name(_args_),
           ["find-lr", "--model", "fastcnn-tiny", *_args_, "--out", "lr"], names=_names,
           what=f"find-lr {' '.join(_args_)}: an error naming it, no run folder")


@case("find-lr", "error", names="steps", what="find-lr --steps 1: an error naming --steps (it suggested an lr below "
                                              "--min-lr), no plot folder")
def find_lr_steps_1(ctx: Ctx) -> Result:
    return nothing_left(ctx.run("find-lr", "--model", "fastcnn-tiny", "--steps", "1", "--out", "lr"), ctx.p("lr"),
                        "a plot folder")


@case("find-lr", "ok", what="find-lr twice with one --name: lr/x and lr/x-2, the first plot untouched")
def find_lr_twice(ctx: Ctx) -> Result:
    cmd = ("find-lr", "--model", "fastcnn-tiny", "--steps", "5", "--batch-size", "32", "--out", "lr", "--name", "x")
    ctx.prep(*cmd)
    r = ctx.run(*cmd)
    if r.rc == 0 and not ctx.p("lr", "x-2", "lr_find.png").is_file():
        r.wrong = "no lr/x-2/lr_find.png"
    return r


for _args_, _names in [(["--n", "-1"], "--n"), (["--n", "0"], "--n"), (["--seed", str(2**70)], "seed"),
                       (["--image-size", "0"], "image.size"), (["--image-size", "100000"], "image.size"),
                       (["--augmented", "--n", "-1"], "--n"), (["--data", "no-such-data"], "no-such-data")]:
    simple("show", "show-" + flag_name(_args_), ["show", "--data", "digits", *_args_],
           names=_names, what=f"show {' '.join(_args_)}: an error naming it")
simple("show", "show-n-more-than-images", ["show", "--data", "digits", "--n", "100000", "--out", "g.png"], "ok",
       what="--n 100000 draws every image, promptly")
simple("show", "show-split-val", ["show", "--data", "digits", "--split", "val", "--out", "g.png"], "ok",
       what="control: the val hold-out")


@case("show", "error", names="adir", what="--out naming an existing folder")
def show_out_is_a_folder(ctx: Ctx) -> Result:
    ctx.p("adir").mkdir()
    return ctx.run("show", "--data", "digits", "--out", "adir")


# ----- --resume and run folders -------------------------------------------------------------------------------------

OTHER_RUN = "belongs to|another run|other run|overwrite"


def _into_other_run(prepare: Callable[[Path], Any], as_name: str = "mine.pt") -> Callable[[Ctx], Result]:
    def build(ctx: Ctx) -> Result:
        a, b = ctx.digits_run("a"), ctx.other_run("b")
        prepare(b)
        shutil.copy(a / "last.pt", b / as_name)
        return ctx.run("train", "--resume", b / as_name)
    return build


CASES += [
    Case("last-pt-copied-over-other-runs-last-pt", "resume", "error", _into_other_run(lambda b: None, "last.pt"),
         OTHER_RUN, "run A's last.pt copied over run B's last.pt, resumed: refused, B untouched"),
    Case("last-pt-copied-into-other-run", "resume", "error", _into_other_run(lambda b: None), OTHER_RUN,
         "run A's last.pt copied into B's folder as mine.pt: refused, B untouched"),
    Case("other-run-without-config-yaml", "resume", "error",
         _into_other_run(lambda b: (b / "config.yaml").unlink()), OTHER_RUN,
         "... into a folder of B whose config.yaml is gone (B's checkpoints say whose it is): refused"),
    Case("other-run-with-damaged-config-yaml", "resume", "error",
         _into_other_run(lambda b: (b / "config.yaml").write_text("{{{ not yaml")), OTHER_RUN,
         "... whose config.yaml is damaged: refused"),
    Case("other-run-config-without-run-id", "resume", "error",
         _into_other_run(lambda b: (b / "config.yaml").write_text(
             re.sub(r"(?m)^run_id: .*\n", "", (b / "config.yaml").read_text()))), OTHER_RUN,
         "... whose config.yaml records no run id: refused"),
]


def _users_folder(name: str, text: str) -> Callable[[Ctx], Result]:
    def build(ctx: Ctx) -> Result:
        mine = ctx.p("mine")
        mine.mkdir()
        (mine / name).write_text(text)
        shutil.copy(ctx.shared.digits_run() / "last.pt", mine / "last.pt")
        r = ctx.run("train", "--resume", mine / "last.pt", protect=(mine,))
        if (mine / name).read_text() != text:
            r.wrong = f"the user's own {name} was replaced"
        elif sorted(p.name for p in mine.iterdir()) != sorted([name, "last.pt"]):
            r.wrong = f"files appeared in the user's folder: {sorted(p.name for p in mine.iterdir())}"
        return r
    return build


CASES += [
    Case("last-pt-copied-beside-users-config-yaml", "resume", "error",
         _users_folder("config.yaml", "epochs: 3\nlr: 0.05\n# my own settings, no run id\n"), OTHER_RUN,
         "a run's last.pt copied into a folder holding the user's own config.yaml: refused, the file untouched"),
    Case("last-pt-copied-beside-users-summary-json", "resume", "error",
         _users_folder("summary.json", '{"mine": 1}\n'), OTHER_RUN,
         "... beside the user's own summary.json (no config.yaml): refused, the file untouched"),
]


@case("resume", "error", names="last.pt|further", what="resume from a best.pt older than the folder's last.pt")
def best_older_than_last(ctx: Ctx) -> Result:
    a = ctx.digits_run("a")
    edit_checkpoint(a / "best.pt", a / "best.pt", lambda c: c.update(global_step=1))
    return ctx.run("train", "--resume", a / "best.pt")


for _args_, _names in [(["--lr", "0.5"], "--lr"), (["--epochs", "3"], "--epochs"),
                       (["--lr", "0.5", "--batch-size", "7"], "--lr.*--batch-size|--batch-size.*--lr"),
                       (["--model", "mlp"], "--model"), (["--data", "mnist"], "--data"),
                       (["--name", "other"], "--name"),
                       (["--out", "elsewhere"], "--out"), (["--seed", "3"], "--seed"),
                       (["--image-size", "16"], "--image-size")]:
    def _resume_flags(ctx: Ctx, a: list[str] = _args_) -> Result:
        run = ctx.digits_run()
        return ctx.run("train", "--resume", run / "last.pt", *a)
    CASES.append(Case("changed-" + "-".join(a[2:] for a in _args_[::2]), "resume", "error", _resume_flags, _names,
                      f"--resume with {' '.join(_args_)}: an error naming the flag(s), run untouched"))


@case("resume", "error", names="lr", what="--resume with a --config file that changes lr: an error naming lr")
def changed_by_config_file(ctx: Ctx) -> Result:
    run = ctx.digits_run()
    ctx.p("c.yaml").write_text("lr: 0.5\n")
    return ctx.run("train", "--resume", run / "last.pt", "--config", "c.yaml")


@case("resume", "ok", what="--resume with the run's own config.yaml as --config")
def own_config_yaml(ctx: Ctx) -> Result:
    run = ctx.digits_run()
    return ctx.run("train", "--resume", run / "last.pt", "--config", run / "config.yaml", writes=(run,))


@case("resume", "ok", what="--resume with the flags that may change (--threads --log-every --save-every-steps "
                           "--no-plots --device cpu)")
def allowed_flags(ctx: Ctx) -> Result:
    run = ctx.digits_run()
    return ctx.run("train", "--resume", run / "last.pt", "--threads", "1", "--log-every", "5", "--save-every-steps",
                   "3", "--no-plots", "--device", "cpu", writes=(run,))


@case("resume", "ok", what="--resume repeating a setting at its recorded value (--lr as saved)")
def same_value_flag(ctx: Ctx) -> Result:
    run = ctx.digits_run()
    return ctx.run("train", "--resume", run / "last.pt", "--lr", repr(run_config(run)["lr"]), writes=(run,))


@case("resume", "ok", what="resuming a finished run re-tests it: the same test accuracy as recorded")
def finished_run_retested(ctx: Ctx) -> Result:
    run = ctx.digits_run()
    before = json.loads((run / "summary.json").read_text())["test_accuracy"]
    r = ctx.run("train", "--resume", run / "last.pt", writes=(run,))
    after = json.loads((run / "summary.json").read_text())["test_accuracy"]
    if r.rc == 0 and after != before:
        r.wrong = f"test accuracy {after} after resuming, {before} recorded"
    return r


@case("resume", "error", names="state_dict", what="--resume from a bare state_dict")
def bare_state_dict(ctx: Ctx) -> Result:
    return ctx.run("train", "--resume", _bare(ctx))


simple("resume", "missing-file", ["train", "--resume", "runs/nope/last.pt"], names="nope", what="--resume of no file")


@case("resume", "ok", what="a copy of a whole run folder resumes in the copy; the original untouched")
def whole_folder_copy(ctx: Ctx) -> Result:
    a = ctx.digits_run("a")
    shutil.copytree(a, ctx.p("runs", "a-copy"))
    return ctx.run("train", "--resume", ctx.p("runs", "a-copy", "last.pt"), writes=(ctx.p("runs", "a-copy"),))


@case("resume", "ok", what="a renamed run folder resumes in place")
def renamed_run_folder(ctx: Ctx) -> Result:
    a = ctx.digits_run("a")
    a.rename(ctx.p("runs", "renamed"))
    return ctx.run("train", "--resume", ctx.p("runs", "renamed", "last.pt"), writes=(ctx.p("runs", "renamed"),))


@case("resume", "ok", what="a last.pt alone in an empty folder resumes there")
def lone_checkpoint(ctx: Ctx) -> Result:
    ctx.p("lone").mkdir()
    shutil.copy(ctx.shared.digits_run() / "last.pt", ctx.p("lone", "last.pt"))
    return ctx.run("train", "--resume", ctx.p("lone", "last.pt"), writes=(ctx.p("lone"),))


@case("resume", "error", names="last.pt", what="resume from best.pt beside a damaged last.pt: an error naming it")
def damaged_last_beside_best(ctx: Ctx) -> Result:
    a = ctx.digits_run("a")
    (a / "last.pt").write_bytes((a / "last.pt").read_bytes()[:1000])
    return ctx.run("train", "--resume", a / "best.pt")


@case("resume", "error", names=NAN, what="resume from a last.pt with NaN weights: refused; the run's summary kept")
def nan_weights_last(ctx: Ctx) -> Result:
    a = ctx.digits_run("a")
    edit_checkpoint(a / "last.pt", a / "last.pt", _tensors(_nan))
    return ctx.run("train", "--resume", a / "last.pt")


@case("resume", "ok", what="--resume --print-config prints the settings and writes nothing")
def print_config(ctx: Ctx) -> Result:
    run = ctx.digits_run()
    return require_text(ctx.run("train", "--resume", run / "last.pt", "--print-config"), "fastcnn-tiny")


# ----- predict ------------------------------------------------------------------------------------------------------


def _predict(prepare: Callable[[Ctx, Path], list[Any]], *extra: str, require: tuple[str, ...] = ()
             ) -> Callable[[Ctx], Result]:
    def build(ctx: Ctx) -> Result:
        run = ctx.digits_run()
        folder = ctx.p("imgs")
        for i in range(2):
            save_image(folder / f"good{i}.png", 8, seed=i, channels=1)
        targets = prepare(ctx, folder)
        return require_text(ctx.run("predict", run / "best.pt", *targets, *extra), *require)
    return build


def _with_broken(ctx: Ctx, folder: Path) -> list[Any]:
    (folder / "broken.png").write_bytes(b"not a png")
    return [folder]


def _write(name: str, data: bytes) -> Callable[[Ctx, Path], list[Any]]:
    def prepare(ctx: Ctx, folder: Path) -> list[Any]:
        (folder / name).write_bytes(data)
        return [folder / name]
    return prepare


def _truncated_jpeg(ctx: Ctx, folder: Path) -> list[Any]:
    save_image(folder / "t.jpg", 64, quality=90)
    (folder / "t.jpg").write_bytes((folder / "t.jpg").read_bytes()[:300])
    return [folder / "t.jpg"]


def _empty_folder(ctx: Ctx, folder: Path) -> list[Any]:
    ctx.p("empty").mkdir()
    return [ctx.p("empty")]


CASES += [
    Case("unreadable-file-in-folder", "predict", "ok", _predict(_with_broken, require=("broken.png", "good0.png")),
         what="a folder with an unreadable file: the others predicted, the bad one skipped with a warning naming it"),
    Case("unreadable-file-strict", "predict", "error", _predict(_with_broken, "--strict-images"), names="broken.png",
         what="... with --strict-images: an error naming the file"),
    Case("empty-folder", "predict", "error", _predict(_empty_folder), names="empty", what="a folder with no images"),
    Case("missing-path", "predict", "error", _predict(lambda c, f: [f / "nope.png"]), names="nope.png",
         what="a path that does not exist"),
    Case("zero-byte-file", "predict", "error", _predict(_write("zero.png", b"")), names="zero.png",
         what="a 0-byte image named on the command line"),
    Case("text-file", "predict", "error", _predict(_write("notes.txt", b"hello")), names="notes.txt",
         what="a text file named on the command line"),
    Case("decompression-bomb", "predict", "error", _predict(lambda c, f: [png_claiming(f / "bomb.png", 50000, 50000)]),
         names="bomb.png", what="a PNG claiming 50000×50000 pixels"),
    Case("truncated-jpeg", "predict", "error", _predict(_truncated_jpeg), names="t.jpg", what="a JPEG cut short"),
    Case("topk-negative", "predict", "error", _predict(lambda c, f: [f], "--topk", "-1"), names="topk",
         what="--topk -1: an error, not a silent top-1"),
    Case("topk-zero", "predict", "error", _predict(lambda c, f: [f], "--topk", "0"), names="topk",
         what="--topk 0"),
    Case("topk-more-than-classes", "predict", "ok", _predict(lambda c, f: [f], "--topk", "1000"),
         what="--topk 1000 lists the 10 classes"),
    Case("csv-into-missing-folder", "predict", "error", _predict(lambda c, f: [f], "--csv", "no/dir/p.csv"),
         names="p.csv", what="--csv into a folder that does not exist"),
    Case("symlink-loop-folder", "predict", "ok", _predict(lambda c, f: (os.symlink("..", f / "loop"), [f])[1]),
         what="a folder containing a symlink loop"),
    Case("eloop-in-folder", "predict", "either", _predict(lambda c, f: (os.symlink("x.png", f / "x.png"), [f])[1]),
         names="x.png|loop", what="x.png -> x.png in the folder: skipped, or an error naming it"),
    Case("rgba-on-gray-model", "predict", "ok",
         _predict(lambda c, f: [save_image(f / "rgba.png", 20).parent / "rgba.png"]),
         what="a colour image for a grayscale model"),
    Case("device-cuda-without-gpu", "predict", "error", _predict(lambda c, f: [f], "--device", "cuda"),
         names="cuda", what="--device cuda with no GPU"),
    Case("non-utf8-file-name", "predict", "either",
         _predict(lambda c, f: (shutil.copy(f / "good0.png", os.fsencode(f) + b"/\xff.png"), [f])[1]),
         what="a file name that is not UTF-8: predicted, or a clear error"),
]


@case("predict", "error", names="empty", what="predict CKPT '' (an empty path): an error, not the working folder's "
                                              "images classified")
def empty_path(ctx: Ctx) -> Result:
    save_image(ctx.p("cwd.png"), 8, channels=1)          # what classifying the working folder would find
    return ctx.run("predict", ctx.digits_run() / "best.pt", "")


def _strip(width: int) -> Callable[[Ctx], Result]:
    def build(ctx: Ctx) -> Result:
        _, run = ctx.folder_run("a", "shapes", "--image-size", "32")   # a 32-px crop of it: 32 × 32·width scaled
        # not save_image: it draws a square of width² pixels first
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (1, width), np.uint8)).save(ctx.p("strip.png"))
        r = ctx.run("predict", run / "best.pt", ctx.p("strip.png"))
        if r.rc is not None and r.seconds > 30:
            r.wrong = f"took {r.seconds:.0f}s for one strip"
        return r
    return build


CASES += [
    Case("strip-1x100000", "predict", "either", _strip(100_000), names="strip.png",
         what="a PNG 1 px high, 100,000 wide, to a 32-px model: predicted (or an error naming it), promptly"),
    Case("strip-1x1000000", "predict", "either", _strip(1_000_000), names="strip.png",
         what="... 1,000,000 wide (scaled whole before the crop, it was an internal error)"),
]


def _brightness_meter(c: dict) -> None:
    """A colour mlp made a light meter: its logits are dark 4 - 8m and light 0, m the input's mean pixel in [0, 1]
    (normalization 0/1, no TTA), so predict's p(dark) = sigmoid(4 - 8m) gives m back."""
    import torch

    w = {k: torch.zeros_like(v) for k, v in c["model"].items()}
    w["layers.0.weight"][0] = 1 / w["layers.0.weight"].shape[1]
    w["layers.2.weight"][0, 0] = 1
    w["layers.4.weight"][0, 0] = -8
    w["layers.4.bias"][0] = 4
    c.update(model=w, ema=None, tta=False, tta_mirror=False, classes=["dark", "light"],
             normalization={"mean": [0.0] * 3, "std": [1.0] * 3})


@case("predict", "ok", what="16-bit grayscale PNGs to a colour model: a full-range gradient is seen at mean 0.5 "
                            "(not clipped to 0.92), one spanning 0-255 of 65535 at ~0 (not 0.5); 8-bit grey 64 at 0.25")
def sixteen_bit_brightness_colour_model(ctx: Ctx) -> Result:
    from adversarial_data import ramp16

    ctx.folder_run("a", "shapes", "--model", "mlp")
    meter = ctx.p("meter.pt")
    edit_checkpoint(ctx.p("a", "runs", "r", "best.pt"), meter, _brightness_meter)
    want = {"ramp.png": 0.5, "dim.png": 0.5 / 255, "grey64.png": 64 / 255}
    Image.fromarray(ramp16()).save(ctx.p("ramp.png"))
    Image.fromarray(ramp16(top=255)).save(ctx.p("dim.png"))
    Image.fromarray(np.full((12, 12), 64, np.uint8)).save(ctx.p("grey64.png"))
    r = ctx.run("predict", meter, *map(ctx.p, want), "--topk", "2", "--json")
    res = json_out(r)
    if r.rc == 0:
        seen = {}
        for item in res if isinstance(res, list) else []:
            p = min(max(next(t["probability"] for t in item["topk"] if t["class"] == "dark"), 1e-6), 1 - 1e-6)
            seen[Path(item["file"]).name] = (4 - math.log(p / (1 - p))) / 8
        bad = [f"{f} at {seen.get(f, float('nan')):.3f} (right: {m:.3f})" for f, m in want.items()
               if not abs(seen.get(f, float("nan")) - m) < 0.03]
        if bad:
            r.wrong = "mean brightness seen by the model: " + "; ".join(bad)
    return r


def _csv_node(make: Callable[[Path], Any], check: Callable[[Path], str | None]) -> Callable[[Ctx], Result]:
    def build(ctx: Ctx) -> Result:
        node = ctx.p("p.csv")
        ctx.p("target.csv").write_text("mine\n")
        make(node)
        r = ctx.run("predict", ctx.digits_run() / "best.pt", save_image(ctx.p("img.png"), 8, channels=1), "--csv",
                    node, "--force")
        r.wrong = check(node) or r.wrong
        return r
    return build


def _still_fifo(node: Path) -> str | None:
    return None if stat.S_ISFIFO(os.lstat(node).st_mode) else "the FIFO p.csv was replaced by a regular file"


def _still_link(node: Path) -> str | None:
    if not node.is_symlink():
        return "the symbolic link p.csv was replaced by a regular file"
    if node.with_name("target.csv").read_text() != "mine\n":
        return "the link's target was written"
    return None


CASES += [
    Case("csv-fifo-force", "predict", "error", _csv_node(os.mkfifo, _still_fifo), names="p.csv",
         what="--csv naming a FIFO, with --force: refused (it never blocks), the FIFO left a FIFO"),
    Case("csv-symlink-force", "predict", "error", _csv_node(lambda n: os.symlink("target.csv", n), _still_link),
         names="p.csv", what="--csv naming a symbolic link, with --force: refused, the link and its target untouched"),
]


@case("predict", "ok", what="a FIFO named pipe.png in a folder given to predict: named in a warning and skipped")
def fifo_in_folder(ctx: Ctx) -> Result:
    save_image(ctx.p("imgs", "good.png"), 8, channels=1)
    os.mkfifo(ctx.p("imgs", "pipe.png"))
    return require_text(ctx.run("predict", ctx.digits_run() / "best.pt", ctx.p("imgs")), "pipe.png", "good.png")


# ----- report and export: run folders written by other commands ------------------------------------------------------


@case("report", "ok", what="report on a run rewrites its report.html and nothing else")
def report_of_a_run(ctx: Ctx) -> Result:
    run = ctx.digits_run()
    return ctx.run("report", run, writes=(run / "report.html",))


@case("report", "ok", what="a comparison of two runs: the page, and each run's report.html only")
def report_compare_two(ctx: Ctx) -> Result:
    a, b = ctx.digits_run("a"), ctx.other_run("b")
    return ctx.run("report", a, b, "--out", "cmp.html", writes=(a / "report.html", b / "report.html"))


@case("report", "error", names="run report|report of", what="report A B --out A/report.html --force: refused (the "
                                                            "comparison would replace A's own report), A untouched")
def report_compare_out_is_runs_own_report(ctx: Ctx) -> Result:
    a, b = ctx.digits_run("a"), ctx.other_run("b")
    ctx.prep("report", a)
    before = (a / "report.html").read_bytes()
    r = ctx.run("report", a, b, "--out", a / "report.html", "--force")
    if (a / "report.html").read_bytes() != before:
        r.wrong = "A's report.html was replaced"
    return r


simple("report", "report-not-a-run", ["report", "."], names="summary.json", what="report on a folder that is no run")


def _report_damaged(name: str, text: str, names: str, what: str, expect: str = "error") -> None:
    def build(ctx: Ctx) -> Result:
        run = ctx.digits_run()
        (run / name).write_text(text)
        return ctx.run("report", run, writes=(run / "report.html",))
    CASES.append(Case(f"report-{name.replace('.', '-')}-{what.split()[0]}", "report", expect, build, names, what))


_report_damaged("summary.json", "{not json", "summary.json", "garbage summary.json")
_report_damaged("summary.json", "[1, 2]", "summary.json", "list summary.json (not an object)")
_report_damaged("metrics.csv", "\x00\x01garbage\n1,2,3\n", "metrics.csv", "garbage metrics.csv: a report, or an error",
                "either")
_report_damaged("steps.csv", "step,loss\nx,y\n", "steps.csv", "malformed steps.csv: a report, or an error", "either")


@case("export", "ok", what="control: export --format torchscript beside the checkpoint")
def export_torchscript(ctx: Ctx) -> Result:
    run = ctx.digits_run()
    return ctx.run("export", run / "best.pt", "--format", "torchscript", "--out", "model.ts")


@case("export", "error", names="exists|--force", what="a second export onto the same file: refused, the file kept")
def export_twice(ctx: Ctx) -> Result:
    run = ctx.digits_run()
    ctx.prep("export", run / "best.pt", "--format", "torchscript", "--out", "out/model.ts")
    (ctx.p("out") / "summary.json").write_text("{}")        # makes out/ a watched folder
    return ctx.run("export", run / "best.pt", "--format", "torchscript", "--out", "out/model.ts")


@case("export", "error", names="being exported|exists|--force",
      what="export --out onto the run's best.pt: refused (it is the checkpoint being exported), run untouched")
def export_over_best_pt(ctx: Ctx) -> Result:
    run = ctx.digits_run()
    return ctx.run("export", run / "best.pt", "--format", "torchscript", "--out", run / "best.pt")


@case("export", "error", names="state_dict|checkpoint|bare", what="export of a bare state_dict")
def export_bare_state_dict(ctx: Ctx) -> Result:
    return ctx.run("export", _bare(ctx), "--format", "torchscript")


@case("export", "error", names="nan|finite", what="export of a checkpoint whose weights are NaN")
def export_nan_weights(ctx: Ctx) -> Result:
    return ctx.run("export", ctx.craft("nan.pt", _tensors(_nan)), "--format", "torchscript")


# Variants of the default cases (another bad value of the same flag, the same defect in another file): run with
# ADVERSARIAL_ALL=1.
VARIANTS = set("""
checkpoint/model-name-unknown checkpoint/model-name-not-text checkpoint/act-not-text
checkpoint/absurd-image-size-predict checkpoint/negative-image-size checkpoint/image-size-not-numbers
checkpoint/in-channels-mismatch checkpoint/format-version-text checkpoint/weights-not-a-dict
checkpoint/classes-none-predict checkpoint/nan-mean-predict checkpoint/weight-missing checkpoint/weight-unexpected
checkpoint/empty-file checkpoint/random-bytes checkpoint/checkpoint-is-a-folder checkpoint/bare-state-dict-with-model
checkpoint/inf-weights-eval checkpoint/classes-missing checkpoint/truncated checkpoint/future-format-version
checkpoint/model-args-missing settings/lr=-0.1 settings/lr=0 settings/lr=nan settings/weight-decay=nan
settings/warmup=nan settings/label-smoothing=nan settings/image-size=1 settings/threads=100000 settings/seed=-1
settings/batch-size=0 settings/eval-every=0 settings/cutout=-1 settings/freeze-epochs=5 settings/val-split=nan
settings/device=banana settings/device=cuda:99 settings/model=resnet99 settings/recipe=fastest
settings/init-weights=missing.pt settings/pretrained settings/resize=stretch settings/precision-fp16-on-cpu
settings/data-empty-string settings/threads=-1 settings/epochs=0 settings/batch-size=100000 settings/log-every=-1
settings/device=cuda settings/config-bool-key settings/config-null-key settings/config-nested-value
settings/config-inf-lr settings/config-huge-threads settings/config-missing-file settings/config-is-a-folder
settings/config-list settings/config-binary settings/config-own-config-yaml-with-flags find-lr/find-lr-steps=-5
find-lr/find-lr-min-lr=-1 find-lr/find-lr-min-lr=nan find-lr/find-lr-max-lr=nan find-lr/find-lr-min-lr=1-max-lr=0.1
show/show-n=0 show/show-augmented-n=-1 show/show-data=no-such-data show/show-n-more-than-images show/show-split-val
resume/changed-epochs resume/changed-model resume/changed-name resume/changed-out resume/changed-seed
resume/changed-image-size resume/changed-data resume/other-run-config-without-run-id resume/same-value-flag
resume/missing-file resume/renamed-run-folder resume/lone-checkpoint resume/print-config resume/bare-state-dict
predict/missing-path predict/text-file predict/truncated-jpeg predict/topk-zero predict/topk-more-than-classes
predict/symlink-loop-folder predict/rgba-on-gray-model predict/device-cuda-without-gpu report/report-compare-two
report/report-not-a-run report/report-summary-json-garbage report/report-steps-csv-malformed export/export-torchscript
export/export-bare-state-dict export/export-nan-weights
checkpoint/classes-shared-huge-list-export checkpoint/image-size-deeply-nested-eval checkpoint/predict-device=cpu:1
settings/weight-decay=1e308 predict/fifo-in-folder
resume/last-pt-copied-beside-users-summary-json
""".split())  # noqa: SIM905 (105 names: a list of quoted strings reads worse)
