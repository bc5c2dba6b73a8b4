"""The Python API in a real Jupyter kernel: a run's figures and card display inline, and export works there."""

from __future__ import annotations

import base64
import os

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

CELLS = [
    "import imgclf",
    "imgclf.show_batch('digits', n=16)",
    "run = imgclf.train(data='digits', epochs=2, out={out!r}, quiet=True)",
    "run",
    "run.show_results(n=16)",
    "run.confusion()",
    "run.classifier()",
    "print(run.export('torchscript'))",
    "import matplotlib.pyplot as plt; plt.plot([0, 1]); plt.gcf()",   # the notebook's own backend is untouched
]


@pytest.mark.slow
def test_a_notebook_shows_the_run_inline(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c.format(out=str(tmp_path)))
                                         for c in CELLS])
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": tmp_path}})
    client.execute()   # the kernel inherits PYTHONPATH: it imports the imgclf under test
    outputs = [cell.outputs for cell in nb.cells]
    assert not [o for out in outputs for o in out if o.output_type == "error"]

    def data(i: int) -> dict:
        return next(o.data for o in outputs[i] if o.output_type in ("execute_result", "display_data"))

    for i in (1, 4, 5, 8):     # figures: PNG images
        png = base64.b64decode(data(i)["image/png"])
        assert png.startswith(b"\x89PNG") and len(png) > 2000, CELLS[i]
    assert "test split, 360 images" in data(3)["text/html"] and "TrainedRun(" in data(3)["text/plain"]
    assert "imgclf Classifier" in data(6)["text/html"]
    exported = next(o.text for o in outputs[7] if o.output_type == "stream").strip()
    assert exported.endswith("best.torchscript.pt") and os.path.isfile(exported)
