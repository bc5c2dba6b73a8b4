"""Choosing the checkpoint on val (ties, --select, --patience), imbalanced classes, small datasets."""

import warnings

import pytest
from conftest import make_image_folder

import imgclf
from imgclf.checkpoint import load_checkpoint
from imgclf.engine import selection


def row(epoch, acc, loss):
    return {"epoch": epoch, "val_accuracy": acc, "val_loss": loss}


def test_ties_go_to_the_lower_loss_then_the_later_epoch():
    assert selection.is_better(row(5, 1.0, 0.10), row(3, 1.0, 0.20), "val_accuracy")
    assert not selection.is_better(row(5, 1.0, 0.30), row(3, 1.0, 0.20), "val_accuracy")
    assert selection.is_better(row(5, 1.0, 0.20), row(3, 1.0, 0.20), "val_accuracy")      # exact tie: later
    assert not selection.is_better(row(5, 0.9, 0.01), row(3, 1.0, 0.20), "val_accuracy")
    assert selection.is_better(row(5, 0.9, 0.01), row(3, 1.0, 0.20), "val_loss")
    history = [row(1, 0.5, 1.0), row(2, 1.0, 0.3), row(3, 1.0, 0.2), row(4, 0.9, 0.1)]
    text = selection.reason(history, 3, "val_accuracy", stopped_early=False)
    assert text.startswith("epoch 3 of 4: highest val accuracy 100.00% (2 epochs tied")


@pytest.mark.slow
def test_the_digits_run_keeps_the_best_of_tied_epochs(tmp_path):
    s = imgclf.train(data="digits", epochs=8, out=str(tmp_path), plots=False, quiet=True)
    history = load_checkpoint(s["checkpoint"])["history"]
    best = max(history, key=lambda r: (r["val_accuracy"], -r["val_loss"], r["epoch"]))
    assert s["best_epoch"] == best["epoch"] and s["val_accuracy"] == best["val_accuracy"]
    assert s["checkpoint_choice"].startswith(f"epoch {best['epoch']} of 8")


def test_patience_stops_early_and_keeps_the_best(tmp_path):
    from imgclf.models import MODELS, register_model

    steps = {"n": 0}

    def forgetting(**kw):   # fastcnn-tiny whose predictions turn useless after 2 epochs (40 training steps)
        model = MODELS["fastcnn-tiny"].builder(**kw)

        def hook(module, _inputs, out):
            if module.training:
                steps["n"] += 1
            elif steps["n"] >= 40:
                return out * 0
            return out

        model.register_forward_hook(hook)
        return model

    register_model("tiny-forgetting", forgetting)
    s = imgclf.train(data="digits", model="tiny-forgetting", epochs=12, patience=2, out=str(tmp_path),
                     plots=False, quiet=True)
    assert s["stopped_early"] and s["best_epoch"] <= 2 and s["epochs_run"] == s["best_epoch"] + 2
    assert "stopped early" in s["checkpoint_choice"]
    assert load_checkpoint(tmp_path / "digits-tiny-forgetting" / "best.pt")["epoch"] == s["best_epoch"]
    again = imgclf.train(resume=tmp_path / "digits-tiny-forgetting" / "last.pt", quiet=True, plots=False)
    assert again["epochs_run"] == s["epochs_run"]          # a resumed early-stopped run does not train on


@pytest.mark.slow
def test_an_imbalanced_folder_warns_reweights_and_reports_balanced_accuracy(tmp_path):
    root = make_image_folder(tmp_path / "shapes", classes=("big", "mid", "small"), per_class=[90, 30, 20], size=16)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s = imgclf.train(data=str(root), epochs=8, out=str(tmp_path / "r"), plots=False, quiet=True)
    text = " ".join(str(w.message) for w in caught)
    assert "imbalanced classes: 'big' has" in text and "'small'" in text
    ckpt = load_checkpoint(s["checkpoint"])
    assert ckpt["config"]["class_weights"] == "auto"
    assert s["per_class_accuracy"]["small"] is not None  # the small class is in the test split (2 of its 20)
    assert s["test_balanced_accuracy"] >= 0.6          # always 'big' would give 1/3
    assert 0 <= s["test_macro_f1"] <= 1


@pytest.mark.parametrize("given", [False, True])
def test_a_small_dataset_gets_enough_steps_unless_the_batch_size_is_yours(tmp_path, given):
    root = make_image_folder(tmp_path / "shapes", per_class=20, size=16)   # 32 train images after the test split
    extra = {"batch_size": 32} if given else {}
    s = imgclf.train(data=str(root), epochs=1, val_split=0.0, out=str(tmp_path / "r"), plots=False, quiet=True,
                     **extra)
    ckpt = load_checkpoint(s["checkpoint"])
    assert ckpt["config"]["batch_size"] == (32 if given else 4)
    assert ckpt["global_step"] == (1 if given else 8)
