import json
import math

import pytest

from moderndl import ledger, profiles


@pytest.fixture
def sidecar(tmp_path, monkeypatch):
    path = tmp_path / "m" / "chapter.json"
    monkeypatch.setenv("MODERNDL_METRICS", str(path))
    ledger.open("chapter", profiles.settings("smoke", {"smoke": {}, "full": {}}))
    return path


def test_sidecar_schema(sidecar):
    ledger.record("accuracy", 0.93)
    ledger.claim("acc", "accuracy is high", 0.93, holds=True, tolerance=">= 0.9")
    data = ledger.load(sidecar)
    assert tuple(data) == ledger.SCHEMA_KEYS
    assert data["notebook"] == "chapter" and data["profile"] == "smoke"
    assert data["metrics"] == {"accuracy": 0.93}
    assert tuple(data["claims"][0]) == ledger.CLAIM_KEYS
    assert data["claims"][0]["profile"] == "smoke" and data["claims"][0]["holds"] is True


def test_relative_tolerance_is_computed(sidecar):
    assert ledger.claim("a", "close", 101.0, paper_value=100.0, tolerance=0.02)["holds"] is True
    assert ledger.claim("b", "far", 110.0, paper_value=100.0, tolerance=0.02)["holds"] is False
    with pytest.raises(ValueError, match="holds="):
        ledger.claim("c", "no way to decide", 1.0)
    with pytest.raises(ValueError, match="scope"):
        ledger.claim("d", "bad scope", 1.0, holds=True, scope="gpu")


def test_a_claim_is_replaced_not_duplicated(sidecar):
    ledger.claim("a", "x", 1, holds=True)
    ledger.claim("a", "x", 2, holds=False)
    claims = json.loads(sidecar.read_text())["claims"]
    assert [(c["id"], c["ours"]) for c in claims] == [("a", 2)]


def test_values_become_json(sidecar):
    import numpy as np
    import torch

    ledger.record("t", torch.tensor(2.5))
    ledger.record("n", np.float32(1.5))
    ledger.record("nan", math.nan)
    ledger.record("list", [torch.tensor(1.0), 2])
    metrics = json.loads(sidecar.read_text())["metrics"]
    assert metrics == {"t": 2.5, "n": 1.5, "nan": None, "list": [1.0, 2]}


def test_scope_decides_what_is_asserted(sidecar):
    smoke = ledger.claim("s", "x", 1, holds=True, scope="all")
    full = ledger.claim("f", "x", 1, holds=False, scope="full")
    assert ledger.asserted(smoke) and not ledger.asserted(full)


def test_load_rejects_missing_keys(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"notebook": "x"}))
    with pytest.raises(ValueError, match="lacks"):
        ledger.load(bad)


def test_record_before_open_is_an_error(monkeypatch):
    monkeypatch.setattr(ledger, "_current", None)
    with pytest.raises(RuntimeError, match="ledger.open"):
        ledger.record("x", 1)
