import pytest
import torch

from moderndl import profiles

FULL = {"steps": 1000, "lr": 0.1, "gens": ["ER"], "data_dir": "", "bf16": True}
TABLE = {"smoke": dict(FULL, steps=10, bf16=False), "laptop": dict(FULL, steps=100, bf16=False), "full": FULL,
         "dry": dict(FULL, steps=2)}


class _Props:
    def __init__(self, gb):
        self.total_memory = gb * 10**9


def test_auto_is_full_on_a_big_gpu_and_laptop_otherwise(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert profiles.resolve("auto") == "laptop"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: _Props(80))
    assert profiles.resolve("auto") == "full"
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: _Props(15))  # a Colab T4
    assert profiles.resolve("auto") == "laptop"
    assert profiles.resolve("smoke") == "smoke" and profiles.resolve("dry") == "dry"


def test_smoke_and_laptop_are_always_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert profiles.device("smoke") == profiles.device("laptop") == torch.device("cpu")
    assert profiles.device("full") == profiles.device("dry") == torch.device("cuda")


def test_unknown_profile_lists_valid():
    with pytest.raises(ValueError, match="'huge'.*smoke, laptop, full, dry, auto"):
        profiles.resolve("huge")


def test_settings_read_names_from_a_namespace_and_fill_none():
    namespace = {"steps": None, "lr": 0.5, "unrelated": object()}
    s = profiles.settings("smoke", TABLE, namespace)
    assert (s.steps, s.lr, s.profile, s.device) == (10, 0.5, "smoke", torch.device("cpu"))
    assert profiles.settings("dry", TABLE).steps == 2 and profiles.settings("dry", TABLE).bf16 is True


def test_values_are_checked_against_the_profile_type():
    with pytest.raises(ValueError, match=r"steps=1.5 is a float; it must be a int like 10"):
        profiles.settings("smoke", TABLE, {"steps": 1.5})
    with pytest.raises(ValueError, match=r"steps='abc' is a str"):
        profiles.settings("smoke", TABLE, {"steps": "abc"})
    with pytest.raises(ValueError, match=r"bf16=1 is a int; it must be a bool"):
        profiles.settings("smoke", TABLE, {"bf16": 1})
    assert profiles.settings("smoke", TABLE, {"lr": 1}).lr == 1.0  # an int is a valid float
    with pytest.raises(ValueError, match=r"steps=-1 is out of range; valid: \[1, inf\]"):
        profiles.settings("smoke", TABLE, {"steps": -1}, ranges={"steps": (1, None)})


def test_check_rejects_unknown_names():
    with pytest.raises(ValueError, match=r"\['stpes'\].*valid: bf16, data_dir, gens, lr, steps"):
        profiles.check(TABLE, {"stpes": 3})


def test_a_table_needs_every_scale_with_the_same_names():
    with pytest.raises(ValueError, match="lacks.*laptop"):
        profiles.settings("smoke", {"smoke": {}, "full": {}})
    with pytest.raises(ValueError, match="'dry' differs from 'full' in \\['extra'\\]"):
        profiles.check_table({**TABLE, "dry": dict(FULL, extra=1)})


def test_settings_are_read_only_and_apply_threads():
    before = torch.get_num_threads()
    try:
        s = profiles.settings("smoke", {p: dict(v, threads=1) for p, v in TABLE.items()})
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    with pytest.raises(AttributeError):
        s.steps = 3
    with pytest.raises(AttributeError, match="no setting 'nope'"):
        _ = s.nope
    assert dict(s)["steps"] == 10


def test_settings_survive_pickling_for_worker_processes():
    import pickle

    s = profiles.Settings({"steps": 3, "device": torch.device("cpu")})
    t = pickle.loads(pickle.dumps(s))
    assert dict(t) == dict(s) and t.steps == 3
