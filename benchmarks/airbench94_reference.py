"""airbench94 (Keller Jordan, 2024: 94% on CIFAR-10 in 3.83 s on an A100) written out from its published description,
for an equal-time comparison on a CPU (airbench_equal_time.py). Its recipe, all of it here and in `HYP`:

- the network: a frozen 2×2 patch-whitening conv (24 filters: the patch covariance's eigenvectors, ±, scaled by
  1/sqrt(eigenvalue + 5e-4); its bias trains for 3 epochs), GELU, three groups conv-pool-BN-GELU-conv-BN-GELU of widths
  64/256/256 (3×3 convs, dirac-initialised, no bias; BatchNorm with the scale frozen at 1, momentum 0.6, eps 1e-12),
  a 3×3 max-pool, a linear head with no bias scaled by 1/9;
- SGD with Nesterov momentum 0.85 on the summed label-smoothed (0.2) cross-entropy of a batch of 1,024; lr 11.5 and
  weight decay 0.0153 per 1,024 images, scaled by 1024 × (1 + 1 / (1 - momentum)); BatchNorm biases at 64× the lr
  (weight decay not scaled); the lr triangle: from 0.2 up to 1 over 23% of the steps, then down to 0.07;
- data: random 2-px translations (reflect padding), horizontal flips alternating per epoch (a random half mirrored in
  even epochs, the other half in odd ones), a fresh order each epoch, the last partial batch dropped;
- lookahead: every 5 steps the weights move toward slow weights by 0.95⁵ × (step / total)³, and end on the slow ones;
- 9.9 epochs; test-time augmentation level 2: the image and its mirror, and both translated one pixel up-left and
  down-right (reflect padding), the translated pairs' mean weighted as much as the plain pair's.

On a CPU it computes as `imgclf train --precision auto` would here: bf16 autocast where the CPU has native bf16,
fp32 where bf16 would be emulated, channels_last. The data is an .npz of uint8 N×32×32×3 arrays (what torchvision's
CIFAR10 holds), written by airbench_equal_time.py from the JPEG folder before any timing.

    python benchmarks/airbench94_reference.py --npz cifar.npz --epochs 9.9 [--seed 0]

Prints one JSON line: epochs, seconds of training and of the whole process, test accuracy, precision.
"""

from __future__ import annotations

import argparse
import json
import math
import time

STARTED = time.perf_counter()

import numpy as np  # noqa: E402  (the clock starts before the imports, as a command's wall time does)
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

HYP = dict(epochs=9.9, batch_size=1024, lr=11.5, momentum=0.85, weight_decay=0.0153, bias_scaler=64.0,
           label_smoothing=0.2, whiten_bias_epochs=3, translate=2, widths=(64, 256, 256), bn_momentum=0.6,
           scaling_factor=1 / 9, tta_level=2, lookahead_every=5, warmup_frac=0.23, lr_start=0.2, lr_end=0.07)
CIFAR_MEAN = torch.tensor((0.4914, 0.4822, 0.4465)).view(1, 3, 1, 1)
CIFAR_STD = torch.tensor((0.2470, 0.2435, 0.2616)).view(1, 3, 1, 1)


class BatchNorm(nn.BatchNorm2d):
    def __init__(self, width: int, momentum: float) -> None:
        super().__init__(width, eps=1e-12, momentum=1 - momentum)
        self.weight.requires_grad = False


class Conv(nn.Conv2d):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(c_in, c_out, 3, padding="same", bias=False)
        w = self.weight.data
        torch.nn.init.dirac_(w[:w.size(1)])


class ConvGroup(nn.Module):
    def __init__(self, c_in: int, c_out: int, momentum: float) -> None:
        super().__init__()
        self.conv1, self.pool, self.norm1 = Conv(c_in, c_out), nn.MaxPool2d(2), BatchNorm(c_out, momentum)
        self.conv2, self.norm2, self.act = Conv(c_out, c_out), BatchNorm(c_out, momentum), nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.norm1(self.pool(self.conv1(x))))
        return self.act(self.norm2(self.conv2(x)))


class Mul(nn.Module):
    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def make_net() -> nn.Sequential:
    w, m = HYP["widths"], HYP["bn_momentum"]
    net = nn.Sequential(nn.Conv2d(3, 24, 2, padding=0, bias=True), nn.GELU(), ConvGroup(24, w[0], m),
                        ConvGroup(w[0], w[1], m), ConvGroup(w[1], w[2], m), nn.MaxPool2d(3), nn.Flatten(),
                        nn.Linear(w[2], 10, bias=False), Mul(HYP["scaling_factor"]))
    net[0].weight.requires_grad = False
    return net.to(memory_format=torch.channels_last)


def init_whitening(conv: nn.Conv2d, images: torch.Tensor, eps: float = 5e-4) -> None:
    """The whitening filters from the covariance of every 2×2 patch of `images` (normalized)."""
    c, (h, w) = images.shape[1], conv.weight.shape[2:]
    patches = images.unfold(2, h, 1).unfold(3, w, 1).transpose(1, 3).reshape(-1, c, h, w).float()
    flat = patches.view(len(patches), -1)
    eigenvalues, eigenvectors = torch.linalg.eigh(flat.T @ flat / len(flat), UPLO="U")
    filters = eigenvectors.T.reshape(c * h * w, c, h, w).flip(0)
    scaled = filters / torch.sqrt(eigenvalues.flip(0).view(-1, 1, 1, 1) + eps)
    conv.weight.data[:] = torch.cat((scaled, -scaled))


