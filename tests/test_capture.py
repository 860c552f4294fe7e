"""The fused mode's engine (paramops/capture.py: the C++ one of csrc/cpu/capture.cpp with the
extension, the Python TorchDispatchMode without): what it records, the barrier before anything
touches pending memory, waves, nesting, threads, and what it leaves alone."""
import io
import pickle
import sys
import threading

import pytest
import torch
from torch import nn

import paramops
from paramops import capture as C
from conftest import HAS_CPP, assert_bitwise

from paramops.core import ext


def one_by_one(fn, seed=3):
    """fn() run with every record written at once (the reference)."""
    torch.manual_seed(seed)
    with paramops.patched(), C.Capture(eager=True):
        return fn()


def fused(fn, seed=3):
    torch.manual_seed(seed)
    with paramops.patched(), C.Capture() as cap:
        out = fn()
    return out, cap


def test_records_paramops_and_torch_methods():
    def fn():
        a, b, c, d = torch.empty(100), torch.empty(50), torch.empty(7, dtype=torch.float64), torch.empty(9)
        nn.init.normal_(a, 0.0, 0.02)  # patched: paramops.init, the op records
        b.uniform_(-1, 1)  # torch's Tensor.uniform_, recorded with paramops' values
        c.normal_(generator=torch.Generator().manual_seed(5))
        d.fill_(2.5)
        paramops.trunc_normal_(a[:10], seed=4, stream=2, offset=1)
        b.zero_()
        c.uniform_(0.5, 0.5)  # torch fills a when a == b
        return a, b, c, d

    want = one_by_one(fn)
    got, cap = fused(fn)
    assert cap.recorded == 7 and cap.flushes <= 3, (cap.recorded, cap.flushes)
    for g, w in zip(got, want):
        assert_bitwise(g, w)
    assert torch.equal(got[1], torch.zeros(50)) and torch.equal(got[2], torch.full((7,), 0.5, dtype=torch.float64))


@pytest.mark.parametrize("reader", ["sum", "clone", "item", "numpy", "tolist", "repr", "pickle", "save", "index",
                                    "add_", "copy_from", "eq"])
def test_anything_that_reads_pending_memory_sees_the_values(reader):
    def read(t):
        if reader == "sum":
            return t.sum().item()
        if reader == "clone":
            return t.clone()[3].item()
        if reader == "item":
            return t[3].item()
        if reader == "numpy":
            return float(t.numpy()[3])
        if reader == "tolist":
            return t.tolist()[3]
        if reader == "repr":
            return len(repr(t)) > 0  # (the format may differ under a mode; the flush must happen)
        if reader == "pickle":
            return pickle.loads(pickle.dumps(t))[3].item()
        if reader == "save":
            buf = io.BytesIO()
            torch.save(t, buf)
            return torch.load(io.BytesIO(buf.getvalue()))[3].item()
        if reader == "index":
            return t[torch.tensor([3])].item()
        if reader == "add_":
            return t.add_(1.0)[3].item()
        if reader == "copy_from":
            return torch.empty(10).copy_(t)[3].item()
        return (t == t).all().item()

    torch.manual_seed(8)
    want = read(paramops.normal_(torch.empty(10)))
    torch.manual_seed(8)
    with C.Capture() as cap:
        t = torch.empty(10)
        paramops.normal_(t)
        assert cap.pending == 1
        got = read(t)
        assert cap.pending == 0
    assert got == want


def test_views_and_metadata_do_not_flush():
    with C.Capture() as cap:
        t = torch.empty(6, 4)
        paramops.normal_(t, seed=1)
        t.view(24), t[1:3], t.t(), t.shape, t.stride(), t.untyped_storage().nbytes() if False else None
        torch.empty_like(t), torch.zeros_like(t), t.new_empty(3), t.as_strided((2,), (1,))
        assert cap.pending == 1
        t.data_ptr()  # an address, not the values
        assert cap.pending == 1
    assert_bitwise(t, paramops.normal_(torch.empty(6, 4), seed=1))


def test_overlapping_writes_keep_their_order_and_same_view_replaces():
    def fn():
        w = torch.empty(8, 6)
        paramops.normal_(w)  # wave 0
        paramops.fill_(w[2], 0.0)  # overlaps: wave 1
        paramops.uniform_(w[:, 1:3])  # overlaps the row: wave 2
        v = torch.empty(5)
        paramops.normal_(v)
        paramops.trunc_normal_(v)  # the same view as the pending one: replaces it
        return w, v

    want = one_by_one(fn)
    got, cap = fused(fn)
    assert cap.recorded == 5 and cap.flushes == 3, (cap.recorded, cap.flushes)
    for g, w in zip(got, want):
        assert_bitwise(g, w)


def test_nested_captures_see_each_others_writes_in_order():
    def fn():
        a = torch.empty(20)
        paramops.normal_(a)
        with C.Capture() as inner:
            paramops.fill_(a[5:10], 1.0)  # inner, newer than the outer's pending normal_
            b = torch.empty(4)
            paramops.uniform_(b)
        assert inner.recorded == 2
        return a, b

    want = one_by_one(fn)
    got, cap = fused(fn)
    for g, w in zip(got, want):
        assert_bitwise(g, w)
    assert torch.equal(got[0][5:10], torch.ones(5))


