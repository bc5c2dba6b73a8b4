"""What a user reads: each command's --help (a description, examples, train's options grouped by topic), the run
header's settings profile, table and plot labels, and counted words in the singular and plural."""

from conftest import make_image_folder

from imgclf.cli import main

WEATHER_CLASSES = ("cloudy", "rain", "shine", "sunrise")   # weather-mwd's


def test_a_training_size_that_changes_the_profile_says_so(tmp_path, capsys):
    """Photos trained at --image-size 16 take the 32×32 colour settings: the header names that profile and why, and
    a note lists what that changed from the photos profile (a flag you give is yours in either)."""
    root = tmp_path / "weather"
    for split, n in (("train", 16), ("test", 4)):
        make_image_folder(root / split, WEATHER_CLASSES, per_class=n, size=48, seed=len(split))
    args = ["train", "--data", str(root), "--model", "fastcnn-tiny", "--epochs", "1", "--no-plots", "--out",
            str(tmp_path / "runs")]
    assert main([*args, "--image-size", "16"]) == 0
    out = capsys.readouterr().out
    assert "(the 32×32 colour profile: colour images trained at 32×32 or less;" in out
    note = next(line for line in out.splitlines() if "take the" in line)
    assert note.strip().startswith("trained at 16×16, images stored at 48×48 px (the median image) take the rgb32 "
                                   "profile's settings, not the photos profile's: --val-split 0.1 → 0, ")
    assert "--model" not in note and "--epochs" not in note
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "(the photos profile: images trained at more than 32×32;" in out and "take the" not in out
    assert "val split:" in out
