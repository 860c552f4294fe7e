"""The GPU targets of issue 4, checked against `python -m paramops bench` JSON files.

    python bench/gpu_targets.py bench-cuda/*.json bench-triton/*.json

One column per file (its CUDA backend, from the file's backend_info). Single-tensor figures
are those of the largest size measured; ratios are the bench's same-run medians. The anchors
are the issue's H200 / torch 2.11 figures, for comparison only: the targets are ratios.
"""
import json
import sys

# (label, row selector, metric, bound, anchor)
TARGETS = [
    ("normal_ fp32, x nn.init", dict(kind="tensor", op="normal_", dtype="float32"), "speedup", 2.0,
     "nn.init 1695 GB/s"),
    ("normal_ bf16, x nn.init", dict(kind="tensor", op="normal_", dtype="bfloat16"), "speedup", 2.0,
     "nn.init 838 GB/s"),
    ("uniform_ fp32, % of fill_", dict(kind="tensor", op="uniform_", dtype="float32"), "pct_fill", 90.0,
     "nn.init 2420 GB/s, fill_ 4461 GB/s"),
    ("uniform_ bf16, x nn.init", dict(kind="tensor", op="uniform_", dtype="bfloat16"), "speedup", 2.0, ""),
    ("trunc_normal_ fp32, x nn.init", dict(kind="tensor", op="trunc_normal_", dtype="float32"), "speedup", 6.0,
     "nn.init 425 GB/s"),
    ("trunc_normal_ bf16, x nn.init", dict(kind="tensor", op="trunc_normal_", dtype="bfloat16"), "speedup", 6.0,
     ""),
    ("fill fp32, % of fill_", dict(kind="tensor", op="fill_", dtype="float32"), "pct_fill", 95.0, ""),
    ("fill bf16, % of fill_", dict(kind="tensor", op="fill_", dtype="bfloat16"), "pct_fill", 95.0, ""),
    ("Llama-7B bf16, x nn.init loop", dict(kind="model", model="llama7b", op="normal_"), "whole_x", 2.5,
     "loop 16.5 ms"),
    ("Llama-7B bf16 trunc, x loop", dict(kind="model", model="llama7b", op="trunc_normal_"), "whole_x", 5.0,
     "loop 37.7 ms"),
    ("GPT-2 small fp32, x loop", dict(kind="model", model="gpt2", op="normal_"), "whole_x", 8.0, "loop 2.14 ms"),
    ("10,000 x 64 fp32, x loop", dict(kind="model", model="tiny", op="normal_"), "whole_x", 100.0,
     "loop 141 ms"),
]
WHOLE_WAYS = ("multi", "fused")  # the whole-model targets: the multi-tensor op or the fused mode


DEVICE = "cuda"  # --device cpu checks the script on a CPU run


def _pick(rows, sel):
    hits = [r for r in rows if all(r.get(k) == v for k, v in sel.items()) and r.get("device") == DEVICE]
    if not hits:
        return None
    return max(hits, key=lambda r: (r.get("log2n") or 0, r.get("numel") or 0))


def _value(row, metric):
    if row is None:
        return None, ""
    if metric == "whole_x":
        best = max(((row.get(w + "_x"), w) for w in WHOLE_WAYS if row.get(w + "_x")), default=(None, ""))
        if best[0] is None:
            return None, ""
        return best[0], f"{best[1]} {row[best[1] + '_ms']:.3g} ms, loop {row['init_ms']:.3g} ms"
    v = row.get(metric)
    detail = f"2^{row['log2n']}: {row.get('paramops_gbps', 0):.0f} GB/s, nn.init {row.get('init_gbps', 0):.0f}, " \
             f"fill_ {row.get('fill_gbps', 0):.0f}"
    return v, detail


def _extra_mb(rows):
    """The largest device memory any paramops way took beyond the tensors, in MB."""
    keys = [k for r in rows for k in r if k.endswith("_extra_mb") and not k.startswith("init_")]
    vals = [r[k] for r in rows for k in keys if r.get(k) is not None]
    return max(vals) if vals else None


def main(paths):
    docs = [json.load(open(p)) for p in paths]
    names = [f"{d.get('backend_info', {}).get('cuda')} ({d.get('machine', {}).get('gpu')})" for d in docs]
    print(f"{'target':34} {'bound':>7}  " + "  ".join(f"{n:>26}" for n in names))
    failed, details = 0, []
    for label, sel, metric, bound, anchor in TARGETS:
        cells = []
        for d in docs:
            v, detail = _value(_pick(d["rows"], sel), metric)
            if v is None:
                cells.append(f"{'not measured':>26}")
                continue
            ok = v >= bound
            failed += not ok
            cells.append(f"{v:>9.2f} {'PASS' if ok else 'MISS':>4}".rjust(26))
            details.append(f"  {label} [{d.get('backend_info', {}).get('cuda')}]: {detail}")
        print(f"{label:34} {bound:>7}  " + "  ".join(cells) + (f"   anchor: {anchor}" if anchor else ""))
    print(f"{'extra device memory, MB (max)':34} {'~0':>7}  "
          + "  ".join(f"{_extra_mb(d['rows']) if _extra_mb(d['rows']) is not None else '-':>26}" for d in docs))
    print("\n".join(["", "measured:"] + details))
    print(f"\n{failed} target(s) missed")
    return 0


if __name__ == "__main__":
    argv = sys.argv[1:]
    if argv[:1] == ["--device"]:
        DEVICE, argv = argv[1], argv[2:]
    sys.exit(main(argv))
