"""Every chapter in _toc.yml, executed at the smoke profile, with its claims asserted.

Runs go through the cached runner, so `make book PROFILE=smoke` afterwards reuses them.
A claim in scope at smoke (scope "all" or "smoke") must hold; claims scoped to "full" are
recorded honestly and shown in the ledger, but a smoke run is not expected to reach them.
"""

import pytest

from moderndl import book, ledger, run

CHAPTERS = book.chapters()


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
