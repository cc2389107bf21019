"""CPU cost of every deep architecture at one image size, each in its own memory-capped process.

For each model: parameters, the multiply-accumulates we count (``torch.utils.flop_counter``, /2,
the convention of the MST++ toolbox's "GFLOPs"), the published figure at 256×256 (MST++
toolbox README), and the median fp32 forward time (eval, no_grad) — with its ratio to MST++
timed in the same run, so machines and loads compare. Each model runs in a child process under
``RLIMIT_AS`` (default 8 GB): a model that needs more fails alone, as the reference AWAN does on
a whole image (its PSNL attention is quadratic in the pixel count; ours is chunked).

    $ python benchmarks/models.py                     # all deep models at 256×256 (slow: minutes)
    $ python benchmarks/models.py --size 64 --models mstpp,basisunet --repeats 1   # smoke run
    $ python benchmarks/models.py --json > costs.json

Run by hand, never in the test suite; on a shared machine, pass ``--threads``.
"""

from __future__ import annotations

import argparse
import json
import sys

from peak import own_peak_mb  # benchmarks/peak.py, beside this script

from recon import median, round_robin, run_capped  # benchmarks/recon.py, beside this script

# Published cost at a 256×256 input (G multiply-accumulates, "GFLOPs" in the MST++ toolbox README).
PUBLISHED_GFLOPS = {"hscnnp": 304.0, "hrnet": 163.81, "awan": 270.61, "mstpp": 23.05}
PUBLISHED_PARAMS_M = {"hscnnp": 4.65, "hrnet": 31.70, "awan": 4.04, "mstpp": 1.62}


def measure(name: str, size: int, repeats: int, threads: int) -> dict:
    """Build ``name`` untrained, count its MACs on one forward, then time ``repeats`` forwards."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from hstool.recon.registry import build_model

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_model(name).eval()
    x = torch.rand(1, 3, size, size)
    params = sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        counter = FlopCounterMode(display=False)
        with counter:
            model(x)
        times = round_robin({"forward": lambda: model(x)}, repeats)["forward"]
    return {
        "model": name,
        "params": params,
        "gmacs": counter.get_total_flops() / 2e9,
        "seconds": median(times),
        "peak_rss_gb": own_peak_mb() / 1024,  # VmHWM: ru_maxrss would carry the parent's RSS
    }


def run_child(name: str, size: int, repeats: int, threads: int, mem_gb: float, timeout: float) -> dict:
    """``measure`` in a fresh interpreter capped at ``mem_gb`` of address space."""
    argv = [__file__, "--child", name, "--size", str(size), "--repeats", str(repeats), "--threads", str(threads)]
    return {"model": name, **run_capped(argv, mem_gb, timeout)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="", help="comma-separated names (default: every deep model)")
    parser.add_argument("--size", type=int, default=256, help="square input side in pixels (default 256)")
    parser.add_argument("--repeats", type=int, default=3, help="timed forwards per model (median)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--mem-gb", type=float, default=8.0, help="address-space cap per child")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per model")
    parser.add_argument("--json", action="store_true", help="print results as JSON to stdout")
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        print(json.dumps(measure(args.child, args.size, args.repeats, args.threads)))
        return 0

    from hstool.recon.registry import list_models, model_spec

    names = [n for n in args.models.split(",") if n] or [
        n for n in list_models() if model_spec(n).kind == "deep"
    ]
    if "mstpp" not in names:
        names.insert(0, "mstpp")  # the yardstick every ratio refers to
    results = []
    for name in names:
        print(f"{name} …", file=sys.stderr, flush=True)
        results.append(run_child(name, args.size, args.repeats, args.threads, args.mem_gb, args.timeout))
    base = next((r["seconds"] for r in results if r["model"] == "mstpp" and "seconds" in r), None)
    scale = (args.size / 256) ** 2
    for r in results:
        key = r["model"]
        r["published_params_m"] = PUBLISHED_PARAMS_M.get(key)
        r["published_gmacs"] = PUBLISHED_GFLOPS[key] * scale if key in PUBLISHED_GFLOPS else None
        r["ratio_to_mstpp"] = r["seconds"] / base if base and "seconds" in r else None

    if args.json:
        print(json.dumps({"size": args.size, "threads": args.threads, "results": results}, indent=2))
        return 0

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Deep models, {args.size}×{args.size}, CPU fp32, {args.threads} threads")
    for col in ("model", "params (M)", "published (M)", "GMAC ours", "GMAC published", "time (s)", "× MST++"):
        table.add_column(col, justify="left" if col == "model" else "right")

    def fmt(v, spec):
        return "—" if v is None else format(v, spec)

    for r in results:
        if "error" in r:
            table.add_row(r["model"], "", "", "", "", f"[red]{r['error']}[/red]", "")
            continue
        table.add_row(
            r["model"],
            fmt(r["params"] / 1e6, ".2f"),
            fmt(r["published_params_m"], ".2f"),
            fmt(r["gmacs"], ".1f"),
            fmt(r["published_gmacs"], ".1f"),
            fmt(r["seconds"], ".3f"),
            fmt(r["ratio_to_mstpp"], ".2f"),
        )
    Console(stderr=True, width=max(100, Console(stderr=True).width)).print(table)
    if args.size != 256:
        print("published GMACs scaled from 256×256 by pixel count", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
