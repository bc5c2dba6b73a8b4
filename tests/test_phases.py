"""The per-phase timer `imgclf train -v` prints: nested phases count once (in the innermost), what came before
the command is start-up, the rest is 'other' (a fake clock: no test depends on the machine's speed)."""

from imgclf import phases
from imgclf.cli import main


def test_nested_phases_count_once_and_the_rest_is_other(monkeypatch):
    now = [10.0]
    monkeypatch.setattr(phases.time, "perf_counter", lambda: now[0])
    phases.begin(started=8.5)                  # 1.5 s of Python's start-up and imports before the command
    with phases.phase("setup"):
        now[0] += 1.0
        with phases.phase("data"):
            now[0] += 2.0
        now[0] += 0.5
    with phases.phase("training"):
        now[0] += 4.0
    with phases.phase("setup"):                # entered again: added up
        now[0] += 0.25
    now[0] += 0.75
    assert phases.breakdown() == [("start-up and imports", 1.5), ("setup", 1.75), ("data", 2.0), ("training", 4.0),
                                  ("other", 0.75)]
    assert phases.line().endswith("; 10.00 s in all")


def test_train_verbose_prints_where_the_time_went(tmp_path, capsys):
    assert main(["train", "--data", "digits", "--model", "fastcnn-tiny", "--epochs", "1", "--no-plots", "-v",
                 "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if x.startswith("time: "))
    for name in ("start-up and imports", "data", "setup", "training", "validation and checkpoints", "test", "other"):
        assert f" {name} " in line, line
