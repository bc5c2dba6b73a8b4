"""SGD with momentum, Nesterov and decoupled-from-nothing (L2) weight decay — the same update as torch.optim.SGD —
and Muon (SGD whose hidden weights take orthogonalised steps), which adds one kind of group to it.

Why our own: constructing any torch.optim optimizer imports torch._dynamo, which costs ~2 s of a run's start on
our 2-core machines (a tutorial-size run trains in less). The maths is a few foreach ops; a test checks it
against torch.optim.SGD step for step.

Muon (Keller Jordan, 2024; the airbench94_muon CIFAR-10 record, 8 epochs where SGD needs ~10): a hidden layer's
momentum-averaged gradient, as a matrix (out, in·k·k), is replaced by the nearest semi-orthogonal matrix (all
singular values ≈ 1), so every direction of the layer moves at the same rate instead of the few that dominate the
gradient. Biases, norm shifts and the classifier head keep SGD: a vector has no directions to even out, and the
head's rows are the classes, which should not be forced to move alike.
"""

from __future__ import annotations

from typing import Any

import torch


class SGD:
    """param_groups like torch.optim ({'params', 'lr', 'weight_decay', ...}); state_dict() is plain tensors/numbers."""

    def __init__(self, groups: list[dict[str, Any]], lr: float, momentum: float = 0.0, nesterov: bool = False) -> None:
        self.param_groups = [{"lr": lr, "momentum": momentum, "nesterov": nesterov, "weight_decay": 0.0, **g,
                              "params": list(g["params"])} for g in groups]
        self.momentum_buffers: list[list[torch.Tensor | None]] = [[None] * len(g["params"]) for g in self.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for g in self.param_groups:
            for p in g["params"]:
                p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        for g, bufs in zip(self.param_groups, self.momentum_buffers):
            self._step_group(g, bufs)

    def _step_group(self, g: dict[str, Any], bufs: list[torch.Tensor | None]) -> None:
        """One SGD step for the parameters of group `g` that have a gradient (`bufs`: their momentum buffers)."""
        live = [i for i, p in enumerate(g["params"]) if p.grad is not None]
        if live:
            params = [g["params"][i] for i in live]
            grads = [params[k].grad for k in range(len(live))]
            if g["weight_decay"]:
                grads = torch._foreach_add(grads, params, alpha=g["weight_decay"])
            if g["momentum"]:
                if any(bufs[i] is None for i in live):
                    for k, i in enumerate(live):
                        if bufs[i] is None:
                            bufs[i] = torch.clone(grads[k]).detach()
                    mom = [bufs[i] for i in live]
                else:
                    mom = [bufs[i] for i in live]
                    torch._foreach_mul_(mom, g["momentum"])
                    torch._foreach_add_(mom, grads)
                if g["nesterov"]:
                    grads = torch._foreach_add(grads, mom, alpha=g["momentum"])
                else:
                    grads = mom
            torch._foreach_add_(params, grads, alpha=-g["lr"])

    def state_dict(self) -> dict[str, Any]:
        return {"momentum_buffers": [[b for b in bufs] for bufs in self.momentum_buffers],
                "groups": [{k: v for k, v in g.items() if k != "params"} for g in self.param_groups]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        bufs = state["momentum_buffers"]
        if [len(b) for b in bufs] != [len(g["params"]) for g in self.param_groups]:
            raise ValueError("optimizer state does not match the model's parameters")
        self.momentum_buffers = [[None if b is None else b.to(p.device) for b, p in zip(bb, g["params"])]
                                 for bb, g in zip(bufs, self.param_groups)]
        for g, saved in zip(self.param_groups, state["groups"]):
            g.update({k: v for k, v in saved.items() if k != "params"})


# Quintic Newton–Schulz coefficients (Jordan's): chosen for the steepest slope at 0, so small singular values grow
# fast; the price is that the iteration does not converge to exactly 1 but ends in a band (about 0.68–1.20), which
# trains as well as the exact U Vᵀ.
NEWTON_SCHULZ = (3.4445, -4.7750, 2.0315)
NEWTON_SCHULZ_STEPS = 5
# A Muon group's learning rate as a multiple of --lr (step.set_lr multiplies by a group's 'lr_mult'), so one --lr and
# one schedule drive both. Muon's lr is about the size of each step relative to the weights (its singular values are
# ≈ 1, and a fresh 3×3 conv's weights have norm ≈ √out, like the orthogonal step's); at 1×, our 32×32 colour lr 0.2
# is close to airbench94_muon's Muon lr 0.24 on the same network (its SGD lrs are for a summed loss and do not
# compare). On digits (fastcnn-tiny, 3 epochs, seeds 0–1, test): SGD 0.92–0.93; Muon at 0.25× and 0.5× 0.94, at 1×
# 0.96–0.97, at 2× 0.96–0.975 — 1× is on the plateau, not at its edge. benchmarks/muon_vs_sgd.py is the CIFAR-10 check.
MUON_LR_MULT = 1.0


def orthogonalize(g: torch.Tensor, steps: int = NEWTON_SCHULZ_STEPS, dtype: torch.dtype | None = None
                  ) -> torch.Tensor:
    """≈ U Vᵀ for a 2-D `g` = U S Vᵀ (singular values in about [0.68, 1.2]), by the quintic Newton–Schulz iteration:
    matmuls only, no SVD. In `dtype`; by default bf16 on CUDA (as airbench), fp32 elsewhere (some of our CPUs
    emulate bf16 slowly: a CPU run passes bf16 only where it trains in bf16, i.e. the CPU has it natively)."""
    a, b, c = NEWTON_SCHULZ
    x = g.to(dtype or (torch.bfloat16 if g.is_cuda else torch.float32))
    tall = x.shape[0] > x.shape[1]
    if tall:             # iterate on the wide form: X Xᵀ is then the smaller square
        x = x.T
    x = x / (x.norm() + 1e-7)    # every singular value ≤ 1, inside the iteration's basin
    for _ in range(steps):     # x ← a·x + (b·A + c·A²)·x with A = x xᵀ: three fused ops (a small layer's step is
        xxt = x @ x.T          # dominated by per-op cost on a CPU: 8 separate ops took ~5 ms a step on fastcnn-tiny)
        x = torch.addmm(x, torch.addmm(xxt, xxt, xxt, beta=b, alpha=c), x, beta=a)
    return (x.T if tall else x).to(g.dtype)


def muon_update(grad: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """A weight's (out, ...) momentum-averaged gradient → its Muon step: orthogonalised as an (out, in·k·k) matrix
    (in `dtype`, see orthogonalize), scaled up by √(rows/cols) when taller than wide (so each output's step has the
    same size as in a wide one)."""
    rows = grad.shape[0]
    cols = grad.numel() // rows
    return orthogonalize(grad.reshape(rows, cols), dtype=dtype).view(grad.shape) * max(1.0, rows / cols) ** 0.5


def muon_groups(groups: list[dict[str, Any]], head: set[int], lr_mult: float = MUON_LR_MULT
                ) -> list[dict[str, Any]]:
    """Each group's hidden weights (≥ 2-D, not in `head`, a set of parameter ids) moved into a group of their own
    marked 'muon', its 'lr_mult' `lr_mult` times the group's; the rest (biases, norm shifts, the head) stay for SGD."""
    out = []
    for g in groups:
        params = list(g["params"])
        hidden = [p for p in params if p.ndim >= 2 and id(p) not in head]
        rest = [p for p in params if not (p.ndim >= 2 and id(p) not in head)]
        if rest:
            out.append({**g, "params": rest})
        if hidden:
            out.append({**g, "params": hidden, "muon": True, "lr_mult": g.get("lr_mult", 1.0) * lr_mult})
    return out


class Muon(SGD):
    """SGD (as above) for every group but those marked 'muon' (see muon_groups), which take Muon steps: the same
    momentum (Nesterov or not) on the raw gradient, the step orthogonalised (muon_update), weight decay decoupled
    (the weights shrink by lr × weight_decay each step: added to the gradient it would be orthogonalised away). One
    optimizer with SGD's state_dict, so checkpoints and --resume work unchanged. `ns_dtype`: the Newton–Schulz
    iteration's dtype (orthogonalize's default if None)."""

    def __init__(self, groups: list[dict[str, Any]], lr: float, momentum: float = 0.0, nesterov: bool = False,
                 ns_dtype: torch.dtype | None = None) -> None:
        super().__init__(groups, lr, momentum, nesterov)
        self.ns_dtype = ns_dtype

    def _step_group(self, g: dict[str, Any], bufs: list[torch.Tensor | None]) -> None:
        if not g.get("muon"):
            super()._step_group(g, bufs)
            return
        live = [i for i, p in enumerate(g["params"]) if p.grad is not None]
        if not live:
            return
        params = [g["params"][i] for i in live]
        grads = [p.grad for p in params]
        if g["momentum"]:           # as SGD's, on the raw gradient, for the whole group at once
            for k, i in enumerate(live):
                if bufs[i] is None:
                    bufs[i] = torch.zeros_like(grads[k])
            mom = [bufs[i] for i in live]
            torch._foreach_mul_(mom, g["momentum"])
            torch._foreach_add_(mom, grads)
            grads = torch._foreach_add(grads, mom, alpha=g["momentum"]) if g["nesterov"] else mom
        if g["weight_decay"]:
            torch._foreach_mul_(params, 1 - g["lr"] * g["weight_decay"])
        torch._foreach_add_(params, [muon_update(d, self.ns_dtype) for d in grads], alpha=-g["lr"])
