"""Every chapter in _toc.yml, executed at smoke (claims asserted) and at dry (must finish).

Runs go through the cached runner, so `make book PROFILE=smoke` afterwards reuses them.
A claim in scope at smoke (scope "all" or "smoke") must hold; claims scoped to "laptop" or
"full" are recorded honestly and shown in the ledger, but a smoke run is not expected to
reach them. The dry profile is the full profile with steps and sizes cut: it asserts no
claim, only that the full profile's code paths run to the end within its budget.
"""

import pytest

from moderndl import ledger, profiles, run, stage

CHAPTERS = stage.chapters()
BUDGET_S = {"smoke": 90, "dry": 60}  # DESIGN.md's budgets on a 2-core machine


@pytest.fixture(scope="module", params=CHAPTERS or [None], ids=lambda n: n or "no-chapters")
def executed(request):
    if request.param is None:
        pytest.skip("no chapter listed in _toc.yml yet")
    return run.run(request.param, "smoke")


def test_sidecar_is_complete(executed):
    assert executed["profile"] == "smoke" and executed["device"].startswith("cpu")
    assert executed["wall_s"] > 0 and executed["commit"] and executed["torch"]
    assert executed["claims"], f"{executed['notebook']} records no claim"
    for c in executed["claims"]:
        assert tuple(c) == ledger.CLAIM_KEYS
        assert c["statement"] and c["ours"] is not None, f"claim {c['id']} has no measured value"


def test_claims_in_scope_hold(executed):
    failing = [f"{c['id']}: {c['statement']} (ours={c['ours']}, paper={c['paper_value']}, tol={c['tolerance']})"
               for c in executed["claims"] if ledger.asserted(c) and not c["holds"]]
    assert not failing, f"{executed['notebook']}: claims that do not hold at smoke:\n" + "\n".join(failing)


def test_unmet_claims_explain_themselves(executed):
    silent = [c["id"] for c in executed["claims"] if not c["holds"] and not c["note"]]
    assert not silent, f"{executed['notebook']}: claims recorded as not holding need a note: {silent}"


def test_smoke_fits_its_budget(executed):
    if executed["cached"]:
        pytest.skip("served from the cache: its wall time was checked when it ran")
    assert executed["wall_s"] <= 1.5 * BUDGET_S["smoke"], f"{executed['notebook']} took {executed['wall_s']} s"


@pytest.mark.parametrize("name", CHAPTERS)
def test_dry_runs_the_full_code_paths(name):
    """The full profile with steps and sizes cut finishes; the dry table differs from full
    only in the few settings that cut it."""
    data = run.run(name, "dry")
    assert data["profile"] == "dry" and data["wall_s"] > 0
    if not data["cached"]:
        assert data["wall_s"] <= 1.5 * BUDGET_S["dry"], f"{name} at dry took {data['wall_s']} s"
    scales = run.chapters.scales(name)
    assert scales is not None, f"{name}: no moderndl.<package>.scales with its profile table"
    profiles.check_table(scales.TABLE)