def test_leaf_that_requires_grad_is_torch_s_business():
    """Tensor.normal_ on a leaf that requires grad, grad mode on: torch's own error, as without
    the mode; under no_grad it is recorded; a paramops op (not differentiable) records either way."""
    with C.Capture() as cap:
        w = nn.Parameter(torch.empty(4))
        with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
            w.normal_()
        with torch.no_grad():
            w.normal_()
        paramops.normal_(w)
        assert cap.recorded == 2
    assert not w.isnan().any()


def test_inference_tensors():
    with torch.inference_mode():
        t = torch.zeros(5)
    with C.Capture() as cap:
        with pytest.raises(RuntimeError, match="Inplace update to inference tensor outside InferenceMode"):
            paramops.normal_(t)
        assert cap.recorded == 0
        with torch.inference_mode():
            paramops.normal_(t, seed=2)
    assert_bitwise(t, paramops.normal_(torch.empty(5), seed=2))


@pytest.mark.skipif(not HAS_CPP, reason="the Python engine cannot tell the Negative fallback's copy")
def test_negative_bit_views_are_written_at_once():
    def fn():
        base = torch.empty(6)
        paramops.normal_(base)
        paramops.fill_(torch._neg_view(base[:3]), 2.0)  # after the pending normal_, at once
        return base

    want = one_by_one(fn)
    got, cap = fused(fn)
    assert_bitwise(got, want)
    assert torch.equal(got[:3], torch.full((3,), -2.0))


def test_other_threads_are_not_captured():
    out = {}

    def other():
        t = torch.empty(5)
        paramops.normal_(t, seed=3)
        out["t"] = t.clone()

    with C.Capture() as cap:
        th = threading.Thread(target=other)
        th.start()
        th.join()
        assert cap.recorded == 0
    assert_bitwise(out["t"], paramops.normal_(torch.empty(5), seed=3))


def test_watch_collects_written_storages():
    keep = torch.empty(3)
    touched = torch.empty(4)
    with C.Capture(watch={C.storage_key(keep), C.storage_key(touched)}) as cap:
        touched.mul_(0.0)  # run, not recorded
        other = paramops.normal_(torch.empty(2))
    assert cap.written == {C.storage_key(touched)} and other.numel() == 2


def test_resolve_gives_seeds_streams_offsets():
    calls = []

    def resolve(records, final):
        calls.append(([(t.shape, k) for t, k in records], final))
        return [(7, 1, 2) if k != 3 else None for t, k in records]

    with C.Capture(resolve=resolve):
        a = torch.empty(9)
        paramops.normal_(a)
        paramops.fill_(torch.empty(2), 1.0)
    assert calls == [([(torch.Size([9]), 1), (torch.Size([2]), 3)], True)]
    assert_bitwise(a, paramops.normal_(torch.empty(9), seed=7, stream=1, offset=2))


def test_resolve_that_raises_drops_nothing():
    def resolve(records, final):
        raise KeyError("no names yet")

    cap = C.Capture(resolve=resolve)
    with pytest.raises(KeyError):
        with cap:
            paramops.normal_(torch.empty(3))
    assert cap.pending == 0  # the Capture is gone with its records; nothing half-written


@pytest.mark.skipif(not HAS_CPP, reason="the C++ engine")
def test_the_cpp_engine():
    """The DeferredInit key is included exactly while a Capture is active (nested ones too), and a
    record runs no Python at all."""
    assert ext.C.capture_state() == (0, False)
    with C.Capture():
        assert ext.C.capture_state() == (1, True)
        with C.Capture():
            assert ext.C.capture_state() == (2, True)
        assert ext.C.capture_state() == (1, True)
        t = torch.empty(64)
        seen = []
        sys.setprofile(lambda frame, event, arg: seen.append(frame.f_code.co_name) if event == "call" else None)
        try:
            t.normal_()
        finally:
            sys.setprofile(None)
        assert seen == [], seen
    assert ext.C.capture_state() == (0, False)


def test_exit_in_the_wrong_order_is_refused():
    """Refused without side effects: the right order still works afterwards, and nothing stays
    captured (a leaked capture would defer every later init on this thread)."""
    a, b = C.Capture(), C.Capture()
    a.__enter__()
    b.__enter__()
    with pytest.raises(RuntimeError, match="reverse order"):
        a.__exit__(None, None, None)
    t = torch.full((5,), float("nan"))
    paramops.normal_(t, seed=3)
    assert b.pending == 1  # recorded, not written
    b.__exit__(None, None, None)
    assert not t.isnan().any()
    a.__exit__(None, None, None)
    with pytest.raises(RuntimeError, match="reverse order"):
        a.__exit__(None, None, None)
    if HAS_CPP:
        assert ext.C.capture_state() == (0, False)
    u = torch.full((5,), float("nan"))
    paramops.normal_(u, seed=3)
    assert torch.equal(u, t)  # written at once: no capture left
