"""`imgclf export`: every registry model in both formats gives imgclf's own logits on real (or generated) images,
the files carry their metadata and run without imgclf, predict/eval accept them, the missing ONNX extra is one line;
the README's onnxruntime snippet, run as written, gives `imgclf predict`'s class on every image of many kinds.

Parity tolerance everywhere: rtol 1e-4 and atol 1e-4 on logits (imgclf.export.RTOL/ATOL), 1e-4 on the probabilities
that `imgclf predict --json` prints (rounded to 6 decimals); classes and accuracy must be identical."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_image_folder

import imgclf
from imgclf.checkpoint import save_checkpoint
from imgclf.checkpoint.format import model_args, new_checkpoint
from imgclf.cli import main
from imgclf.data.batches import Normalizer
from imgclf.data.images import decode_image
from imgclf.data.split import Split, channel_stats
from imgclf.engine.evaluate import predict_logits
from imgclf.errors import ImgclfError
from imgclf.export import ATOL, RTOL, ExportError, MissingExtraError, export_model, sidecar_path
from imgclf.models import build_model

CLASSES = [f"class{i}" for i in range(10)]
# (model, C×H×W): the registry at the two input kinds imgclf trains on; mlp and the tutorial nets fix their size.
CASES = [("tutorial-net", (3, 32, 32)), ("tutorial-net", (1, 28, 28)), ("tutorial-classifier", (3, 32, 32)),
         ("mlp", (1, 28, 28)), ("resnet18", (3, 32, 32)), ("fastcnn", (3, 32, 32)), ("fastcnn-small", (1, 28, 28)),
         ("fastcnn-tiny", (3, 32, 32))]
DYNAMIC = {"tutorial-net", "mlp", "resnet18", "fastcnn-tiny"}  # ONNX with --dynamic-batch; the others a fixed batch


def needs_onnx() -> None:
    for name in ("onnx", "onnxruntime", "onnxscript"):
        pytest.importorskip(name, reason="the onnx extra is not installed: pip install -e '.[onnx]'")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "imgclf", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def image_files(request, tmp_path_factory) -> list[Path]:
    """12 real CIFAR-10 JPEGs (of 10 classes) where the shared data exists, else generated PNGs; each test decodes
    them to its model's shape."""
    try:
        root = request.getfixturevalue("cifar_jpeg_subset") / "test"
    except pytest.skip.Exception:
        root = make_image_folder(tmp_path_factory.mktemp("gen"), classes=("a", "b", "c", "d"), per_class=6, size=32)
    return sorted(p for p in root.rglob("*") if p.is_file())[::8][:12]


def decode(files: list[Path], shape: tuple[int, int, int]) -> torch.Tensor:
    c, h, w = shape
    return torch.from_numpy(np.stack([decode_image(f, (h, w), "L" if c == 1 else "RGB") for f in files]))


def make_checkpoint(path: Path, name: str, shape: tuple[int, int, int], images: torch.Tensor) -> Path:
    """An imgclf checkpoint (the fields `imgclf.load` reads) of a seeded model that has seen the images: data-based
    whitening for fastcnn, and BatchNorm running statistics moved off their defaults by a train-mode pass."""
    torch.manual_seed(0)
    model = build_model(name, shape[0], len(CLASSES), shape[1:])
    mean, std = channel_stats(images)
    x = Normalizer(mean, std, "cpu")(images)
    if hasattr(model, "init_from_data"):
        model.init_from_data(x)
    model.train()
    with torch.no_grad():
        model(x)
    ckpt = new_checkpoint({"model_name": name, "model_args": model_args(model, shape, len(CLASSES)),
                           "model": model.state_dict(), "ema": None, "classes": CLASSES, "dataset": "test",
                           "normalization": {"mean": mean, "std": std}, "tta": False, "tta_mirror": False,
                           "channels_last": False, "config": {}, "data": None})
    return save_checkpoint(ckpt, path)


def logits(path: Path, images: torch.Tensor) -> torch.Tensor:
    clf = imgclf.load(path, device="cpu", trust_exported=True)   # our own exports
    return predict_logits(clf.model, Split(images, torch.zeros(len(images), dtype=torch.int64)), clf.normalize,
                          clf.device)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize(("name", "shape"), CASES, ids=[f"{n}-{'x'.join(map(str, s))}" for n, s in CASES])
