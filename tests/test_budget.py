"""--budget and --steps: the plan follows what the calibration measured (mocked here: tests never depend on how fast
the machine is), the schedule ends at the planned step, and a budgeted run resumes bitwise."""

from __future__ import annotations

import json
import math
import time

import pytest
import torch
import yaml

import imgclf
from imgclf.checkpoint import load_checkpoint
from imgclf.engine import budget
from imgclf.engine.budget import Calibration, last_fitting, steps_within
from imgclf.errors import ConfigError

FAST = dict(data="digits", model="fastcnn-tiny", batch_size=64, plots=False, device="cpu", val_split=0.0)


def fixed_calibration(step_seconds: dict[str, float] | float):
    """A calibrate() stand-in: step time per model name (or one for all), no clocks."""
    def calibrate(run, seconds, out=None):
        per = step_seconds if isinstance(step_seconds, float) else step_seconds[run.cfg.model]
        return Calibration(step_seconds=per, eval_seconds=1e-4, save_seconds=0.01, setup_seconds=0.0)
    return calibrate


def test_steps_within_fits_the_whole_run_in_the_time():
    c = Calibration(step_seconds=0.01, eval_seconds=0.001, save_seconds=0.05, setup_seconds=1.0)
    steps = steps_within(60.0, c, steps_per_epoch=100, n_val=500, n_test=1000, eval_every=1, plots=True)
    epochs = -(-steps // 100)
    used = (1.0 + 1000 * 0.001 + budget.PLOTS_SECONDS + budget.EXIT_SECONDS + steps * 0.01 * (1 + budget.SAFETY)
            + epochs * 500 * 0.001 + 2 * epochs * 0.05)
    assert 0 < used <= 60.0
    one_more = steps_within(60.0 + 0.05, c, 100, 500, 1000, 1, True)
    assert steps <= one_more <= steps + 5            # more time never plans fewer steps
    assert steps_within(3.0, c, 100, 500, 1000, 1, True) == 0   # the fixed costs alone do not fit


@pytest.mark.parametrize("n", [1, 2, 5, 8])
def test_last_fitting_finds_the_most_capable_candidate_that_fits_in_about_log2_n_calibrations(n):
    for last in range(n):                                   # candidates 0..last fit, the costlier ones do not
        asked: list[int] = []

        def fits(i: int, asked: list[int] = asked, last: int = last) -> bool:
            asked.append(i)
            return i <= last

        assert last_fitting(n, fits) == last
        assert len(asked) == len(set(asked)) <= math.ceil(math.log2(n))
    assert last_fitting(n, lambda i: False) == 0            # none fits: the cheapest (the plan then says why)


@pytest.mark.slow
def test_a_budget_plans_the_steps_and_the_schedule_ends_there(tmp_path, monkeypatch):
    monkeypatch.setattr(budget, "calibrate", fixed_calibration(0.06))
    s = imgclf.train(FAST | {"budget": "60s", "out": str(tmp_path)}, quiet=True)
    ckpt = load_checkpoint(s["checkpoint"])
    plan = ckpt["budget_plan"]
    planned = plan["calibration"][0]["planned_steps"]
    assert plan["budget_seconds"] == 60 and plan["calibration"][0]["chosen"] is True
    # the plan fills the time left when it was made: (60 s - what start-up and calibration took) with the steps
    # measured (60 ms, plus the safety share), the test pass and the exit; a slower start plans fewer steps
    measured = Calibration(**{k: plan["calibration"][0][k] for k in Calibration.__dataclass_fields__})
    per_epoch = plan["calibration"][0]["steps_per_epoch"]
    fits = [steps_within(60 - plan["planned_at_seconds"], measured, per_epoch, 0, 360, 1, False, margin=m)
            for m in (budget.SAFETY, budget.PLAN_SAFETY)]   # the margin depends on whether the loop re-plans
    # ±1 step: the record's figures are rounded (6 decimals) and the steps were counted a moment before it was written
    assert planned > 0 and any(f - 1 <= planned <= f + 1 for f in fits), (planned, fits)
    assert s["steps"] == ckpt["global_step"] == ckpt["config"]["steps"] == planned
    assert ckpt["config"]["epochs"] == len(ckpt["history"]) == -(-planned // per_epoch)
    saved = yaml.safe_load((tmp_path / "digits-fastcnn-tiny" / "config.yaml").read_text())
    assert saved["steps"] == planned and saved["budget"] == "60s"
    # the learning rate reached the one-cycle's end at the planned step: the last epoch's lr is the last step's
    from imgclf.engine.schedule import lr_at
    warmup = round(ckpt["config"]["warmup"] * per_epoch)
    assert ckpt["history"][-1]["lr"] == pytest.approx(lr_at(planned - 1, planned, ckpt["config"]["lr"], "onecycle",
                                                            warmup), abs=1e-8)
    assert ckpt["history"][-1]["lr"] < 0.01 * ckpt["config"]["lr"]
    assert s["budget"]["seconds"] == 60 and s["budget"]["within"] == (s["total_seconds"] <= 60)


def test_steps_cut_the_last_epoch_short(tmp_path):
    s = imgclf.train(FAST | {"steps": 30, "out": str(tmp_path)}, quiet=True)
    ckpt = load_checkpoint(s["checkpoint"])
    assert ckpt["global_step"] == 30 and ckpt["config"]["epochs"] == 2 and len(ckpt["history"]) == 2
    assert ckpt["step_in_epoch"] == 0 and ckpt["epoch"] == 2


@pytest.mark.slow
def test_a_budgeted_run_resumes_bitwise(tmp_path, monkeypatch):
    from test_train import register_interrupting_model

    from imgclf.engine.train import TrainingStopped

    monkeypatch.setattr(budget, "calibrate", fixed_calibration(0.4))   # ~ 130 steps: a few epochs of digits
    base = FAST | {"out": str(tmp_path), "ema": 0.9, "lookahead": True}
    register_interrupting_model("tiny-budget-ctrl-c", 33)
    with pytest.raises(TrainingStopped):
        imgclf.train(base | {"budget": "60s", "name": "stopped", "model": "tiny-budget-ctrl-c"}, quiet=True)
    planned = load_checkpoint(tmp_path / "stopped" / "last.pt")["config"]["steps"]
    assert planned > 40
    monkeypatch.setattr(budget, "calibrate", fixed_calibration(2.0))   # a resume that re-planned would see this
    resumed = imgclf.train(resume=tmp_path / "stopped" / "last.pt", quiet=True)
    # this command's seconds are not the run's: whether the run kept to its budget is not known
    assert resumed["budget"] == {"seconds": 60, "within": None}
    # the same run with the plan's steps given outright, never interrupted
    imgclf.train(base | {"steps": planned, "name": "full", "model": "fastcnn-tiny"}, quiet=True)
    a, b = load_checkpoint(tmp_path / "full" / "last.pt"), load_checkpoint(tmp_path / "stopped" / "last.pt")
    assert a["global_step"] == b["global_step"] == planned and b["budget_plan"]["budget_seconds"] == 60
    for part in ("model", "ema", "lookahead"):
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), (part, k)
    for k, v in a["lookahead"].items():          # the last step handed the model the slow weights
        assert torch.equal(a["model"][k], v), k


@pytest.mark.slow
def test_a_budgeted_run_replans_on_its_own_steps_and_resumes_bitwise(tmp_path, monkeypatch):
    """The calibration can miss the loop's pace (here it measured 10 ms a step and the loop takes 50): at the end of
    the warm-up (whose learning rates do not depend on the total) the run plans again from its own timed steps,
    before its first checkpoint; the schedule ends at the new total, config.yaml and the checkpoint record it, and a
    run stopped after it resumes bitwise onto the same steps; the callbacks' run info is brought up to the re-plan."""
    from test_tracking import Recorder
    from test_train import register_interrupting_model

    from imgclf.engine.train import TrainingStopped

    monkeypatch.setattr(budget, "calibrate", fixed_calibration(0.01))
    first = []

    def loop_clock(run):   # the loop's clock: 50 ms a step from its first timed step on (no machine's real speed)
        if not first:
            first.append(time.perf_counter())
        return first[0] + 0.05 * (run.progress.global_step - budget.REPLAN_FROM)

    monkeypatch.setattr(budget, "_now", loop_clock)
    monkeypatch.setattr(budget, "REFIT_EVERY_S", math.inf)   # no refits on the real clock against the mocked one
    base = FAST | {"out": str(tmp_path), "batch_size": 16}        # 89 steps an epoch, warm-up 44
    register_interrupting_model("tiny-replan-ctrl-c", 60)   # after the re-plan, before any plan could end
    rec = Recorder()
    with pytest.raises(TrainingStopped):
        imgclf.train(base | {"budget": "20s", "name": "stopped", "model": "tiny-replan-ctrl-c"}, quiet=True,
                     callbacks=[rec])
    stopped = load_checkpoint(tmp_path / "stopped" / "last.pt")
    r = stopped["budget_plan"]["replan"]
    info = rec.of("on_train_start")[0]                      # what the callbacks were told, brought up to the re-plan
    assert info["config"]["steps"] == info["total_steps"] == r["steps"]
    assert [type(e) for e in rec.of("on_train_error")] == [TrainingStopped]
    assert r["at_step"] == 44 and r["calibrated_step_seconds"] == 0.01
    assert r["loop_step_seconds"] == pytest.approx(0.05) and r["timed_seconds"] == pytest.approx(2.0)
    assert r["trusted"] is False     # 2 s of steps: slower than calibrated counts, faster would not
    # the calibrated plan: ~1,500 steps in 20 s; the loop's own pace leaves (20 s - start-up - 2 s timed - exit) at
    # 55 ms a step: a few hundred, fewer than planned, at least twice the warm-up (how many depends on how long this
    # machine took to start, so only the order is asserted)
    assert 88 <= r["steps"] < r["steps_before"]
    assert stopped["config"]["steps"] == r["steps"] and stopped["config"]["epochs"] == -(-r["steps"] // 89)
    assert yaml.safe_load((tmp_path / "stopped" / "config.yaml").read_text())["steps"] == r["steps"]
    resumed = imgclf.train(resume=tmp_path / "stopped" / "last.pt", quiet=True)
    assert resumed["steps"] == r["steps"]
    done = load_checkpoint(tmp_path / "stopped" / "last.pt")
    assert done["history"][-1]["lr"] < 0.01 * done["config"]["lr"]      # the schedule ended at the new total
    imgclf.train(base | {"steps": r["steps"], "name": "full", "model": "fastcnn-tiny"}, quiet=True)
    full = load_checkpoint(tmp_path / "full" / "last.pt")
    for k in full["model"]:
        assert torch.equal(full["model"][k], done["model"][k]), k


def test_a_short_timed_window_can_only_shorten_the_plan(monkeypatch):
    """A VM's pace wanders: 1.4 s of fastcnn-tiny's steps measured 12% faster than the run then stepped (it overran),
    so a window under TRUSTED_WINDOW_S can shorten the calibrated plan of 2,500 steps but not lengthen it; a longer
    window can."""
    from types import SimpleNamespace

    c = Calibration(step_seconds=0.03, eval_seconds=0.0, save_seconds=0.0, setup_seconds=0.0)

    def replanned(loop_step, at):
        clock = iter([0.0, loop_step * (at - budget.REPLAN_FROM)])
        monkeypatch.setattr(budget, "_now", lambda run: next(clock))
        run = SimpleNamespace(cfg=SimpleNamespace(steps=2500, epochs=1, eval_every=1, plots=False), steps=2500,
                              epochs=1, steps_per_epoch=10_000, probe_epochs=0,
                              data=SimpleNamespace(val=None, test=[]), budget_plan={}, thread_watch=None)
        rp = budget.Replan(deadline=100.0, cal=c, at=at)
        assert not rp.after_step(run, budget.REPLAN_FROM) and rp.after_step(run, at)
        return run.budget_plan["replan"]

    short = replanned(0.02, 60)      # 1.1 s timed at 20 ms: ~2,950 steps at the calibrated 30 ms would fit; kept 2,500
    assert not short["trusted"] and short["steps"] == 2500
    slow = replanned(0.05, 60)       # slower than calibrated: believed even from a short window
    assert slow["steps"] == pytest.approx((100 - 2.8 - budget.EXIT_SECONDS) / (0.05 * 1.1) + 60, abs=2)
    long = replanned(0.02, 504)      # 10 s timed: the loop's own 20 ms, with the smaller margin, past the plan
    assert long["trusted"] and long["steps"] == pytest.approx((100 - 10 - budget.EXIT_SECONDS) / 0.021 + 504, abs=2)


def test_after_the_replan_the_run_refits_its_schedule_to_the_time_left(monkeypatch):
    """A machine's pace drifts after the re-plan (a Zen 5's 1-minute run went from 39.6 to ~50 ms a step and ended
    8% late): every REFIT_EVERY_S seconds of steps (the first step of an epoch, which comes after the epoch's end,
    not counted) the total is fitted to the time left at the window's pace; a change within REFIT_TOLERANCE of
    the steps left is not made, and each one made is recorded in the re-plan's 'refits'."""
    from types import SimpleNamespace

    c = Calibration(step_seconds=0.03, eval_seconds=0.0, save_seconds=2.5, setup_seconds=0.0)   # an epoch's end: 5 s
    clock = {"t": 0.0}
    monkeypatch.setattr(budget, "_tick", lambda: clock["t"])
    monkeypatch.setattr(budget, "_now", lambda run: clock["t"])
    run = SimpleNamespace(cfg=SimpleNamespace(steps=2500, epochs=1, eval_every=1, plots=False), steps=2500, epochs=1,
                          steps_per_epoch=1000, probe_epochs=0, data=SimpleNamespace(val=None, test=[]),
                          budget_plan={}, thread_watch=None, progress=SimpleNamespace(step_in_epoch=0))
    rp = budget.Replan(deadline=100.0, cal=c, at=504)

    def steps(first: int, last: int, seconds: float, epoch_end: float = 0.0) -> list:
        made = []
        for done in range(first, last + 1):
            run.progress.step_in_epoch = (done - 1) % run.steps_per_epoch + 1
            clock["t"] += seconds + (epoch_end if run.progress.step_in_epoch == 1 else 0.0)
            made.append(rp.after_step(run, done))
        return made

    steps(1, 504, 0.02)                            # the re-plan: 10 s timed at 20 ms
    plan = run.budget_plan["replan"]
    assert plan["steps"] == run.steps and "refits" not in plan
    assert not any(steps(505, 1800, 0.02, epoch_end=5.0))   # the same pace (a 15 s window: one refit), the epoch's
    assert "refits" not in plan                             # end (planned apart) not counted as steps: no change
    made = [r for r in steps(1801, 2600, 0.03, epoch_end=5.0) if r]   # 50% slower: the rest refitted, shorter
    assert made and made == plan["refits"] and run.steps == made[-1]["steps"] < plan["steps"]
    assert made[-1]["loop_step_seconds"] == pytest.approx(0.03)
    epoch_ends = 5.0 * (-(-run.steps // 1000) - 2)
    assert (run.steps - 2600) * 0.03 + epoch_ends <= 100.0 - clock["t"] - budget.EXIT_SECONDS   # within the budget
    assert run.epochs == -(-run.steps // 1000)


def test_a_refit_leaves_the_last_step_and_the_rungs_cap_alone(monkeypatch):
    """A window that closes on the run's last step changes nothing (one step more would be a new epoch with its own
    validation and checkpoints), and a faster pace never takes the run past its rung's max_epochs."""
    from types import SimpleNamespace

    c = Calibration(step_seconds=0.03, eval_seconds=0.0, save_seconds=0.0, setup_seconds=0.0)
    monkeypatch.setattr(budget, "_now", lambda run: 0.0)
    run = SimpleNamespace(cfg=SimpleNamespace(steps=1000, epochs=1, eval_every=1, plots=False), steps=1000, epochs=1,
                          steps_per_epoch=1000, probe_epochs=0, data=SimpleNamespace(val=None, test=[]),
                          budget_plan={"replan": {}}, thread_watch=None, progress=SimpleNamespace(step_in_epoch=5))
    rp = budget.Replan(deadline=1000.0, cal=c, at=50, max_steps=1200, last=0.0, timed=budget.REFIT_EVERY_S,
                       timed_steps=100)
    monkeypatch.setattr(budget, "_tick", lambda: 0.01)
    assert rp.after_step(run, 1000) is None and run.steps == 1000          # the last step: no refit
    made = rp.after_step(run, 600)                 # 0.15 s a step, 1,000 s left: thousands would fit; the cap holds
    assert made["steps"] == run.steps == 1200 and run.epochs == 2


def test_the_validations_still_to_come_are_counted_from_where_the_run_is():
    """With --eval-every 2, a run in its second epoch has validations after epochs 2, 4, … and the last to come."""
    c = Calibration(step_seconds=0.01, eval_seconds=1.0, save_seconds=0.0, setup_seconds=0.0)

    def cost(total: int, done: int) -> float:
        epochs = range(max(done - 1, 0) // 100 + 1, -(-total // 100) + 1)     # the epoch ends still to come
        validations = sum(1 for e in epochs if e % 2 == 0 or e == epochs[-1])
        return budget.EXIT_SECONDS + (total - done) * 0.01 + validations * 5 * 1.0

    for seconds in (30.0, 40.0):
        total = steps_within(seconds, c, 100, 5, 0, 2, False, done=150, margin=0.0)
        assert cost(total, 150) <= seconds < cost(total + 1, 150)


def test_a_refit_stretches_or_squeezes_the_rest_of_the_schedule_so_the_lr_never_jumps():
    """After a refit at step 800 of 1,000 the lr goes on from where it was and ends with the run's new total,
    longer or shorter; a second refit composes; before the first, the schedule is the re-planned one."""
    from imgclf.engine.schedule import lr_at, schedule_step

    def lr(step, refits):
        return lr_at(schedule_step(step, 1000, refits), 1000, 1.0, "onecycle", 50)

    for new_total in (1200, 900):
        refits = [{"at_step": 800, "steps": new_total}]
        assert lr(800, refits) == lr(800, []) and lr(500, refits) == lr(500, [])
        assert lr(801, refits) == pytest.approx(lr(800, []), rel=0.02)
        assert lr(new_total, refits) == pytest.approx(lr(1000, []))     # the schedule's end, at the new total
    two = [{"at_step": 800, "steps": 1200}, {"at_step": 1000, "steps": 1100}]
    assert lr(1000, two) == pytest.approx(lr(1000, two[:1])) and lr(1100, two) == pytest.approx(lr(1000, []))
    assert schedule_step(1000, 1000, two) == pytest.approx(900)   # halfway through the stretched rest


def test_a_run_replans_only_where_its_first_steps_time_the_rest():
    from types import SimpleNamespace

    def cfg(**kw):
        return SimpleNamespace(**({"warmup": 0.5, "freeze_epochs": 0, "progressive_epochs": 0, "linear_probe": False}
                                   | kw))

    assert budget.replan_step(cfg(), 100, 1000) == 50                     # the warm-up's end, inside epoch 1
    assert budget.replan_step(cfg(warmup=1.5), 100, 1000) is None         # warm-up past the first epoch
    assert budget.replan_step(cfg(), 100, 90) is None     # warm-up capped at half a short run: more steps would move it
    assert budget.replan_step(cfg(warmup=0.1), 100, 1000) is None         # 10 steps: too few to time
    assert budget.replan_step(cfg(freeze_epochs=1), 100, 1000) is None    # head-only steps are cheaper than the rest
    assert budget.replan_step(cfg(progressive_epochs=1), 100, 1000) is None   # so are smaller images
    assert budget.replan_step(cfg(linear_probe=True), 100, 1000) is None  # the probe's checkpoint comes before it


def test_a_replan_counts_only_the_rest_of_the_run():
    c = Calibration(step_seconds=0.01, eval_seconds=0.001, save_seconds=0.05, setup_seconds=0.0)
    total = steps_within(30.0, c, 100, 0, 1000, 1, False, done=40, margin=0.05)
    used = 1000 * 0.001 + budget.EXIT_SECONDS + (total - 40) * 0.01 * 1.05 + 2 * -(-total // 100) * 0.05
    assert used <= 30.0 < used + 0.01 * 1.05 + 0.1
    assert steps_within(1.0, c, 100, 0, 1000, 1, False, done=40) == 40     # nothing more fits: the steps done


def test_lookahead_pulls_toward_slow_weights_harder_as_the_run_ends():
    from imgclf.engine.ema import Lookahead

    net = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(net.weight)
    la = Lookahead(net, every=5)
    with torch.no_grad():
        net.weight.fill_(1.0)
    la.after_step(net, 3, 100)                   # not a 5th step: nothing happens
    assert net.weight.item() == 1.0
    la.after_step(net, 5, 100)                   # early: decay ~0, the slow weights jump to the model's
    assert la.slow["weight"].item() == pytest.approx(1.0, abs=1e-3) and net.weight.item() == la.slow["weight"].item()
    with torch.no_grad():
        net.weight.fill_(2.0)
    la.after_step(net, 90, 100)                  # late: a strong pull back toward the slow weights
    decay = 0.95 ** 5 * 0.9 ** 3
    assert net.weight.item() == pytest.approx(la.slow["weight"].item()) == pytest.approx(1 + (1 - decay), abs=1e-3)
    with torch.no_grad():
        net.weight.fill_(5.0)
    la.after_step(net, 100, 100)                 # the end: the model takes the slow weights
    assert net.weight.item() == pytest.approx(1 + (1 - decay), abs=1e-3)


@pytest.mark.slow
def test_the_ladder_chooses_model_and_size_on_32px_colour_data(tmp_path, monkeypatch):
    from conftest import make_image_folder

    root = make_image_folder(tmp_path / "c32", per_class=30, size=32, classes=("a", "b", "c"))
    slow = {"fastcnn-wide": 5.0, "fastcnn": 5.0, "fastcnn-xl": 5.0}
    monkeypatch.setattr(budget, "calibrate", fixed_calibration({"fastcnn-tiny": 0.01, "fastcnn-small": 0.02,
                                                                 "fastcnn-medium": 0.04, **slow}))
    s = imgclf.train(data=str(root), budget="30s", out=str(tmp_path / "r"), plots=False, device="cpu", quiet=True)
    ckpt = load_checkpoint(s["checkpoint"])
    calibration = ckpt["budget_plan"]["calibration"]
    chosen = [c for c in calibration if c["chosen"]]
    # the search calibrates the middle rung (medium), then halves what is left above it: fastcnn, then wide
    assert [(c["rung"], c["model"]) for c in calibration] == [(3, "fastcnn-medium"), (4, "fastcnn-wide"),
                                                              (5, "fastcnn")]
    assert len(chosen) == 1
    # 90 images, batch adapted small: hundreds of epochs fit for all but the wide net (5 s a step: too few epochs),
    # so the medium one at 32×32 is taken, with the settings its rung names
    assert calibration[-1]["planned_steps"] < 8 * calibration[-1]["steps_per_epoch"]
    assert ckpt["config"]["model"] == "fastcnn-medium" and ckpt["model_args"]["image_size"] == [32, 32]
    assert ckpt["config"]["optimizer"] == "muon" and ckpt["config"]["tta_shift"] == 1
    # naming a model keeps it: only the steps are planned
    s2 = imgclf.train(data=str(root), budget="30s", model="fastcnn-tiny", out=str(tmp_path / "r"), plots=False,
                      device="cpu", quiet=True)
    c2 = load_checkpoint(s2["checkpoint"])
    assert c2["config"]["model"] == "fastcnn-tiny" and len(c2["budget_plan"]["calibration"]) == 1


def test_budget_errors_are_clear(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="drop epochs="):
        imgclf.train(FAST | {"budget": "1m", "epochs": 3, "out": str(tmp_path)}, quiet=True)
    for bad in ("abc", "5x", "0s", "inf", "-1m"):
        with pytest.raises(ConfigError, match="budget"):
            imgclf.train(FAST | {"budget": bad, "out": str(tmp_path)}, quiet=True)
    monkeypatch.setattr(budget, "calibrate", fixed_calibration(5.0))   # 5 s a step: nothing fits in 12 s
    with pytest.raises(ConfigError, match="too short"):
        imgclf.train(FAST | {"budget": "12s", "out": str(tmp_path)}, quiet=True)
    assert not any(tmp_path.iterdir())    # no run folder left behind by a refused budget


@pytest.mark.slow
def test_budget_on_the_command_line(tmp_path, monkeypatch, capsys):
    from imgclf.cli import main

    monkeypatch.setattr(budget, "calibrate", fixed_calibration(0.2))
    assert main(["train", "--data", "digits", "--budget", "60s", "--no-plots", "--out", str(tmp_path),
                 "--device", "cpu", "--val-split", "0"]) == 0
    out = capsys.readouterr().out
    assert "budget 60 s:" in out and "the schedule ends at step" in out
    summary = json.loads(next(tmp_path.glob("*/summary.json")).read_text())
    assert summary["steps"] > 0 and summary["budget"]["seconds"] == 60


def test_shift_tta_averages_six_views_and_is_used_by_eval(tmp_path):
    from imgclf.engine.evaluate import tta_logits

    calls = []

    def model(x):
        calls.append(x.clone())
        return x.mean((2, 3))          # a "model" whose logits are the mean pixel of each channel

    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).reshape(2, 3, 5, 5)
    tta_logits(model, x, 1)
    assert len(calls) == 6
    assert torch.equal(calls[2][..., 1:, 1:], x[..., :-1, :-1])   # up-left shift: the content moved down-right
    assert torch.equal(calls[4][..., :-1, :-1], x[..., 1:, 1:])
    s = imgclf.train(FAST | {"epochs": 2, "tta": True, "tta_shift": 1, "out": str(tmp_path)}, quiet=True)
    assert s["tta_shift"] == 1
    clf = imgclf.load(s["checkpoint"])
    assert clf.tta_shift == 1
    assert clf.evaluate("digits", split="test")["accuracy"] == s["test_accuracy"]    # eval reproduces the figure


def test_tta_of_a_model_trained_without_flips_has_no_mirrors(tmp_path):
    """A mirrored digit is another glyph: with --flip none the views are the image and its shifts (weights 1/2,
    1/4, 1/4), in training's figures and in `imgclf.load(...).evaluate` and export alike."""
    from imgclf.engine.evaluate import tta_logits

    calls = []

    def model(x):
        calls.append(x.clone())
        return x.mean((2, 3))

    x = torch.rand(2, 1, 6, 6)
    out = tta_logits(model, x, 1, mirror=False)
    assert len(calls) == 3 and torch.equal(calls[0], x)
    assert not any(torch.equal(c, x.flip(3)) for c in calls)
    assert torch.allclose(out, 0.5 * model(x) + 0.25 * (model(calls[1]) + model(calls[2])))
    s = imgclf.train(FAST | {"epochs": 2, "tta": True, "tta_shift": 1, "flip": "none", "out": str(tmp_path)},
                     quiet=True)
    assert s["tta_mirror"] is False and load_checkpoint(s["checkpoint"])["tta_mirror"] is False
    clf = imgclf.load(s["checkpoint"])
    assert clf.tta_mirror is False
    assert clf.evaluate("digits", split="test")["accuracy"] == s["test_accuracy"]
    mirrored = imgclf.load(s["checkpoint"])
    mirrored.tta_mirror = True          # what the run would have reported with mirrors: a different set of views
    with_mirrors = mirrored.evaluate("digits", split="test")
    assert with_mirrors["loss"] != clf.evaluate("digits", split="test")["loss"]


def test_a_budget_under_torchrun_is_refused_before_it_measures(tmp_path, monkeypatch):
    """Each process would time its own steps and plan its own total: processes that stop at different steps wait on
    each other for ever (a 20 s budget on 2 processes hung until killed)."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match=r"torchrun.*steps"):
        imgclf.train(FAST | {"budget": "1m", "out": str(tmp_path)}, quiet=True)
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_a_budget_and_a_config_file_follow_the_layers(tmp_path, monkeypatch):
    """A run's own config.yaml is a --config file (README): a budgeted run's records both its budget and the steps
    planned, and every run's records its epochs; the layers decide, an error only when flags give both."""
    from imgclf.config import read_config_file

    monkeypatch.setattr(budget, "calibrate", fixed_calibration(0.2))
    s = imgclf.train(FAST | {"budget": "60s", "out": str(tmp_path), "name": "b"}, quiet=True)
    monkeypatch.setattr(budget, "calibrate", fixed_calibration(2.0))    # a re-plan would see this
    # the budgeted run's config.yaml replays its planned steps: the same run, measured nothing
    again = imgclf.train({"name": "again"}, config_file=read_config_file(tmp_path / "b" / "config.yaml"), quiet=True)
    assert again["steps"] == s["steps"] and again["test_accuracy"] == s["test_accuracy"] and again["budget"] is None
    # your --budget over a run's config.yaml (with its epochs and steps 0) plans: a flag overrides the file
    e = imgclf.train(FAST | {"epochs": 1, "out": str(tmp_path), "name": "e"}, quiet=True)
    file = read_config_file(tmp_path / "e" / "config.yaml")
    planned = imgclf.train({"budget": "60s", "name": "eb"}, config_file=file, quiet=True)
    assert planned["budget"]["seconds"] == 60 and planned["steps"] > e["steps"]
    # a config file's budget gives way to your --epochs, as a recipe's does
    one = imgclf.train(FAST | {"epochs": 1, "name": "x", "out": str(tmp_path)}, config_file={"budget": "60s"},
                       quiet=True)
    assert one["epochs"] == 1 and one["budget"] is None
    with pytest.raises(ConfigError, match="drop epochs="):
        imgclf.train(FAST | {"budget": "60s", "epochs": 1, "out": str(tmp_path)}, quiet=True)


def test_settings_counted_in_epochs_must_fit_the_epochs_that_steps_give(tmp_path):
    """--freeze-epochs 5 with --steps 30 (2 epochs of digits) froze the backbone for the whole run, silently."""
    for more in ({"freeze_epochs": 5}, {"progressive_size": 8, "progressive_epochs": 5}):
        key = next(iter(more)) if "freeze_epochs" in more else "progressive_epochs"
        with pytest.raises(ConfigError, match=rf"{key}=5 .*2 epochs"):
            imgclf.train(FAST | {"steps": 30, "out": str(tmp_path)} | more, quiet=True)
    assert not any(tmp_path.iterdir())


def test_find_lr_steps_are_its_own_not_a_training_setting(monkeypatch):
    from imgclf.cli import main
    from imgclf.engine import lr_finder

    seen = {}
    monkeypatch.setattr(lr_finder, "find_lr", lambda flags, **kw: seen.update(flags) or
                        {"suggested_lr": 0.1, "plot": None})
    assert main(["find-lr", "--data", "digits", "--steps", "5"]) == 0
    assert seen["data"] == "digits" and "steps" not in seen


def test_a_run_shorter_than_its_warm_up_still_ends_its_schedule(tmp_path):
    """Warm-up is counted in epochs (0.5: 11 steps of digits at batch 64); --steps 10, or a short budget on a big
    folder, made the whole run warm-up: it ended at the peak learning rate."""
    s = imgclf.train(FAST | {"steps": 10, "out": str(tmp_path)}, quiet=True)
    ckpt = load_checkpoint(s["checkpoint"])
    assert ckpt["global_step"] == 10 and ckpt["history"][-1]["lr"] <= 0.2 * ckpt["config"]["lr"] + 1e-9


def test_shift_tta_on_images_no_larger_than_the_shift(tmp_path):
    """F.pad's reflect mode needs the pad below the size: a 4×4 folder with --tta-shift 4 trained the whole run,
    then the test pass died with an internal error and no summary. The views now reflect the way --crop-pad does."""
    from conftest import make_image_folder

    from imgclf.engine.evaluate import tta_logits

    for shape, shift in (((2, 3, 2, 2), 2), ((1, 1, 1, 1), 1), ((1, 3, 4, 4), 4)):
        x = torch.rand(shape)
        assert tta_logits(lambda v: v.mean((2, 3)), x, shift).shape == shape[:2]
    root = make_image_folder(tmp_path / "tiny", per_class=6, size=4)
    s = imgclf.train(data=str(root), model="mlp", epochs=1, tta=True, tta_shift=4, val_split=0.0, plots=False,
                     device="cpu", out=str(tmp_path / "r"), quiet=True)
    assert s["tta_shift"] == 4 and imgclf.load(s["checkpoint"]).evaluate(str(root))["accuracy"] == s["test_accuracy"]


def test_print_config_refuses_a_budget_with_a_length_as_the_run_does(capsys):
    from imgclf.cli import main

    for length in (["--epochs", "3"], ["--steps", "50"]):
        assert main(["train", "--data", "digits", "--budget", "20s", *length, "--print-config"]) == 3
        assert f"drop {length[0]}" in capsys.readouterr().err


def test_a_machine_that_gets_busy_during_a_budgeted_run_gets_fewer_threads_at_the_replan(tmp_path, monkeypatch):
    """The threads are chosen again before the re-plan times the loop (machine.py's measure, mocked here: another
    process takes a CPU after start-up), so the timed steps and the rest of the run use the count that fits the
    machine now; config.yaml and the checkpoint record it, so a resume computes with the same."""
    from imgclf import machine

    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(machine, "usable_cpus", lambda: 2)
    monkeypatch.setattr(machine.os, "cpu_count", lambda: 2)
    # quiet at start-up (measured since the mark), one CPU busy during the first steps (since the re-plan's sample)
    monkeypatch.setattr(machine, "others_busy", lambda since=None: 0.0 if since is None else 1.0)
    monkeypatch.setattr(budget, "calibrate", fixed_calibration(0.01))
    clock = []
    monkeypatch.setattr(budget, "_now", lambda run: clock.append(0) or 0.01 * len(clock))
    monkeypatch.setattr(budget, "REFIT_EVERY_S", math.inf)   # no refits on the real clock against the mocked one
    s = imgclf.train(FAST | {"out": str(tmp_path), "batch_size": 16, "budget": "20s", "name": "r"}, quiet=True)
    ckpt = load_checkpoint(tmp_path / "r" / "last.pt")
    change = {"step": budget.REPLAN_FROM, "before": 2, "after": 1,
              "why": "1.0 of 2 CPUs free: other processes keep 1.0 busy"}
    assert ckpt["budget_plan"]["replan"]["threads"] == change
    assert ckpt["thread_changes"] == [change] == s["thread_changes"]   # the watch's record: the re-plan checked with it
    assert ckpt["config"]["threads"] == 1 == yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())["threads"]
    assert s["machine"]["threads"] == 1 and torch.get_num_threads() == 1


@pytest.mark.parametrize("pace, chosen", [
    ({"fastcnn-xl": 0.02}, "fastcnn-xl"),                      # wide's epochs many times over: the ladder grows
    ({"fastcnn": 0.02, "fastcnn-xl": 5.0}, "fastcnn"),         # xl's 15 epochs do not fit: airbench94's net
    ({"fastcnn-wide": 0.05, "fastcnn": 5.0, "fastcnn-xl": 5.0}, "fastcnn-wide")])
def test_the_ladder_grows_with_the_machine(tmp_path, monkeypatch, pace, chosen):
    """A machine that affords the widest CPU rung's epochs many times over (mocked calibration: no clocks) is planned
    onto the airbench rungs above it, each where its minimum epochs fit; planned only, nothing trains."""
    from conftest import make_image_folder


    root = make_image_folder(tmp_path / "c32", per_class=30, size=32, classes=("a", "b", "c"))
    ladder = budget.BUDGET_LADDERS["rgb32"]
    monkeypatch.setattr(budget, "calibrate", fixed_calibration({m["model"]: 0.01 for m in ladder} | pace))
    user = {"data": str(root), "budget": "30s", "out": str(tmp_path / "r"), "device": "cpu"}
    plan = budget.plan_budget(user, None, time.perf_counter())
    assert plan.layer["model"] == chosen and plan.layer["image_size"] is None
    rung = next(c for c in plan.record["calibration"] if c["chosen"])
    assert rung["planned_steps"] >= rung["min_epochs"] * rung["steps_per_epoch"]
