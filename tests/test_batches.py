"""The batch pipeline: exact replay from any step, sharding for multi-process runs, augmentation correctness."""

import torch

from imgclf.data.augment import Augment, flip_mask, random_crop, reflect_index
from imgclf.data.batches import Batches, Normalizer
from imgclf.data.split import Split, channel_stats


def _split(n=103, c=3, size=8):
    g = torch.Generator().manual_seed(0)
    return Split(torch.randint(0, 256, (n, c, size, size), dtype=torch.uint8, generator=g), torch.arange(n) % 5)


def _batches(split, **kw):
    return Batches(split, 16, Normalizer([0.5] * 3, [0.25] * 3, "cpu"), train=True,
                   augment=Augment(2, "alternate", 3), seed=7, **kw)


def test_same_seed_same_batches_and_resume_mid_epoch():
    b = _batches(_split())
    full = list(b.epoch(2))
    resumed = list(b.epoch(2, start_step=4))
    assert len(full) == 7 == len(b)          # 103 = 6 × 16 + 7: the last 7 (6.8% of the split) are kept
    assert len(full[-1][1]) == 7
    for (x1, y1), (x2, y2) in zip(full[4:], resumed):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(full[0][0], next(iter(b.epoch(3)))[0])


def test_a_last_partial_batch_is_dropped_only_when_small():
    assert len(_batches(_split(n=100))) == 6    # 4 left over: 4% of the split, dropped
    assert len(_batches(_split(n=97))) == 6     # 1 left over: BatchNorm cannot normalize one image
    assert len(_batches(_split(n=40))) == 3     # 8 left over, kept: small datasets need every image
    assert len(Batches(_split(n=100), 16, Normalizer([0.5] * 3, [0.25] * 3, "cpu"))) == 7  # evaluation: all


def test_shards_are_disjoint_and_cover_the_epoch():
    s = _split(n=96)
    shards = [_batches(s, rank=r, world_size=3).order(5) for r in range(3)]
    all_idx = torch.cat(shards)
    assert len(all_idx) == 96 and len(torch.unique(all_idx)) == 96
    assert torch.equal(_batches(s).order(5)[1::3], shards[1])


def test_normalization_is_the_formula():
    s = _split(n=4)
    x, _ = next(Batches(s, 4, Normalizer([0.5] * 3, [0.25] * 3, "cpu")).epoch(0))
    assert torch.allclose(x, (s.images.float() / 255 - 0.5) / 0.25, atol=1e-5)


def test_crop_is_a_reflect_padded_translation():
    x = torch.arange(2 * 1 * 5 * 5, dtype=torch.uint8).reshape(2, 1, 5, 5)
    g = torch.Generator().manual_seed(3)
    out = random_crop(x, 2, g)
    g = torch.Generator().manual_seed(3)
    dy, dx = torch.randint(-2, 3, (2,), generator=g), torch.randint(-2, 3, (2,), generator=g)
    padded = torch.nn.functional.pad(x.float(), (2, 2, 2, 2), mode="reflect")
    for i in range(2):
        y0, x0 = 2 + int(dy[i]), 2 + int(dx[i])
        assert torch.equal(out[i].float(), padded[i, :, y0:y0 + 5, x0:x0 + 5])
    assert reflect_index(torch.tensor([-1, 5, 6]), 5).tolist() == [1, 3, 2]
    g = torch.Generator().manual_seed(3)
    flipped = random_crop(x, 2, g, flip=torch.tensor([True, False]))  # crop and mirror in one gather
    assert torch.equal(flipped[0], out[0].flip(2)) and torch.equal(flipped[1], out[1])


def test_alternating_flips_cover_both_orientations():
    idx = torch.arange(50)
    m0, m1 = flip_mask(idx, 0, 1, "alternate"), flip_mask(idx, 1, 1, "alternate")
    assert torch.equal(m0, ~m1) and 10 < int(m0.sum()) < 40
    assert flip_mask(idx, 0, 1, "none") is None


def test_eval_batches_keep_order_and_last_partial_batch():
    s = _split(n=35)
    ys = torch.cat([y for _, y in Batches(s, 16, Normalizer([0.5] * 3, [0.25] * 3, "cpu")).epoch(0)])
    assert torch.equal(ys, s.labels)


def test_channel_stats_match_float_mean_and_std():
    """The histogram computation gives what float mean/std give, on the evenly spaced sample it promises."""
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (1000, 3, 6, 5), generator=g, dtype=torch.uint8)
    images[:, 1] //= 4                                     # channels with clearly different statistics
    for max_samples, sample in ((10000, images), (300, images[::4])):
        mean, std = channel_stats(images, max_samples=max_samples)
        x = sample.double() / 255
        torch.testing.assert_close(torch.tensor(mean, dtype=torch.float64), x.mean(dim=(0, 2, 3)), atol=1e-6, rtol=0)
        torch.testing.assert_close(torch.tensor(std, dtype=torch.float64), x.std(dim=(0, 2, 3)), atol=1e-6, rtol=0)
