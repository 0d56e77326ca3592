"""Two gloo ranks against one process: the multitask loop with every weighting.

The ranks must see disjoint halves of each global batch whose union is the one-process batch,
and after k steps every method must leave the parameters one process leaves with the global
batch: PCGrad, MGDA-UB and GradNorm combine the task gradients (or their Gram matrix) only
after averaging them over ranks, uncertainty weighting averages its log-variances' gradient,
and random weighting draws the same weights on every rank. The network has no BatchNorm.
"""

import json

import pytest
import torch

from ..conftest import run_ranks

METHODS = ["equal", "uncertainty", "gradnorm", "pcgrad", "mgda", "random"]

SCRIPT = r'''
import json, os, sys
import torch
torch.set_num_threads(1)
from moderndl.multitask import experiment as E
from moderndl.multitask.multimnist import THREE_TASKS, MultiMNISTConfig, load_multimnist
from moderndl.train import batches

def main(out_dir):
    train, _ = load_multimnist(MultiMNISTConfig(n_train=128, n_test=16), seed=0)
    recipe = E.MultitaskRecipe(steps=3, batch_size=16, hidden=(16, 8), probe_every=2, log_every=1, cpu=True)
    out = {"methods": {}}
    for m in METHODS:
        run = E.setup(m, THREE_TASKS, train, recipe, seed=0)
        acc = run.loop.accelerator  # the launch's state: an Accelerator(cpu=True) sees the gloo ranks
        history = run.loop.run(run.step, run.data)
        out["methods"][m] = {
            "params": {k: v.tolist() for k, v in run.loop.unwrap("model").state_dict().items()},
            "weighting": {k: v.tolist() for k, v in run.weighting.state_dict().items()
                          if torch.is_tensor(v) and v.is_floating_point()},
            "history": history}
    sampler = batches(torch.arange(128), batch_size=16, seed=0)
    out["rows"] = [sampler(t)[0].tolist() for t in range(3)]
    out["rank"], out["world"] = acc.process_index, acc.num_processes
    with open(os.path.join(out_dir, f"rank{acc.process_index}.json"), "w") as f:
        json.dump(out, f)

if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.environ["OUT"])
'''.replace("METHODS", repr(METHODS), 1)

# One worker runs the whole module, and the fixtures are session-scoped, so that the launch runs
# once: a module-scoped fixture is rebuilt whenever that worker comes back from another module.
pytestmark = pytest.mark.xdist_group("multitask_ranks")

UNSHARDED = ("same/", "cross/")  # half-batch probes: the halves of a rank's slice are not the global halves


@pytest.fixture(scope="session")
def two_ranks(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ranks")
    run_ranks(SCRIPT, tmp, nproc=2)
    return [json.loads((tmp / f"rank{r}.json").read_text()) for r in range(2)]


@pytest.fixture(scope="session")
def one_process(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("one")
    namespace = {"__name__": "one_process"}
    exec(SCRIPT, namespace)  # noqa: S102 - the same script, in this process (world size 1)
    before = torch.get_num_threads()
    namespace["main"](str(tmp))
    torch.set_num_threads(before)
    return json.loads((tmp / "rank0.json").read_text())


def test_ranks_see_disjoint_halves_of_the_global_batch(two_ranks, one_process):
    assert [r["world"] for r in two_ranks] == [2, 2] and one_process["world"] == 1
    for t in range(3):
        a, b = two_ranks[0]["rows"][t], two_ranks[1]["rows"][t]
        assert not set(a) & set(b)
        assert a + b == one_process["rows"][t]


@pytest.mark.parametrize("method", METHODS)
def test_two_ranks_equal_one_process_with_the_global_batch(two_ranks, one_process, method):
    ref = one_process["methods"][method]
    for rank in two_ranks:
        got = rank["methods"][method]
        for name, value in ref["params"].items():
            torch.testing.assert_close(torch.tensor(got["params"][name]), torch.tensor(value), atol=1e-5, rtol=1e-4,
                                       msg=f"{method}: {name}")
        for name, value in ref["weighting"].items():
            torch.testing.assert_close(torch.tensor(got["weighting"][name]), torch.tensor(value), atol=1e-5,
                                       rtol=1e-4, msg=f"{method}: weighting {name}")
        for row, ref_row in zip(got["history"], ref["history"], strict=True):
            for key, value in ref_row.items():
                if not key.startswith(UNSHARDED):
                    assert row[key] == pytest.approx(value, rel=1e-4, abs=1e-5), f"{method}: {key}"