@pytest.mark.slow
def test_every_model_exports_with_imgclf_logits(name, shape, fmt, image_files, tmp_path):
    if fmt == "onnx":
        needs_onnx()
    images = decode(image_files, shape)
    ckpt = make_checkpoint(tmp_path / "best.pt", name, shape, images)
    out = export_model(ckpt, fmt, dynamic_batch=name in DYNAMIC)
    assert out == tmp_path / ("best.onnx" if fmt == "onnx" else "best.torchscript.pt")
    expected, got = logits(ckpt, images), logits(out, images)
    assert got.shape == (len(images), len(CLASSES))
    torch.testing.assert_close(got, expected, rtol=RTOL, atol=ATOL)
    meta = json.loads((tmp_path / f"{out.name}.json").read_text())
    assert meta["model_name"] == name and meta["input_shape"] == list(shape) and meta["classes"] == CLASSES
    assert meta["batch_size"] == (None if name in DYNAMIC or fmt == "torchscript" else 1)


@pytest.mark.slow
def test_files_run_without_imgclf_and_carry_their_metadata(image_files, tmp_path):
    """Plain torch.jit.load and onnxruntime (imgclf made unimportable) given the uint8 N×H×W×C pixels give imgclf's
    logits: the /255, mean/std and layout change are in the graph; the metadata is inside each file."""
    needs_onnx()
    images = decode(image_files, (3, 32, 32))
    ckpt = make_checkpoint(tmp_path / "best.pt", "tutorial-net", (3, 32, 32), images)
    onnx_file = export_model(ckpt, "onnx", dynamic_batch=True)
    ts_file = export_model(ckpt, "torchscript")
    clf = imgclf.load(ckpt, device="cpu")
    np.save(tmp_path / "x.npy", images.permute(0, 2, 3, 1).numpy())   # N×H×W×C, as PIL and numpy hold images
    script = textwrap.dedent(f"""
        import json, sys
        sys.modules["imgclf"] = None
        import numpy as np, onnxruntime as ort, torch
        x = np.load({str(tmp_path / "x.npy")!r})
        s = ort.InferenceSession({str(onnx_file)!r}, providers=["CPUExecutionProvider"])
        meta = {{k: json.loads(v) for k, v in s.get_modelmeta().custom_metadata_map.items()
                if not k.startswith("pkg.")}}
        np.save({str(tmp_path / "onnx.npy")!r}, s.run(None, {{meta["input_name"]: x}})[0])
        extra = {{"imgclf.json": ""}}
        m = torch.jit.load({str(ts_file)!r}, _extra_files=extra)
        np.save({str(tmp_path / "ts.npy")!r}, m(torch.from_numpy(x)).detach().numpy())
        print(json.dumps({{"onnx": meta, "torchscript": json.loads(extra["imgclf.json"])}}))
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    expected = logits(ckpt, images)
    for which in ("onnx", "ts"):
        torch.testing.assert_close(torch.from_numpy(np.load(tmp_path / f"{which}.npy")), expected, rtol=RTOL, atol=ATOL)
    metas = json.loads(r.stdout)
    for meta in metas.values():
        assert meta["classes"] == CLASSES and meta["input_shape"] == [3, 32, 32] and meta["tta"] is False
        assert meta["mean"] == pytest.approx(clf.mean) and meta["std"] == pytest.approx(clf.std)
        assert meta["model_name"] == "tutorial-net" and meta["imgclf_version"] == imgclf.__version__
        assert meta["input"]["dtype"] == "uint8" and meta["input"]["layout"] == "NHWC"
    assert metas["onnx"]["input"]["shape"] == [None, 32, 32, 3] and metas["onnx"]["opset"] >= 18
    assert json.loads(sidecar_path(onnx_file).read_text()) == {"file": onnx_file.name, **metas["onnx"]}


def test_the_sidecar_states_imgclfs_decoding(tmp_path):
    """FILE.json says what imgclf's decoder does for this model: pixels in, channel mode, EXIF, alpha over white,
    the run's resize mode, the filter, and the rest of the steps, with the values the decoder uses."""
    from imgclf.data import images as decoder

    images = torch.zeros(2, 1, 28, 28, dtype=torch.uint8)
    for fit in ("pad", None):
        ckpt = make_checkpoint(tmp_path / f"{fit}.pt", "mlp", (1, 28, 28), images)
        if fit:
            saved = torch.load(ckpt, weights_only=True)
            save_checkpoint({**saved, "config": {"resize": fit}}, ckpt)
        side = json.loads(sidecar_path(export_model(ckpt, "torchscript")).read_text())
        assert side["input_name"] == "image" and side["output_name"] == "logits"
        assert side["input"] | {"values": ""} == {"dtype": "uint8", "layout": "NHWC", "shape": [None, 28, 28, 1],
                                                  "channels": "L", "values": ""}
        assert side["output"]["shape"] == [None, len(CLASSES)] and side["classes"] == CLASSES
        dec, res = side["decode"], side["resize"]
        assert dec["channels"] == "L" and dec["exif_transpose"] is True and dec["alpha_background"] == [255, 255, 255]
        assert dec["alpha_modes"] == list(decoder.ALPHA_MODES) and dec["high_bit_depth_full_scale"]["I;16"] == 65535
        assert dec["jpeg_draft_margin"] == decoder.DRAFT_MARGIN and len(dec["steps"]) == 7
        assert res["mode"] == (fit or "squash")   # a checkpoint that records no resize squashed, as predict does
        assert res["size"] == [28, 28] and res["filter"] == "bilinear" and res["antialias"] is True
        assert res["steps"] == decoder.FIT_STEPS[res["mode"]] and res["crop_first_above"] == decoder.LARGE_INTERMEDIATE
        assert side["tta_in_graph"] is True and side["file"] == f"{fit}.torchscript.pt"


def test_imgclf_hands_an_export_the_very_pixels():
    """predict normalizes a batch before any model; for a graph that takes pixels, PixelInput turns that batch back
    into the uint8 pixels it came from, every value 0-255, N×H×W×C, for normalizations wide and narrow."""
    from imgclf.exported import PixelInput

    px = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16).repeat(2, 3, 1, 1)
    px[1] = px[1].flip(2)
    for mean, std in (([0.5] * 3, [0.5] * 3), ([0.0] * 3, [1 / 255] * 3), ([0.9, 0.1, 0.5], [0.01, 0.3, 2.0])):
        seen = PixelInput(torch.nn.Identity(), mean, std, torch.device("cpu"))(Normalizer(mean, std, "cpu")(px))
        assert seen.dtype == torch.uint8 and torch.equal(seen, px.permute(0, 2, 3, 1)), (mean, std)


