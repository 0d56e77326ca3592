import pytest
import torch

from moderndl import profiles

TABLE = {"smoke": {"steps": 10, "lr": 0.1}, "full": {"steps": 1000, "lr": 0.1}}


def test_auto_resolves_by_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert profiles.resolve("auto") == "smoke"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert profiles.resolve("auto") == "full"
    assert profiles.resolve("smoke") == "smoke"


def test_smoke_is_always_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert profiles.device("smoke") == torch.device("cpu")
    assert profiles.device("full") == torch.device("cuda")


def test_unknown_profile_lists_valid():
    with pytest.raises(ValueError, match="'huge'.*smoke, full, auto"):
        profiles.resolve("huge")


def test_settings_fill_none_and_keep_given():
    s = profiles.settings("smoke", TABLE, steps=None, lr=0.5)
    assert (s.steps, s.lr, s.profile, s.device) == (10, 0.5, "smoke", torch.device("cpu"))
    full = profiles.settings("full", TABLE, steps=None)
    assert full.steps == 1000


def test_settings_reject_unknown_name():
    with pytest.raises(ValueError, match=r"\['stpes'\].*valid: lr, steps"):
        profiles.settings("smoke", TABLE, stpes=3)


def test_settings_need_both_profiles_and_are_read_only():
    with pytest.raises(ValueError, match="full"):
        profiles.settings("smoke", {"smoke": {}})
    s = profiles.settings("smoke", TABLE)
    with pytest.raises(AttributeError):
        s.steps = 3
    with pytest.raises(AttributeError, match="no setting 'nope'"):
        _ = s.nope
    assert dict(s)["steps"] == 10
