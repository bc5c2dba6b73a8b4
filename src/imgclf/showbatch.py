"""The images `imgclf show` draws (and imgclf.show_batch returns): a split's images with their class names, or a
training batch as the augmentation makes it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

SHOW_CELL_PX = 128   # `show` enlarges small images (8×8 digits, 32×32 CIFAR) by whole pixels to about this side
SHOW_PHOTO_PX = 160  # and reads photos again from their files at up to this side when training sees them smaller


def batch_to_show(data: Any, n: int = 16, split_name: str = "train", seed: int = 0, augmented: bool = False,
                  data_dir: str | None = None, image_size: int | None = None, images_root: str | None = None,
                  columns: Any = None) -> tuple[torch.Tensor, list[str], str]:
    """`n` images of `data` drawn with `seed` from a split (or the first training batch, augmented), their class
    names and a title saying what they are."""
    from .data import load_dataset

    if augmented:
        from .engine.builders import augmented_batch
        from .engine.setup import load_data

        ds, cfg, _ = load_data({"data": data, "data_dir": data_dir, "image_size": image_size,
                                "seed": seed, "images_root": images_root, "columns": columns})
        images, labels = augmented_batch(cfg, ds, n)
        what = (f"{ds.name}, train split after augmentation\n(crop_scale {cfg.crop_scale}, crop_pad {cfg.crop_pad}, "
                f"flip {cfg.flip}, color_jitter {cfg.color_jitter}, cutout {cfg.cutout})")
    else:
        from .models.pretrained import weights_available
        from .recipes import PHOTO_PRETRAINED_SIZE, PRETRAINED_PHOTOS

        # photos at the size `imgclf train` decodes them at (the pretrained default's, where it applies)
        photo_size = PHOTO_PRETRAINED_SIZE if weights_available(PRETRAINED_PHOTOS["model"]) else None
        ds = load_dataset(data, data_dir, image_size=image_size,
                          val_split=0.1 if split_name == "val" else 0, photo_size=photo_size,
                          images_root=images_root, columns=columns)
        split = ds.split(split_name)
        idx = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))[:n].sort().values
        images, drawn = drawn_images(ds, split, idx)
        labels, what = split.labels[idx], f"{ds.name}, {split_name} split{drawn}"
    return images, [ds.classes[int(y)] for y in labels], what


def drawn_images(ds: Any, split: Any, idx: Any) -> tuple[Any, str]:
    """The images at `idx` of a split as `show` draws them, and a note for its title: a folder's images that were
    loaded smaller than their files (photos at a training size such as 64×64) are read again from the files at up
    to SHOW_PHOTO_PX, fitted as training fits them; anything else as loaded (a file that cannot be read again too)."""
    import numpy as np

    from .data.images import decode_image
    from .errors import DataError

    c, h, w = ds.shape
    stored = getattr(ds, "stored_shape", None)
    if stored is None or split.keys is None or max(h, w) >= min(SHOW_PHOTO_PX, max(stored[1:])):
        return split.images[idx], ""
    side = min(SHOW_PHOTO_PX, max(stored[1:]))
    root = split.origin.root if split.origin is not None else split_folder(Path(ds.source), split)
    try:
        again = [decode_image(root / split.keys[i], (side, side), "RGB" if c == 3 else "L") for i in idx.tolist()]
    except DataError:
        return split.images[idx], ""
    return torch.from_numpy(np.stack(again)), f"\n(drawn at {side}×{side} from the files; training sees {h}×{w})"


def split_folder(source: Path, split: Any) -> Path:
    """The folder a split's keys are relative to: its own (train/, test/, val/), train/ for a val split held out
    of it, or the root of a folder without them."""
    return next((d for d in (source / split.name, source / "train") if (d / split.keys[0]).is_file()), source)