def test_a_file_exported_for_normalized_input_still_predicts(image_files, tmp_path):
    """A TorchScript file whose graph takes the normalized float N×C×H×W batch (its metadata names no pixel input)
    is fed that batch, and its TTA views averaged by imgclf: predict gives the checkpoint's classes."""
    images = decode(image_files, (3, 32, 32))
    ckpt = make_checkpoint(tmp_path / "best.pt", "tutorial-net", (3, 32, 32), images)
    clf = imgclf.load(ckpt, device="cpu", precision="fp32")   # as the exported graph computes
    old = tmp_path / "old.torchscript.pt"
    meta = {"classes": CLASSES, "input_shape": [3, 32, 32], "mean": clf.mean, "std": clf.std, "tta": True,
            "tta_mirror": clf.tta_mirror, "input": "float32 NCHW, (x/255 - mean)/std per channel"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(clf.model.eval(), torch.zeros(1, 3, 32, 32), check_trace=False)
        torch.jit.save(traced, str(old), _extra_files={"imgclf.json": json.dumps(meta)})
    files = [str(f) for f in image_files]
    clf.tta = True
    want = clf.predict(files, topk=3)
    got = imgclf.load(old, device="cpu", trust_exported=True).predict(files, topk=3)
    assert [g["class"] for g in got] == [w["class"] for w in want]
    for g, w in zip(got, want):
        assert [t["probability"] for t in g["topk"]] == pytest.approx([t["probability"] for t in w["topk"]], abs=1e-4)


def test_never_overwrites_without_force(tmp_path):
    ckpt = make_checkpoint(tmp_path / "best.pt", "mlp", (1, 28, 28), torch.zeros(2, 1, 28, 28, dtype=torch.uint8))
    first = export_model(ckpt, "torchscript")
    stamp = first.stat().st_mtime_ns
    with pytest.raises(ExportError, match="exists; pass --force"):
        export_model(ckpt, "torchscript")
    assert first.stat().st_mtime_ns == stamp
    assert export_model(ckpt, "torchscript", force=True) == first
    with pytest.raises(ExportError, match="ONNX export only"):
        export_model(ckpt, "torchscript", out=tmp_path / "other.pt", opset=18)
    before = Path(ckpt).read_bytes()
    with pytest.raises(ExportError, match="is the checkpoint being exported"):
        export_model(ckpt, "torchscript", out=ckpt, force=True)
    assert Path(ckpt).read_bytes() == before
    first.unlink()                                  # the file gone, its sidecar (maybe edited) left: kept too
    sidecar_path(first).write_text("my notes")
    with pytest.raises(ExportError, match=r"its sidecar .*best\.torchscript\.pt\.json: the file exists; pass --force"):
        export_model(ckpt, "torchscript")
    assert sidecar_path(first).read_text() == "my notes" and not first.exists()
    named = tmp_path / "m.torchscript.pt.json"      # a checkpoint named like the sidecar of --out
    named.write_bytes(before)
    with pytest.raises(ExportError, match="its sidecar m.torchscript.pt.json would be the checkpoint"):
        export_model(named, "torchscript", out=tmp_path / "m.torchscript.pt", force=True)
    assert named.read_bytes() == before and not (tmp_path / "m.torchscript.pt").exists()


@pytest.mark.parametrize("fmt, name", [("onnx", "m.pt"), ("onnx", "m"), ("torchscript", "m.onnx")])
def test_an_export_named_for_another_format_is_refused(tmp_path, fmt, name):
    """eval and predict know an ONNX file by its .onnx name: one under another name could not be opened again."""
    ckpt = make_checkpoint(tmp_path / "best.pt", "mlp", (1, 28, 28), torch.zeros(2, 1, 28, 28, dtype=torch.uint8))
    if fmt == "onnx":
        needs_onnx()
    with pytest.raises(ExportError, match=f"--out {tmp_path / name}: "):
        export_model(ckpt, fmt, out=tmp_path / name)
    assert not (tmp_path / name).exists()


@pytest.mark.slow
def test_an_opset_onnxruntime_cannot_run_is_refused_before_exporting(tmp_path):
    needs_onnx()
    ckpt = make_checkpoint(tmp_path / "best.pt", "mlp", (1, 28, 28), torch.zeros(2, 1, 28, 28, dtype=torch.uint8))
    for opset in (0, 6, 10_000):
        with pytest.raises(ExportError, match=rf"--opset {opset}: must be in \[7, "):
            export_model(ckpt, "onnx", opset=opset)
    assert not (tmp_path / "best.onnx").exists()
    try:           # ONNX's converter fails for most graphs this old, and torch then keeps its own opset (18)
        out = export_model(ckpt, "onnx", opset=7)
    except ExportError as e:
        assert "could not convert" in str(e) and not (tmp_path / "best.onnx").exists()
    else:          # where it succeeds, the file is the opset asked for, not another one unsaid
        assert json.loads(out.with_name(f"{out.name}.json").read_text())["opset"] == 7


def test_missing_onnx_extra_is_one_line(tmp_path, monkeypatch, capsys):
    ckpt = make_checkpoint(tmp_path / "best.pt", "mlp", (1, 28, 28), torch.zeros(2, 1, 28, 28, dtype=torch.uint8))
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # `import onnxscript` now raises ImportError
    with pytest.raises(MissingExtraError, match=r"pip install 'imgclf\[onnx\]'"):
        export_model(ckpt, "onnx")
    assert main(["export", str(ckpt), "--format", "onnx"]) == getattr(ImgclfError, "exit_code", 2)  # our errors' code
    err = capsys.readouterr().err
    assert err == "error: ONNX support is not installed (missing: onnxscript): pip install 'imgclf[onnx]'\n"
    assert not (tmp_path / "best.onnx").exists()
    (tmp_path / "model.onnx").write_bytes(b"not run")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(MissingExtraError, match=r"missing: onnxruntime\): pip install 'imgclf\[onnx\]'"):
        imgclf.load(tmp_path / "model.onnx")


@pytest.mark.slow
def test_cifar_jpegs_end_to_end_predict_and_eval_match(cifar_jpeg_subset, tmp_path):
    """tutorial-net trained 1 epoch on real CIFAR JPEGs, exported by the CLI: `imgclf predict` / `imgclf eval` on the
    .onnx give the checkpoint's classes, probabilities and accuracy computed in fp32, as the graph computes; the
    checkpoint computed as its run tested gives the run's figure."""
    needs_onnx()
    summary = imgclf.train(data=str(cifar_jpeg_subset), model="tutorial-net", epochs=1, batch_size=32,
                           out=str(tmp_path), name="e2e", plots=False)
    ckpt = Path(summary["checkpoint"])
    assert main(["export", str(ckpt), "--format", "onnx", "--dynamic-batch"]) == 0
    onnx_file = ckpt.with_name("best.onnx")
    assert onnx_file.is_file() and onnx_file.with_name("best.onnx.json").is_file()
    test_dir = str(cifar_jpeg_subset / "test")
    results = []
    for model_file in (ckpt, onnx_file):
        r = run("predict", str(model_file), test_dir, "--topk", "3", "--json", "--precision", "fp32")
        assert r.returncode == 0, r.stderr
        results.append(json.loads(r.stdout))
    a, b = results
    assert len(a) == len(b) == 100
    assert [x["file"] for x in a] == [x["file"] for x in b] and [x["class"] for x in a] == [x["class"] for x in b]
    for x, y in zip(a, b):
        assert [t["class"] for t in x["topk"]] == [t["class"] for t in y["topk"]]
        assert [t["probability"] for t in y["topk"]] == pytest.approx([t["probability"] for t in x["topk"]], abs=1e-4)
    r = run("eval", str(onnx_file), "--json")
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    expected = imgclf.load(ckpt, precision="fp32").evaluate()
    assert got["test_accuracy"] == expected["test_accuracy"] and got["computed_in"] == "fp32"
    assert got["confusion_matrix"] == expected["confusion_matrix"] and got["n"] == 100
    assert imgclf.load(ckpt).evaluate()["test_accuracy"] == summary["test_accuracy"]


# ----- the README's onnxruntime snippet, run as written ---------------------------------------------------------------

README = Path(__file__).resolve().parents[1] / "README.md"
# Runs the snippet once per image, imgclf unimportable, in a folder holding best.onnx(.json) and the image as cat.jpg
# (Pillow reads a file by its content, not its name); keeps what it printed, its probabilities p and its pixels x.
RUNNER = """
import contextlib, io, json, shutil, sys
sys.modules["imgclf"] = None
import numpy as np
snippet, files, torchscript = json.load(open(sys.argv[1]))
if torchscript:   # loaded once (a module's first calls profile it), one thread (a busy machine's pool stalls)
    import torch
    torch.set_num_threads(1)
    torchscript = torch.jit.load(torchscript)
found, pixels = [], {}
for i, f in enumerate(files):
    shutil.copyfile(f, "cat.jpg")
    ns = {}
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        exec(snippet, ns)
    found.append({"printed": printed.getvalue(), "p": ns["p"].tolist()})
    pixels[str(i)] = ns["x"]
    if torchscript:
        with torch.no_grad():
            found[-1]["torchscript"] = torchscript(torch.from_numpy(ns["x"])).softmax(1)[0].tolist()
np.savez("pixels.npz", **pixels)
print(json.dumps(found))
"""


def readme_snippet() -> str:
    """The first ```python block of README.md's Export section, as written."""
    section = README.read_text(encoding="utf-8").split("### Export\n", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def run_snippet(onnx_file: Path, files: list[Path], where: Path, torchscript: Path | None = None) -> tuple[list, dict]:
    """The README snippet on each of `files` with `onnx_file` (copied to where/best.onnx with its sidecar)."""
    where.mkdir()
    (where / "best.onnx").write_bytes(onnx_file.read_bytes())
    (where / "best.onnx.json").write_bytes(sidecar_path(onnx_file).read_bytes())
    (where / "job.json").write_text(json.dumps([readme_snippet(), [str(f) for f in files],
                                                str(torchscript) if torchscript else None]))
    r = subprocess.run([sys.executable, "-c", RUNNER, "job.json"], cwd=where, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    with np.load(where / "pixels.npz") as z:
        return json.loads(r.stdout), {files[int(k)]: z[k][0] for k in z.files}


def varied_photos(root: Path) -> list[Path]:
    """Two classes, a warm band at the top or at the bottom of the upright picture, in files of every kind imgclf
    decodes differently: JPEGs of many sizes and aspect ratios, a large EXIF-turned one (decoded reduced), RGBA, LA
    and palette PNGs with transparency, grayscale and 16-bit PNGs, a GIF, a long strip (cut before it is scaled), a
    tall one (one pixel wide when padded), a tiny one (scaled up)."""
    rng = np.random.default_rng(0)

    def photo(h: int, w: int, top: bool) -> np.ndarray:
        img = rng.integers(0, 60, (h, w, 3)).astype(np.uint8)
        img[slice(0, max(1, h // 3)) if top else slice(h - max(1, h // 3), h)] = [220, 120, 40]
        return img

    from PIL import Image

    for ci, c in enumerate(("top", "bottom")):
        d = root / c
        d.mkdir(parents=True)
        top = ci == 0
        for i in range(12):
            h, w = int(rng.integers(24, 220)), int(rng.integers(24, 220))
            Image.fromarray(photo(h, w, top)).save(d / f"{i}.jpg", quality=90)
        exif = Image.Exif()
        exif[0x0112] = 6                               # stored a quarter turned; shown upright
        Image.fromarray(np.rot90(photo(480, 640, top)).copy()).save(d / "exif.jpg", exif=exif, quality=90)
        alpha = rng.integers(0, 256, (90, 60), dtype=np.uint8)
        Image.fromarray(np.dstack([photo(90, 60, top), alpha]), "RGBA").save(d / "rgba.png")
        Image.fromarray(np.dstack([photo(40, 70, top)[..., 0], alpha[:40, :70 - 10].repeat(2, 1)[:, :70]]),
                        "LA").save(d / "la.png")
        Image.fromarray(photo(50, 80, top)).quantize(8).save(d / "palette.png", transparency=0)
        grey = photo(70, 50, top).mean(2).astype(np.uint8)
        Image.fromarray(grey).save(d / "grey.png")
        Image.fromarray(grey.astype(np.uint16) * 257).save(d / "grey16.png")
        Image.fromarray(photo(60, 45, top)).save(d / "still.gif")
        Image.fromarray(photo(20, 400, top)).save(d / "strip.png")
        Image.fromarray(photo(300, 5, top)).save(d / "tall.png")
        Image.fromarray(photo(9, 13, top)).save(d / "tiny.jpg", quality=95)
    return sorted(p for p in root.rglob("*") if p.is_file())


def grey_digits(root: Path) -> list[Path]:
    """MNIST-like files for a 28×28 grayscale model: the digits test images as 28×28 PNGs, and the same digits in
    colour, with transparency, larger, as a JPEG turned by EXIF."""
    from PIL import Image

    from imgclf.data import load_dataset

    root.mkdir()
    test = load_dataset("digits", image_size=28).test
    for i in range(12):
        Image.fromarray(test.images[i, 0].numpy()).save(root / f"{i}_label{int(test.labels[i])}.png")
    ink = test.images[12:16, 0].numpy()
    Image.fromarray(np.stack([ink[0], ink[0] // 2, 255 - ink[0]], -1)).save(root / "rgb.png")
    Image.fromarray(np.dstack([np.stack([ink[1]] * 3, -1), np.where(ink[1] > 0, 255, 0).astype(np.uint8)]),
                    "RGBA").save(root / "rgba.png")
    Image.fromarray(ink[2]).resize((70, 50)).save(root / "larger.png")
    exif = Image.Exif()
    exif[0x0112] = 8
    Image.fromarray(np.rot90(ink[3], -1).copy()).convert("RGB").save(root / "exif.jpg", exif=exif, quality=95)
    return sorted(root.iterdir())


def predictions(model: Path, files: list[Path], k: int, capsys) -> list[dict]:
    """`imgclf predict MODEL FILES --json --topk K --precision fp32`, the command a user compares with (run in this
    process): in fp32, as the exported graph computes (by default predict computes as the run tested)."""
    capsys.readouterr()
    assert main(["predict", str(model), *map(str, files), "--json", "--topk", str(k), "--precision", "fp32"]) == 0
    return json.loads(capsys.readouterr().out)


def check_snippet_agrees(ckpt: Path, onnx_file: Path, files: list[Path], where: Path, capsys,
                         torchscript: Path | None = None) -> tuple[float, float]:
    """The README snippet gives `imgclf predict`'s class on every file and its probabilities within 1e-3 (TorchScript
    too, fed the snippet's pixels); its pixels are imgclf's decoder's within one level. Returns the largest
    probability difference and the share of pixels that differ."""
    want = predictions(ckpt, files, 99, capsys)
    got, pixels = run_snippet(onnx_file, files, where, torchscript)
    clf = imgclf.load(ckpt, device="cpu")
    c, h, w = clf.image_shape
    worst, differ, total = 0.0, 0, 0
    for f, g, p in zip(files, got, want):
        assert p["file"] == str(f)
        probs = dict((t["class"], t["probability"]) for t in p["topk"])
        assert g["printed"].split()[0] == p["class"], (f, g["printed"], p)
        snippet = dict(zip(clf.classes, g["p"]))
        worst = max(worst, *(abs(snippet[k] - probs[k]) for k in clf.classes))
        if torchscript:
            worst = max(worst, *(abs(v - probs[k]) for k, v in zip(clf.classes, g["torchscript"])))
        ours = decode_image(f, (h, w), "L" if c == 1 else "RGB", clf.resize).transpose(1, 2, 0)
        d = np.abs(pixels[f].astype(int) - ours.astype(int))
        assert pixels[f].shape == (h, w, c) and d.max() <= 1, (f, d.max())
        differ, total = differ + int((d > 0).sum()), total + d.size
    assert worst <= 1e-3 and differ <= total * 1e-3, (worst, differ, total)
    return worst, differ / total


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*no test images for class")   # alike generated photos are held out together
def test_the_readme_snippet_gives_predicts_class_on_every_photo(tmp_path, capsys):
    """A photo model trained with resize crop and TTA (mirror and shifted views, which the graph holds), on files of
    every kind: the README snippet agrees with `imgclf predict` on each, exported as trained and as squash and pad
    (the same weights, the run's resize mode changed); `imgclf predict` on the .onnx gives the checkpoint's own."""
    needs_onnx()
    files = varied_photos(tmp_path / "photos")
    s = imgclf.train(data=str(tmp_path / "photos"), model="fastcnn-small", image_size=32, resize="crop", epochs=3,
                     batch_size=8, tta=True, tta_shift=1, out=str(tmp_path / "runs"), name="photo", plots=False,
                     device="cpu", quiet=True)
    ckpt = Path(s["checkpoint"])
    onnx_file = export_model(ckpt, "onnx")
    ts_file = export_model(ckpt, "torchscript")
    side = json.loads(sidecar_path(onnx_file).read_text())
    assert side["resize"]["mode"] == "crop" and side["tta"] and side["tta_shift"] == 1
    check_snippet_agrees(ckpt, onnx_file, files, tmp_path / "crop", capsys, ts_file)
    want = imgclf.load(ckpt, precision="fp32").predict([str(f) for f in files], topk=2)
    got = imgclf.load(onnx_file).predict([str(f) for f in files], topk=2)
    assert [g["class"] for g in got] == [w["class"] for w in want]
    assert [g["topk"][1]["probability"] for g in got] == pytest.approx([w["topk"][1]["probability"] for w in want],
                                                                        abs=1e-4)
    saved = torch.load(ckpt, weights_only=True)
    for fit in ("squash", "pad"):   # without TTA: a graph of one view
        other = save_checkpoint({**saved, "tta": False, "config": {**saved["config"], "resize": fit}},
                                tmp_path / f"{fit}.pt")
        check_snippet_agrees(other, export_model(other, "onnx", dynamic_batch=True), files, tmp_path / fit, capsys)


@pytest.mark.slow
def test_the_readme_snippet_gives_predicts_class_for_a_grayscale_model(tmp_path, capsys):
    """A 28×28 grayscale model: the snippet converts colour, transparent and EXIF-turned files to one channel as
    imgclf does (PIL's convert("RGB") would give the graph 3 channels where it takes 1) and agrees with predict."""
    needs_onnx()
    files = grey_digits(tmp_path / "digits")
    s = imgclf.train(data="digits", image_size=28, epochs=1, out=str(tmp_path / "runs"), name="grey", plots=False,
                     device="cpu", quiet=True)
    ckpt = Path(s["checkpoint"])
    onnx_file = export_model(ckpt, "onnx")
    assert json.loads(sidecar_path(onnx_file).read_text())["input"]["shape"] == [1, 28, 28, 1]
    check_snippet_agrees(ckpt, onnx_file, files, tmp_path / "run", capsys)
    right = [p["class"] == p["file"].split("label")[1][0] for p in predictions(ckpt, files[:12], 1, capsys)]
    assert sum(right) >= 9, right                   # a model that reads digits, not one that says one class