def batches(images: torch.Tensor, labels: torch.Tensor, epoch: int, gen: torch.Generator, flip_mask: torch.Tensor):
    """One epoch's augmented, normalized batches of HYP's size (the last partial one dropped)."""
    n, pad, bs = len(images), HYP["translate"], HYP["batch_size"]
    flips = flip_mask if epoch % 2 == 0 else ~flip_mask
    x = torch.where(flips.view(-1, 1, 1, 1), images.flip(-1), images)
    x = F.pad(x, (pad,) * 4, mode="reflect")
    dx, dy = (torch.randint(0, 2 * pad + 1, (n,), generator=gen) for _ in range(2))
    order = torch.randperm(n, generator=gen)
    rows = torch.arange(32)
    for i in range(n // bs):
        idx = order[i * bs:(i + 1) * bs]
        ys = (dy[idx].view(-1, 1) + rows).view(-1, 1, 32, 1).expand(-1, 3, 32, 32 + 2 * pad)
        part = torch.gather(x[idx], 2, ys)
        xs = (dx[idx].view(-1, 1) + rows).view(-1, 1, 1, 32).expand(-1, 3, 32, 32)
        yield torch.gather(part, 3, xs).contiguous(memory_format=torch.channels_last), labels[idx]


def lr_factor(step: int, total: int) -> float:
    warm = int(total * HYP["warmup_frac"])
    if step < warm:
        f = step / warm
        return HYP["lr_start"] * (1 - f) + f
    f = (step - warm) / (total - warm)
    return (1 - f) + HYP["lr_end"] * f


def optimizer(net: nn.Module) -> torch.optim.SGD:
    scale = 1024 * (1 + 1 / (1 - HYP["momentum"]))
    lr, wd = HYP["lr"] / scale, HYP["weight_decay"] * HYP["batch_size"] / scale
    biases = [p for k, p in net.named_parameters() if "norm" in k and p.requires_grad]
    others = [p for k, p in net.named_parameters() if "norm" not in k and p.requires_grad]
    lr_b = lr * HYP["bias_scaler"]
    return torch.optim.SGD([dict(params=biases, lr=lr_b, weight_decay=wd / lr_b),
                            dict(params=others, lr=lr, weight_decay=wd / lr)], momentum=HYP["momentum"], nesterov=True)


def tta_logits(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    def mirror(v: torch.Tensor) -> torch.Tensor:
        return 0.5 * net(v).float() + 0.5 * net(v.flip(-1)).float()
    plain = mirror(x)
    padded = F.pad(x, (1,) * 4, mode="reflect")
    shifted = torch.stack([mirror(padded[:, :, :32, :32]), mirror(padded[:, :, 2:, 2:])]).mean(0)
    return 0.5 * plain + 0.5 * shifted


def train_and_test(data: dict[str, np.ndarray], epochs: float, seed: int, autocast: bool) -> dict[str, float]:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)

    def normalize(a: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(a).permute(0, 3, 1, 2).float().div(255)
        return ((x - CIFAR_MEAN) / CIFAR_STD).contiguous(memory_format=torch.channels_last)

    train_x, train_y = normalize(data["train_x"]), torch.from_numpy(data["train_y"]).long()
    test_x, test_y = normalize(data["test_x"]), torch.from_numpy(data["test_y"]).long()
    net = make_net()
    init_whitening(net[0], train_x[:5000])
    opt = optimizer(net)
    steps_per_epoch = len(train_x) // HYP["batch_size"]
    total = math.ceil(steps_per_epoch * epochs)
    slow = {k: v.clone() for k, v in net.state_dict().items()}
    flip_mask = torch.rand(len(train_x), generator=gen) < 0.5
    amp = torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast)
    step, t0 = 0, time.perf_counter()
    for epoch in range(math.ceil(epochs)):
        net[0].bias.requires_grad = epoch < HYP["whiten_bias_epochs"]
        net.train()
        for x, y in batches(train_x, train_y, epoch, gen, flip_mask):
            for g in opt.param_groups:
                g["lr"] = g.setdefault("base_lr", g["lr"]) * lr_factor(step, total)
            with amp:
                out = net(x)
            loss = F.cross_entropy(out.float(), y, label_smoothing=HYP["label_smoothing"], reduction="none").sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if step % HYP["lookahead_every"] == 0:
                lookahead(net, slow, 0.95 ** 5 * (step / total) ** 3)
            if step >= total:
                break
        if step >= total:
            break
    lookahead(net, slow, 1.0)
    train_seconds = time.perf_counter() - t0
    net.eval()
    correct = 0
    with torch.no_grad(), amp:
        for i in range(0, len(test_x), 1000):
            correct += int((tta_logits(net, test_x[i:i + 1000]).argmax(1) == test_y[i:i + 1000]).sum())
    return {"train_seconds": train_seconds, "test_accuracy": correct / len(test_x), "steps": total}


@torch.no_grad()
def lookahead(net: nn.Module, slow: dict[str, torch.Tensor], decay: float) -> None:
    for (_, s), v in zip(slow.items(), net.state_dict().values()):
        if v.dtype.is_floating_point:
            s.lerp_(v, 1 - decay)
            v.copy_(s)


def native_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--npz", required=True)
    p.add_argument("--epochs", type=float, default=HYP["epochs"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = dict(np.load(args.npz))
    autocast = native_bf16()
    result = train_and_test(data, args.epochs, args.seed, autocast)
    print(json.dumps({"epochs": args.epochs, "seed": args.seed, **result, "precision": "amp-bf16" if autocast
                      else "fp32", "threads": torch.get_num_threads(),
                      "process_seconds": time.perf_counter() - STARTED}))


if __name__ == "__main__":
    main()
