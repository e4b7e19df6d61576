"""pemscl.distributed: sharding, gathers with autograd, and a DDP step equal to one process.

The multi-process tests run 2 CPU ranks (gloo) through tests/dist_helpers.run_ranks; each spawn
costs a couple of seconds of interpreter start-up, so every scenario of a kind shares one spawn
(module-scoped fixtures) and the test functions assert on its results.
"""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from dist_helpers import run_ranks
from pemscl import distributed
from pemscl.distributed import Dist, borrow_if_empty, local_outputs, shard_bounds
from pemscl.losses import compute_loss, group_outer, loss_spec

# --------------------------------------------------------------------------- single process


def test_shard_bounds_are_contiguous_tensor_split_sizes():
    # 7 items on 3 ranks: sizes 3, 2, 2 (the first 7 % 3 = 1 rank gets one more)
    assert [Dist(rank=r, world=3).shard(list(range(7))) for r in range(3)] == [[0, 1, 2], [3, 4], [5, 6]]
    # fewer items than ranks: the last rank's chunk is empty
    assert [Dist(rank=r, world=3).shard("ab") for r in range(3)] == [["a"], ["b"], []]
    assert [shard_bounds(5, r, 2) for r in range(2)] == [(0, 3), (3, 5)]
    assert [len(c) for c in torch.tensor_split(torch.arange(10), 4)] == \
        [len(Dist(rank=r, world=4).shard(range(10))) for r in range(4)]
    with pytest.raises(ValueError):
        shard_bounds(3, 2, 2)


def test_single_process_dist_is_an_identity():
    d = Dist()
    assert d.is_main and not d.active
    t = torch.randn(3, 2, requires_grad=True)
    assert d.gather(t) is t
    assert torch.equal(d.gather_rows(t), t.detach())
    assert d.gather_objects({"a": 1}) == [{"a": 1}]
    assert d.broadcast_object("x") == "x"
    assert d.all_reduce_sum(2.5) == 2.5 and d.all_reduce_mean(2.5) == 2.5
    assert d.shard([4, 5]) == [4, 5]
    d.barrier()
    model = nn.Linear(2, 2)
    assert distributed.wrap(model, d) is model and distributed.unwrap(model) is model


def test_init_without_launcher_is_single_process(monkeypatch):
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    assert distributed.init() == Dist()
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert distributed.init() == Dist()


def test_more_nccl_ranks_than_gpus_is_a_clear_error(monkeypatch):
    # two ranks on a one-GPU machine: rank 1 would ask for cuda:1
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    joined = []
    monkeypatch.setattr(distributed.tdist, "init_process_group", lambda *a, **k: joined.append(a))
    with pytest.raises(RuntimeError, match=r"LOCAL_RANK 1.*1 CUDA device.*--nproc_per_node=1"):
        distributed.init()
    assert joined == []  # refused before joining a group the other ranks would wait on


def test_borrow_if_empty():
    assert borrow_if_empty([3, 4], [2, 3, 4]) == ([3, 4], False)
    assert borrow_if_empty([], [7, 8]) == ([7], True)
    with pytest.raises(ValueError):
        borrow_if_empty([], [])


def test_local_outputs_of_a_borrowed_forward_give_zero_rows_and_zero_grads():
    lin = nn.Linear(3, 4)
    out = {"logits": lin(torch.ones(2, 3)), "labels": torch.ones(2, 4)}
    kept, tie = local_outputs(out, borrowed=False)
    assert kept["logits"] is out["logits"] and tie.item() == 0.0
    rows, tie = local_outputs(out, borrowed=True)
    assert rows["logits"].shape == (0, 4) and rows["labels"].shape == (0, 4)
    assert tie.item() == 0.0 and tie.requires_grad
    tie.backward()
    # every parameter the forward used gets a gradient (DDP's buckets fill), and it is exactly 0
    assert torch.equal(lin.weight.grad, torch.zeros(4, 3)) and torch.equal(lin.bias.grad, torch.zeros(4))


