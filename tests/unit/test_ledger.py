import json
import math

import pytest

from moderndl import ledger, profiles

EMPTY = {p: {} for p in profiles.SCALES}


@pytest.fixture
def sidecar(tmp_path, monkeypatch):
    path = tmp_path / "m" / "chapter.json"
    monkeypatch.setenv("MODERNDL_METRICS", str(path))
    return path


@pytest.fixture
def led(sidecar):
    return ledger.open("chapter", profiles.settings("smoke", EMPTY))


def test_sidecar_schema(sidecar, led):
    led.record("accuracy", 0.93)
    led.claim("acc", "accuracy is high", 0.93, holds=True, tolerance=">= 0.9")
    data = ledger.load(sidecar)
    assert tuple(data) == ledger.SCHEMA_KEYS
    assert data["notebook"] == "chapter" and data["profile"] == "smoke"
    assert data["metrics"] == {"accuracy": 0.93}
    assert tuple(data["claims"][0]) == ledger.CLAIM_KEYS
    assert data["claims"][0]["profile"] == "smoke" and data["claims"][0]["holds"] is True


def test_relative_tolerance_is_computed(sidecar, led):
    assert led.claim("a", "close", 101.0, paper_value=100.0, tolerance=0.02)["holds"] is True
    assert led.claim("b", "far", 110.0, paper_value=100.0, tolerance=0.02)["holds"] is False
    with pytest.raises(ValueError, match="holds="):
        led.claim("c", "no way to decide", 1.0)
    with pytest.raises(ValueError, match="scope"):
        led.claim("d", "bad scope", 1.0, holds=True, scope="gpu")


def test_a_claim_is_replaced_not_duplicated(sidecar, led):
    led.claim("a", "x", 1, holds=True)
    led.claim("a", "x", 2, holds=False)
    claims = json.loads(sidecar.read_text())["claims"]
    assert [(c["id"], c["ours"]) for c in claims] == [("a", 2)]


def test_values_become_json(sidecar, led):
    import numpy as np
    import torch

    led.record("t", torch.tensor(2.5))
    led.record("n", np.float32(1.5))
    led.record("nan", math.nan)
    led.record("list", [torch.tensor(1.0), 2])
    metrics = json.loads(sidecar.read_text())["metrics"]
    assert metrics == {"t": 2.5, "n": 1.5, "nan": None, "list": [1.0, 2]}


def test_scope_decides_what_is_asserted(sidecar, led):
    smoke = led.claim("s", "x", 1, holds=True, scope="all")
    full = led.claim("f", "x", 1, holds=False, scope="full")
    assert ledger.asserted(smoke) and not ledger.asserted(full)


def test_load_rejects_missing_keys(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"notebook": "x"}))
    with pytest.raises(ValueError, match="lacks"):
        ledger.load(bad)


def test_two_ledgers_do_not_share_state(tmp_path):
    a = ledger.open("a", profiles.settings("smoke", EMPTY), path=tmp_path / "a.json")
    b = ledger.open("b", profiles.settings("laptop", EMPTY), path=tmp_path / "b.json")
    a.record("x", 1)
    b.claim("c", "x", 1, holds=True, scope="laptop")
    assert ledger.load(tmp_path / "a.json")["metrics"] == {"x": 1} and a.data["claims"] == []
    assert ledger.load(tmp_path / "b.json")["claims"][0]["profile"] == "laptop"


def test_a_ledger_that_does_not_write_leaves_no_file(tmp_path):
    quiet = ledger.open("q", profiles.settings("smoke", EMPTY), path=tmp_path / "q.json", write=False)
    quiet.record("x", 1)
    assert quiet.data["metrics"] == {"x": 1} and not (tmp_path / "q.json").exists()


def test_nothing_is_asserted_at_dry(led):
    entry = led.claim("a", "x", 1, holds=False, scope="all")
    assert ledger.asserted(entry)
    assert not ledger.asserted({**entry, "profile": "dry"})
    assert ledger.asserted({**entry, "scope": "laptop", "profile": "laptop"})
