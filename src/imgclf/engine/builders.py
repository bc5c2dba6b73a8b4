"""The pieces of a run, each built from the resolved settings: normalization, the model (and the weights it
starts from), the optimizer, the augmentation and the batches. setup.py puts them together."""

from __future__ import annotations

from typing import Any

import torch

from ..config import TrainConfig
from ..data import Dataset, channel_stats
from ..data.augment import Augment
from ..data.batches import Batches, Normalizer
from ..data.images import resize_images
from ..data.split import Split
from ..errors import ImgclfError
from ..models import build_model, pretrained
from . import distributed as dist
from .optim import SGD, Muon, muon_groups


def auto_size_cap(device: str) -> int:
    """The largest size chosen automatically for a folder of mixed sizes: on a CPU a step costs about its
    pixels, so 64 (benchmarks/RESULTS.md has images/s by size); on a CUDA GPU 224, the ImageNet size."""
    gpu = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    return 224 if gpu else 64


def normalization(cfg: TrainConfig, data: Dataset) -> tuple[list[float], list[float]]:
    """Per-channel mean/std: the training split's own (computed once, stored in every checkpoint) or 0.5/0.5."""
    if cfg.normalize == "half":
        return [0.5] * data.shape[0], [0.5] * data.shape[0]
    return channel_stats(data.train.images)


class StartingWeights:
    """Where a new run's weights start: ImageNet weights (--pretrained) or a file (--init-weights), with the
    normalization they were trained with; neither: None everywhere (random initialization)."""

    def __init__(self, cfg: TrainConfig, channels: int) -> None:
        self.state: dict[str, Any] | None = None
        self.where, self.normalization = "", None
        if cfg.pretrained and cfg.init_weights:
            raise ImgclfError("--pretrained and --init-weights both name starting weights; pass one of them")
        if cfg.pretrained:
            self.where = pretrained.weights_where(cfg.model)
            self.state = pretrained.pretrained_state(cfg.model)
            self.normalization = pretrained.pretrained_normalization(channels, cfg.model)
        elif cfg.init_weights:
            self.where = cfg.init_weights
            self.state = pretrained.read_weights(cfg.init_weights)
            self.normalization = pretrained.normalization_of(self.state, channels)

    def load_into(self, model: torch.nn.Module) -> list[str]:
        """Copy the weights in (a new head where the class count differs); notes for the run header."""
        if self.state is None:
            return []
        notes = pretrained.init_from_state(model, self.state, self.where)
        mean = ", ".join(f"{m:.3f}" for m in self.normalization[0])
        return [*notes, f"normalization of the starting weights: mean {mean}"]


def make_model(cfg: TrainConfig, data: Dataset, mean: list[float], std: list[float], device: torch.device,
               channels_last: bool, init: bool = True, arch: dict[str, Any] | None = None,
               start: StartingWeights | None = None) -> torch.nn.Module:
    """Build cfg.model for this data (seeded), let it see the data if it wants to (whitening), copy in starting
    weights if any, move it. `arch`: architecture settings from a checkpoint being resumed (they win)."""
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, data.shape[0], data.num_classes, data.shape[1:], **(arch or {}))
    if init and hasattr(model, "init_from_data"):
        pick = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(cfg.seed))[:5000]
        model.init_from_data(Normalizer(mean, std, "cpu")(data.train.images[pick]))
    if start is not None:
        data.notes += start.load_into(model)
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return model


def make_optimizer(cfg: TrainConfig, model: torch.nn.Module, bf16: bool = False) -> torch.optim.Optimizer:
    """SGD (ours, see optim.py), Muon (SGD with Muon steps for the hidden weights) or AdamW; weight decay on weights
    only, not on biases and norm shifts. `bf16`: the run computes in bf16 (natively), so Muon's Newton–Schulz
    matmuls do too (fastcnn-wide's 37 → 22 ms a step on a Zen 4; fp32 where bf16 would be emulated)."""
    if cfg.backbone_lr_mult != 1.0:   # discriminative rates: the backbone's groups carry lr_mult (step.set_lr)
        groups = pretrained.param_groups(model, cfg.weight_decay, cfg.backbone_lr_mult)
    else:
        params = [p for p in model.parameters() if p.requires_grad]
        groups = [{"params": [p for p in params if p.ndim > 1], "weight_decay": cfg.weight_decay},
                  {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]
    nesterov = cfg.nesterov and cfg.momentum > 0
    if cfg.optimizer == "sgd":
        return SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=nesterov)
    if cfg.optimizer == "muon":   # the head stays with SGD: its rows are the classes (optim.py)
        head = {id(p) for p in pretrained.head_parameters(model)}
        return Muon(muon_groups(groups, head), lr=cfg.lr, momentum=cfg.momentum, nesterov=nesterov,
                    ns_dtype=torch.bfloat16 if bf16 else None)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def augment_for(cfg: TrainConfig) -> Augment:
    """The training augmentation the settings ask for (what `imgclf show --augmented` draws too)."""
    return Augment(cfg.crop_pad, cfg.flip, cfg.cutout, cfg.crop_scale, cfg.color_jitter)


def augmented_batch(cfg: TrainConfig, data: Dataset, n: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """The first `n` images of epoch 1's first training batch as training sees them, augmented, uint8 (for a
    look: `imgclf show --augmented` and the run folder's plots/train_batch.png)."""
    c = data.shape[0]
    b = Batches(data.train, max(1, min(n, len(data.train))), Normalizer([0.0] * c, [1.0] * c, "cpu"), train=True,
                augment=augment_for(cfg), seed=cfg.seed)
    return next(b.epoch(0, normalized=False))


def make_batches(cfg: TrainConfig, data: Dataset, norm: Normalizer, device: torch.device, world: dist.World
                 ) -> tuple[Batches, Batches | None]:
    """The shuffled, augmented training batches, and (progressive resizing) the same at the small size."""
    augment = augment_for(cfg)

    def shuffled(split: Split) -> Batches:
        return Batches(split, cfg.batch_size, norm, train=True, augment=augment, seed=cfg.seed, device=device,
                       rank=world.rank, world_size=world.size)

    batches = shuffled(data.train)   # config.resolve made sure the batch fits the training split
    small = None
    if cfg.progressive_size and cfg.progressive_epochs:
        size = (cfg.progressive_size, cfg.progressive_size)
        small = shuffled(Split(resize_images(data.train.images, size), data.train.labels, "train"))
    return batches, small


@torch.no_grad()
def check_takes_size(model: torch.nn.Module, channels: int, cfg: TrainConfig, device: torch.device,
                     channels_last: bool) -> None:
    """Progressive resizing needs a net that accepts any input size (global pooling), not a fixed flatten."""
    x = torch.zeros(2, channels, cfg.progressive_size, cfg.progressive_size, device=device)
    model.eval()
    try:
        model(x.contiguous(memory_format=torch.channels_last) if channels_last else x)
    except RuntimeError:
        raise ImgclfError(f"--model {cfg.model} only takes images of its full size, so --progressive-size "
                          f"{cfg.progressive_size} cannot work; use a fastcnn or resnet18 model, or "
                          "--progressive-size 0") from None
    finally:
        model.train()
