"""Timers of the benchmark: same-run medians after a warm-up, the samples of the ways of one case
taken in turns, CUDA events on a GPU, peak memory beyond the tensors."""
import os
import re
import time

import torch

# --------------------------------------------------------------------------- memory

def available_bytes(device):
    if device == "cuda":
        free, _ = torch.cuda.mem_get_info()
        return free
    try:
        with open("/proc/meminfo") as f:
            m = re.search(r"MemAvailable:\s+(\d+) kB", f.read())
        return int(m.group(1)) * 1024
    except (OSError, AttributeError):
        return 4 << 30


class PeakMemory:
    """Extra memory used between start() and stop(), in bytes (None if unknown).
    CUDA: max_memory_allocated delta. CPU (Linux): VmHWM at stop minus VmRSS at
    start, with VmHWM reset through /proc/self/clear_refs."""

    def __init__(self, device):
        self.device, self.base = device, None

    @staticmethod
    def _status(key):
        with open("/proc/self/status") as f:
            return int(re.search(key + r":\s+(\d+) kB", f.read()).group(1)) * 1024

    def start(self):
        self.base = None
        if self.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
            return
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.base = self._status("VmRSS")
        except (OSError, AttributeError):
            pass

    def stop(self):
        if self.base is None:
            return None
        if self.device == "cuda":
            torch.cuda.synchronize()
            return torch.cuda.max_memory_allocated() - self.base
        return max(0, self._status("VmHWM") - self.base)

    def measure(self, fn):
        self.start()
        fn()
        return self.stop()


# --------------------------------------------------------------------------- timing

def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def _clock(device, fn, inner):
    """Seconds per call of fn, over `inner` back-to-back calls."""
    if device == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(inner):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3 / inner
    t0 = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - t0) / inner


def time_fn(fn, device, budget_s=0.5, repeat=None, min_sample_s=1e-3, max_repeat=50, mem=None):
    """(median seconds per call of fn, samples, extra bytes or None).

    One warm-up call, then `repeat` samples (default: as many as fit in
    budget_s, at least 3, at most max_repeat); each sample averages enough
    back-to-back calls to last about min_sample_s. The first timed call is a
    single call, run under `mem` (a PeakMemory) when given, and counts as a
    sample when a call alone lasts min_sample_s."""
    sync(device)
    fn()  # warm-up (first touch, lazy init, allocator)
    sync(device)
    if mem is not None:
        mem.start()
    t1 = _clock(device, fn, 1)
    extra = mem.stop() if mem is not None else None
    inner = max(1, min(1000, int(min_sample_s / max(t1, 1e-9))))
    if repeat is None:
        repeat = int(max(3, min(max_repeat, budget_s / max(t1 * inner, 1e-9))))
    samples = [t1] if inner == 1 else []
    samples += [_clock(device, fn, inner) for _ in range(repeat - len(samples))]
    samples.sort()
    return samples[len(samples) // 2], len(samples), extra


def time_fns(fns, device, budget_s=0.5, repeat=None, min_sample_s=1e-3, max_repeat=50, mem=None):
    """time_fn for several fns of one case, their samples taken in turns (each round
    times every fn once), so that a load change during the case moves them alike and
    their ratios stay meaningful. fns: {key: fn}. Returns {key: (median seconds, samples,
    extra bytes or None)} or, for a fn that raised, {key: the exception}. The budget is
    budget_s per fn."""
    out, inner, samples, extra, first = {}, {}, {}, {}, {}
    for k, fn in fns.items():
        try:
            sync(device)
            fn()  # warm-up
            sync(device)
            if mem is not None:
                mem.start()
            t1 = _clock(device, fn, 1)
            extra[k] = mem.stop() if mem is not None else None
        except Exception as e:  # a missing API, an unsupported dtype: record it, go on
            out[k] = e
            continue
        inner[k] = max(1, min(1000, int(min_sample_s / max(t1, 1e-9))))
        samples[k] = [t1] if inner[k] == 1 else []
        first[k] = t1
    live = [k for k in fns if k in inner]
    if repeat is None:
        round_s = sum(first[k] * inner[k] for k in live)
        repeat = int(max(3, min(max_repeat, budget_s * max(1, len(live)) / max(round_s, 1e-9))))
    for _ in range(repeat):
        for k in list(live):
            if len(samples[k]) >= repeat:
                continue
            try:
                samples[k].append(_clock(device, fns[k], inner[k]))
            except Exception as e:
                out[k] = e
                live.remove(k)
    for k in live:
        s = sorted(samples[k])
        out[k] = (s[len(s) // 2], len(s), extra[k])
    return out




def _loadavg():
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


def _err(e):
    return f"{type(e).__name__}: {e}".splitlines()[0][:200]