# --------------------------------------------------------------------------- 2 ranks: primitives
def _primitives(d: Dist) -> dict:
    r, res = d.rank, {}
    # gather with different dim-0 sizes (0 included); rank r's rows hold 10 r + 0, 1, 2, ...
    for sizes in [(2, 0), (0, 3), (1, 3)]:
        n = sizes[r]
        x = (10.0 * r + torch.arange(2.0 * n)).view(n, 2).requires_grad_()
        y = d.gather(x)
        coef = torch.arange(float(y.numel())).view_as(y)
        (y * coef).sum().backward()
        res[sizes] = (y.detach(), x.grad)
    res["bool"] = d.gather(torch.tensor([[True], [False]]) if r == 0 else torch.tensor([[True]]))
    # evaluation: 5 documents with 2, 1, 3, 1, 2 pairs; rank r infers its shard, each row = doc id
    pairs = [2, 1, 3, 1, 2]
    mine = d.shard(list(range(5)))
    res["rows"] = d.gather_rows(torch.tensor([[float(i)] for i in mine for _ in range(pairs[i])]))
    res["objects"] = d.gather_objects({"rank": r, "docs": d.shard(list("abcde"))})
    res["broadcast"] = d.broadcast_object("from rank 0" if r == 0 else None)
    res["sum"] = d.all_reduce_sum(torch.tensor([r + 1.0]))
    res["mean"] = d.all_reduce_mean(r + 1.0)
    try:
        d.gather(torch.zeros(2, 3) if r == 0 else torch.zeros(1, 4))
        res["mismatch"] = None
    except ValueError as e:
        res["mismatch"] = str(e)
    d.barrier()
    return res


@pytest.fixture(scope="module")
def primitives() -> list[dict]:
    return run_ranks(_primitives, 2)


def test_gather_concatenates_in_rank_order_with_uneven_sizes(primitives):
    expected = {
        (2, 0): [[0, 1], [2, 3]],
        (0, 3): [[10, 11], [12, 13], [14, 15]],
        (1, 3): [[0, 1], [10, 11], [12, 13], [14, 15]],
    }
    for res in primitives:
        for sizes, rows in expected.items():
            assert torch.equal(res[sizes][0], torch.tensor(rows, dtype=torch.float32)), sizes
        assert torch.equal(res["bool"], torch.tensor([[True], [False], [True]]))


def test_gather_backward_is_world_times_own_rows_of_the_upstream_grad(primitives):
    # loss = sum(y * coef) with coef = 0, 1, 2, ... over the gathered rows; every rank computes it,
    # so the sum over the 2 ranks of d loss / d x is 2 x coef at this rank's rows
    expected = {
        (2, 0): ([[0, 2], [4, 6]], torch.zeros(0, 2)),
        (0, 3): (torch.zeros(0, 2), [[0, 2], [4, 6], [8, 10]]),
        (1, 3): ([[0, 2]], [[4, 6], [8, 10], [12, 14]]),
    }
    for rank, res in enumerate(primitives):
        for sizes, per_rank in expected.items():
            assert torch.equal(res[sizes][1], torch.as_tensor(per_rank[rank], dtype=torch.float32)), (rank, sizes)


def test_gather_rows_objects_broadcast_and_reductions(primitives):
    for res in primitives:
        # rank 0 inferred docs 0-2, rank 1 docs 3-4: back in document order, one row per pair
        assert res["rows"].flatten().tolist() == [0, 0, 1, 2, 2, 2, 3, 4, 4]
        assert res["objects"] == [{"rank": 0, "docs": ["a", "b", "c"]}, {"rank": 1, "docs": ["d", "e"]}]
        assert res["broadcast"] == "from rank 0"
        assert res["sum"].tolist() == [3.0] and res["mean"] == 1.5
        # a trailing-shape mismatch raises on every rank instead of hanging one of them
        assert "(2, 3), (1, 4)" in res["mismatch"]


# --------------------------------------------------------------------------- 2 ranks: a DDP training step
GROUPS, BLOCK, IN, CLASSES = 2, 3, 5, 97
DOC_PAIRS = [3, 1, 2, 4]  # pairs per document of the toy corpus
# one relation set per pair, documents concatenated (0 = NA): relation 1 and 2 recur across
# documents so SCL anchors have partners on the other rank
PAIR_RELS = [[1], [], [2], [1, 3], [2], [], [4], [1], [], [2]]


class TinyPairHead(nn.Module):
    """The model's head in miniature: group factors zh, zt and a group-bilinear classifier."""

    def __init__(self):
        super().__init__()
        self.ext = nn.Linear(IN, 2 * GROUPS * BLOCK)
        self.cls = nn.Linear(GROUPS * BLOCK * BLOCK, CLASSES)

    def forward(self, x):
        zh, zt = torch.tanh(self.ext(x)).view(len(x), 2, GROUPS, BLOCK).unbind(1)
        return {"logits": self.cls(group_outer(zh, zt)), "zh": zh, "zt": zt}


