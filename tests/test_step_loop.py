"""step.step_loop, the one loop training, the budget's calibration and the lr finder step through: a loop broken
off and taken up again at its step replays the same weights (dropout's draws are seeded per step), `end` is asked
before every step, and `averages=False` leaves the lookahead and EMA alone."""

from types import SimpleNamespace

import torch
from torch import nn

from imgclf.engine.device import Precision
from imgclf.engine.ema import EMA, Lookahead
from imgclf.engine.step import step_loop


class FixedBatches:
    """`per_epoch` batches of 8 random 4-feature rows per epoch, each a function of (epoch, step)."""

    def __init__(self, per_epoch: int = 6) -> None:
        self.per_epoch = per_epoch

    def __len__(self) -> int:
        return self.per_epoch

    def epoch(self, epoch: int, start: int = 0):
        for step in range(start, self.per_epoch):
            g = torch.Generator().manual_seed(1000 * epoch + step)
            yield torch.randn(8, 4, generator=g), torch.randint(0, 3, (8,), generator=g)


def fake_run(total: int = 12) -> SimpleNamespace:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3)).train()
    return SimpleNamespace(
        cfg=SimpleNamespace(seed=3, label_smoothing=0.0), world=SimpleNamespace(rank=0), device=torch.device("cpu"),
        model=model, step_model=model,
        opt=torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), class_weights=None, total_steps=total,
        prec=Precision(None, torch.amp.GradScaler("cpu", enabled=False), False),
        ema=EMA(model, 0.9), lookahead=Lookahead(model))


def weights(run: SimpleNamespace) -> list[torch.Tensor]:
    return [t.clone() for t in [*run.model.state_dict().values(), *run.ema.state_dict().values(),
                                *run.lookahead.slow.values()]]


def lr_at(done: int) -> float:
    return 0.1 / (1 + done)


def test_a_loop_taken_up_again_at_its_step_replays_the_same_weights():
    whole = fake_run()
    seen = [(s.epoch, s.step, s.done) for s in step_loop(whole, FixedBatches(), lr_at, epoch=1, done=6,
                                                         end=lambda e: 6)]
    assert seen == [(1, step, 7 + step) for step in range(6)]
    split = fake_run()
    for s in step_loop(split, FixedBatches(), lr_at, epoch=1, done=6, end=lambda e: 6):
        if s.step == 2:
            break
    torch.rand(1000)   # other draws in between (a resumed process's own) must not change the steps after
    rest = [s.step for s in step_loop(split, FixedBatches(), lr_at, epoch=1, start=3, done=9, end=lambda e: 6)]
    assert rest == [3, 4, 5]
    assert all(torch.equal(a, b) for a, b in zip(weights(whole), weights(split), strict=True))


def test_end_is_asked_before_every_step_and_without_it_the_loop_goes_on_into_the_next_epoch():
    run, end = fake_run(), {"at": 5}
    steps = []
    for s in step_loop(run, FixedBatches(), lr_at, end=lambda e: end["at"]):
        steps.append(s.step)
        end["at"] = 3   # a re-plan after the first step moves the epoch's end
    assert steps == [0, 1, 2]
    assert list(step_loop(run, FixedBatches(), lr_at, start=4, end=lambda e: 3)) == []
    endless = step_loop(run, FixedBatches(per_epoch=2), lr_at)
    assert [(s.epoch, s.step, s.done, s.lr) for s in (next(endless) for _ in range(5))] == \
        [(e, st, d + 1, lr_at(d)) for d, (e, st) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1), (2, 0)])]


def test_without_averages_the_lookahead_and_ema_are_left_alone():
    run = fake_run(total=1)   # past its total the lookahead would hand the model its slow weights every step
    before = [t.clone() for t in [*run.ema.state_dict().values(), *run.lookahead.slow.values()]]
    model_before = [p.clone() for p in run.model.parameters()]
    for s in step_loop(run, FixedBatches(), lr_at, averages=False):
        if s.done == 4:
            break
    after = [*run.ema.state_dict().values(), *run.lookahead.slow.values()]
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(model_before, run.model.parameters(), strict=True))
