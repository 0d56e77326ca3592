"""``python -m moderndl.<chapter>``: flags from the profile table, checked before any work."""

import json
import subprocess
import sys

import pytest

from moderndl import chapters, cli, profiles

FULL = {"steps": 100, "lr": 0.1, "generators": ["ER(0.2)"]}
TABLE = {"smoke": dict(FULL, steps=2), "laptop": dict(FULL, steps=10), "full": FULL, "dry": dict(FULL, steps=1)}


def _experiment(seen):
    def experiment(s, led, seed):
        seen.append((dict(s), seed))
        led.record("steps_run", s.steps)
        led.claim("ran", "the experiment ran with the given steps", s.steps, holds=s.steps > 0)
    return experiment


def test_flags_fill_the_settings_and_the_sidecar(tmp_path):
    seen = []
    out = tmp_path / "m.json"
    code = cli.main("demo", "demo", TABLE, _experiment(seen), ["--profile", "smoke", "--steps", "7", "--lr", "1",
                                                              "--seed", "3", "--metrics", str(out)])
    assert code == 0
    settings, seed = seen[0]
    assert (settings["steps"], settings["lr"], settings["generators"], seed) == (7, 1.0, ["ER(0.2)"], 3)
    data = json.loads(out.read_text())
    assert data["profile"] == "smoke" and data["metrics"]["steps_run"] == 7 and data["claims"][0]["holds"]


@pytest.mark.parametrize("argv, message", [
    (["--steps", "1.5"], "steps=1.5 is a float; it must be a int"),
    (["--steps", "-3"], r"steps=-3 is out of range"),
    (["--stpes", "3"], "unrecognized arguments: --stpes"),
    (["--profile", "huge"], "invalid choice: 'huge'"),
])
def test_bad_flags_fail_before_any_work(argv, message, capsys):
    seen = []
    with pytest.raises(SystemExit) as exit_:
        cli.main("demo", "demo", TABLE, _experiment(seen), argv, ranges={"steps": (1, None)})
    assert exit_.value.code == 2 and not seen
    assert __import__("re").search(message, capsys.readouterr().err)


@pytest.mark.parametrize("notebook", list(chapters.PACKAGES))
def test_every_chapter_has_an_entry_point_listing_its_parameters(notebook):
    scales = chapters.scales(notebook)
    assert scales is not None, f"{chapters.package(notebook)}.scales is missing"
    profiles.check_table(scales.TABLE)
    done = subprocess.run([sys.executable, "-m", chapters.package(notebook), "--help"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    missing = [k for k in scales.TABLE["full"] if f"--{k}" not in done.stdout]
    assert not missing, f"python -m {chapters.package(notebook)} --help lacks {missing}"