def _corpus() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Documents as (pair inputs (n, IN), multi-hot labels (n, 1+R)), identical on every rank."""
    g = torch.Generator().manual_seed(0)
    labels = torch.zeros(len(PAIR_RELS), CLASSES)
    for i, rels in enumerate(PAIR_RELS):
        labels[i, rels or [0]] = 1.0
    x = torch.randn(len(PAIR_RELS), IN, generator=g)
    bounds = torch.cumsum(torch.tensor([0] + DOC_PAIRS), 0).tolist()
    return [(x[a:b], labels[a:b]) for a, b in zip(bounds, bounds[1:])]


def _loss(spec_name, out, labels):
    gen = torch.Generator().manual_seed(7)  # every rank and the reference draw the same mask
    return compute_loss(loss_spec(spec_name), out["logits"], labels, features=(out["zh"], out["zt"]),
                        generator=gen)[0]


def _ddp_step(d: Dist, spec_name: str, batch: list[int]) -> dict:
    docs = _corpus()
    torch.manual_seed(100 + d.rank)  # different init per rank: wrap must start them all from rank 0's
    model = TinyPairHead()
    ddp = distributed.wrap(model, d)
    ref = copy.deepcopy(distributed.unwrap(ddp))

    # one process, whole batch
    x_all = torch.cat([docs[i][0] for i in batch])
    y_all = torch.cat([docs[i][1] for i in batch])
    ref_out = ref(x_all)
    ref_loss = _loss(spec_name, ref_out, y_all)
    ref_loss.backward()

    # this rank's contiguous chunk, gathered back to the global batch
    mine, borrowed = borrow_if_empty(d.shard(batch), batch)
    out = ddp(torch.cat([docs[i][0] for i in mine]))
    local, tie = local_outputs({**out, "labels": torch.cat([docs[i][1] for i in mine])}, borrowed)
    g = {k: d.gather(v) for k, v in local.items()}
    loss = _loss(spec_name, g, g["labels"])
    (loss + tie).backward()
    with torch.no_grad():  # what each rank would get from its own documents alone
        local_only = _loss(spec_name, out, local["labels"]) if not borrowed else torch.zeros(())
    return {"borrowed": borrowed, "n_local": len(local["labels"]), "loss": loss.detach(),
            "ref_loss": ref_loss.detach(), "local_only": local_only,
            "logits": g["logits"].detach(), "ref_logits": ref_out["logits"].detach(),
            "grads": {n: p.grad for n, p in model.named_parameters()},
            "ref_grads": {n: p.grad for n, p in ref.named_parameters()}}


STEP_CASES = {
    "pemscl": ("pemscl", [0, 1, 2]),       # rank 0: docs 0, 1 (4 pairs); rank 1: doc 2 (2 pairs)
    "pemscl-ns": ("pemscl-ns", [3, 0, 1, 2]),  # 7 pairs and 3 pairs; sampled negatives
    "empty-rank": ("pemscl-ns", [3]),      # a last batch of 1 document: rank 1 borrows it
}


def _ddp_steps(d: Dist) -> dict:
    return {name: _ddp_step(d, *case) for name, case in STEP_CASES.items()}


@pytest.fixture(scope="module")
def ddp_steps() -> list[dict]:
    return run_ranks(_ddp_steps, 2)


@pytest.mark.parametrize("case", list(STEP_CASES))
def test_ddp_step_equals_one_process_on_the_whole_batch(ddp_steps, case):
    for res in (r[case] for r in ddp_steps):
        # same rows in the same order as the single-process forward, and the same loss
        torch.testing.assert_close(res["logits"], res["ref_logits"], rtol=0, atol=1e-6)
        torch.testing.assert_close(res["loss"], res["ref_loss"], rtol=1e-6, atol=1e-6)
        assert set(res["grads"]) == {"ext.weight", "ext.bias", "cls.weight", "cls.bias"}
        for name, grad in res["grads"].items():
            ref = res["ref_grads"][name]
            assert grad is not None, name
            # the loss sums ~500 float32 terms and the grads reach ~300, so the two summation orders
            # differ by float32 rounding: ~1e-7 of the gradient's scale (a wrong factor would be 0.5)
            torch.testing.assert_close(grad, ref, rtol=0, atol=1e-6 * float(ref.abs().max()))


def test_ddp_step_cases_exercise_what_they_claim(ddp_steps):
    r0, r1 = (r["empty-rank"] for r in ddp_steps)
    assert (r0["borrowed"], r0["n_local"], r1["borrowed"], r1["n_local"]) == (False, 4, True, 0)
    sizes = [[r[c]["n_local"] for r in ddp_steps] for c in ("pemscl", "pemscl-ns")]
    assert sizes == [[4, 2], [7, 3]]
    # SCL couples the ranks: the per-rank losses do not add up to the global one (the PMT/EM sums
    # would), so the equality above really needed the gather
    for case in ("pemscl", "pemscl-ns"):
        split = sum(float(r[case]["local_only"]) for r in ddp_steps)
        assert abs(split - float(ddp_steps[0][case]["ref_loss"])) > 1e-3
