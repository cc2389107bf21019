"""Where a model's GPU time goes: ``hstool recon``'s call (a ``Reconstructor``, host to host) per
precision, with and without TF32 matrix products, and a profile of its kernels.

    python benchmarks/gpu_profile.py                       # mstpp, 482x512
    python benchmarks/gpu_profile.py --models mstpp,awan_s --repeats 20

For each model: milliseconds per image (median) in fp32 (PyTorch's default: convolutions in
TF32, matrix products in full fp32), fp32 with ``torch.backends.cuda.matmul.allow_tf32`` (a
process-wide switch hstool does not set), fp16 and bf16 autocast; then the top CUDA kernels of
one fp32 call and the top CPU-side operators (the engine's own steps show there). Needs CUDA.
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial

import numpy as np
import torch


def per_call_ms(fn, repeats: int) -> float:
    fn()  # warm-up (cuDNN algorithm choice, allocator)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()  # returns a host array: synchronised
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def profile_table(fn, sort_by: str, rows: int) -> str:
    from torch.profiler import ProfilerActivity, profile

    fn()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=activities) as prof:
        fn()
    return prof.key_averages().table(sort_by=sort_by, row_limit=rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="mstpp")
    ap.add_argument("--size", default="482x512")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--rows", type=int, default=15, help="rows of each profile table")
    ap.add_argument("--device", default="cuda", help="cuda (default), or cpu to try the script out")
    args = ap.parse_args()
    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        print("gpu_profile: no CUDA device")
        return 1
    from hstool.recon import Reconstructor
    from hstool.recon.weights import bundled_path

    h, w = (int(v) for v in args.size.lower().split("x"))
    rgb = np.random.default_rng(0).random((h, w, 3), dtype=np.float32)
    where = torch.cuda.get_device_name() if cuda else "CPU"
    print(f"{where}, torch {torch.__version__}, {h}x{w}, median of {args.repeats}")
    for name in args.models.split(","):
        weights = "bundled" if bundled_path(name, "clean").exists() else None
        recs = {p: Reconstructor(name, weights, "clean", device=args.device, precision=p)
                for p in ("fp32", "fp16", "bf16")}
        ref = recs["fp32"](rgb)
        row = {}
        for label, precision, tf32 in (("fp32", "fp32", False), ("fp32+tf32 matmul", "fp32", True),
                                       ("fp16", "fp16", False), ("bf16", "bf16", False)):
            torch.backends.cuda.matmul.allow_tf32 = tf32
            try:
                rec = recs[precision]
                ms = per_call_ms(lambda rec=rec: rec(rgb), args.repeats)
                rel = float(np.abs(rec(rgb) - ref).mean() / max(float(np.abs(ref).mean()), 1e-12))
            finally:
                torch.backends.cuda.matmul.allow_tf32 = False
            row[label] = ms
            print(f"{name:10s} {label:18s} {ms:8.2f} ms   mean |diff| / mean |fp32| = {rel:.1e}")
        call = partial(recs["fp32"], rgb)
        if cuda:
            print(f"\n{name}: CUDA kernels of one fp32 call")
            print(profile_table(call, "device_time_total", args.rows))
        print(f"{name}: CPU-side operators of one fp32 call")
        print(profile_table(call, "self_cpu_time_total", args.rows))
        del recs, call
        if cuda:
            torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
