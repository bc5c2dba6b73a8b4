"""Which epoch becomes best.pt, chosen on the val split (never on test), and when a run stops early."""

from __future__ import annotations

from typing import Any


def _key(row: dict[str, Any], select: str) -> tuple[float, float, int]:
    """Larger is better: the selected metric first, the other val metric next, then the later epoch."""
    acc, loss = row["val_accuracy"], row["val_loss"]
    if select == "val_loss":
        return (-loss, acc, row["epoch"])
    return (acc, -loss, row["epoch"])


def is_better(row: dict[str, Any], best: dict[str, Any] | None, select: str) -> bool:
    """Whether this epoch's row beats the best so far (ties on the selected metric go to the other val metric,
    then to the later epoch: on a small val split many epochs reach the same accuracy)."""
    if "val_accuracy" not in row:
        return False
    return best is None or _key(row, select) > _key(best, select)


def evaluations_since_best(history: list[dict[str, Any]], best_epoch: int | None) -> int:
    """How many validations came after the best one (what --patience counts)."""
    return sum(1 for r in history if "val_accuracy" in r and best_epoch is not None and r["epoch"] > best_epoch)


def reason(history: list[dict[str, Any]], best_epoch: int | None, select: str, stopped_early: bool) -> str:
    """One sentence: which epoch best.pt holds and why."""
    if best_epoch is None:
        return "no epoch finished"
    evaluated = [r for r in history if "val_accuracy" in r]
    if not evaluated:
        return f"epoch {best_epoch}: the last epoch (no validation split)"
    best = next(r for r in evaluated if r["epoch"] == best_epoch)
    tied = sum(1 for r in evaluated if r[select] == best[select])
    what = (f"highest val accuracy {best['val_accuracy']:.2%}" if select == "val_accuracy"
            else f"lowest val loss {best['val_loss']:.4f}")
    if tied > 1:
        other = "lowest val loss" if select == "val_accuracy" else "highest val accuracy"
        what += f" ({tied} epochs tied; the {other} among them, then the latest)"
    stop = "; stopped early (--patience)" if stopped_early else ""
    return f"epoch {best_epoch} of {history[-1]['epoch']}: {what}{stop}"
