"""Reconstruction speed per model: the inference engine against plain PyTorch, on CPU (and GPU).

For every registered model (its bundled clean-track weights when shipped, else untrained: the
cost is the same) at one image size (default 482×512, an ARAD_1K image), child processes under
an address-space limit (``RLIMIT_AS``, so that one model's appetite cannot take the machine
down) time, round-robin so that a shared machine's load hits every mode alike (on CPU ``plain``
and ``engine NCHW`` in one child, ``engine`` and ``bf16`` in another, since a CPU Reconstructor
tunes the process's allocator; the two alternate ``--rounds`` times and their times are pooled):

- ``plain``: the architecture run the way the research repositories' test scripts run it —
  ``model.eval()``, ``torch.no_grad()``, a float32 NCHW tensor from the (H, W, 3) array,
  reflect-padded (``F.pad``) to the model's multiple, one forward, cropped and turned back into
  an (H, W, B) float32 array;
- ``engine NCHW``: :func:`hstool.recon.predict` with its layout choice switched off
  (``engine.CHANNELS_LAST = False``): the same arithmetic as ``plain``, so its ratio to ``plain``
  is the engine's overhead (target ≤ 5 %);
- ``engine``: a :class:`hstool.recon.Reconstructor` called on the array, as ``hstool recon``
  runs it — inference mode, the model fused for inference (BatchNorm folded, activations as
  oneDNN post-ops, MST++'s attention algebra in fewer passes), freed memory kept for reuse
  (``engine.reuse_freed_memory``), channels-last input and weights for convolutional models, no
  copies of the image or the output (target ≤ 0.7× ``plain``);
- ``bf16``: the same with ``precision="bf16"``, opt-in, where the CPU has native bf16 kernels
  (AVX512-BF16/AMX; ~0.5 % relative change, so not the default).

With CUDA present a second child per model (no ``RLIMIT_AS``: CUDA reserves a huge address
space) times ``plain`` and the engine at fp32, fp16 and bf16 on the GPU, transfers included
(``--no-cpu``: the GPU only); targets on an H100: MST++ < 15 ms and HRNet < 60 ms per image.
Without CUDA the GPU columns say "n/a".

Pixel-wise models are timed on one thread (target ≥ 20 images/s on one core). Peak memory is
per mode: the peak resident set above the one before the mode's first call (Linux: writing 5 to
``/proc/self/clear_refs`` resets the high-water mark), and ``torch.cuda.max_memory_allocated``
on the GPU. ``max |Δ|`` is the largest difference between the engine's and the plain output
(clamped at zero, as the engine clamps).

    $ python benchmarks/recon.py                                    # every model, 482×512 (long)
    $ python benchmarks/recon.py --models mstpp,hrnet --repeats 5
    $ python benchmarks/recon.py --size 64x80 --models mstpp_s,basisunet,rootpoly --repeats 1
    $ python benchmarks/recon.py --json > recon_speed.json
    $ python benchmarks/recon.py --no-cpu --repeats 10            # on a GPU machine: GPU columns only

Run by hand, never in the test suite. ``run_capped`` and ``round_robin`` are shared with
``benchmarks/models.py`` and ``benchmarks/engine.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

#: Targets of the recon and deep-models issues.
MAX_OVERHEAD = 0.05
MAX_CPU_RATIO = 0.7
MIN_PIXEL_IMAGES_PER_S = 20.0
GPU_TARGET_MS = {"mstpp": 15.0, "hrnet": 60.0}  # on an H100


# ---------------------------------------------------------------- shared by the benchmarks


def run_capped(argv: list[str], mem_gb: float = 8.0, timeout: float | None = None) -> dict:
    """Run ``python *argv`` with ``mem_gb`` of address space (0: no cap) and parse the JSON object on
    its last stdout line; a failure comes back as ``{"error": one line}``."""
    limit = int(mem_gb * 2**30)

    def cap() -> None:
        if limit > 0:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    try:
        proc = subprocess.run([sys.executable, *argv], check=False, capture_output=True, text=True,
                              timeout=timeout, preexec_fn=cap)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1][:100]
        if "MemoryError" in proc.stderr or "alloc" in proc.stderr.lower() or proc.returncode < 0:
            tail = f"out of memory under the {mem_gb:g} GB cap ({tail[:80]})"
        return {"error": tail}
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"error": f"no result ({proc.stdout.strip()[-80:]!r})"}


def child_process(argv: list[str], timeout: float | None = None, env: dict | None = None) -> dict:
    """Run ``argv`` (a command line; ``python`` for ``sys.executable``) as a child process and return
    its wall ``seconds``, ``peak_rss_mb``, ``returncode``, ``stdout`` and ``stderr``. A Python child
    runs under ``benchmarks/peak.py``, which reports the process's own peak resident set (or its
    largest worker's): what the process held, not a Python-heap figure, and not the parent's
    resident set that Linux carries into a child's ``ru_maxrss`` (``wait4``'s figure, used for
    other programs). Every benchmark's memory column comes from here or from a child reading its
    own ``ru_maxrss``."""
    argv = [sys.executable if a == "python" else str(a) for a in argv]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as errors, \
            tempfile.NamedTemporaryFile("r", suffix=".peak") as peak:
        if argv[0] == sys.executable:
            argv.insert(1, str(Path(__file__).with_name("peak.py")))
        env = {**os.environ, **(env or {}), "HSTOOL_PEAK_FILE": peak.name}
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=errors, env=env)
        while True:  # reaped here, not by Popen, to read its rusage
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if timeout is not None and time.perf_counter() - t0 > timeout:
                proc.kill()
            time.sleep(0.002)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        errors.seek(0)
        reported = peak.read().strip()
        return {"seconds": seconds, "peak_rss_mb": float(reported) if reported else usage.ru_maxrss / 1024,
                "returncode": proc.returncode, "stdout": out.read(), "stderr": errors.read()}


def round_robin(fns: dict[str, Callable[[], object]], repeats: int,
                sync: Callable[[], None] | None = None) -> dict[str, list[float]]:
    """Seconds of ``repeats`` calls of each function, interleaved (A B C A B C ...) so that a
    change of machine load during the run affects every function alike."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for key, fn in fns.items():
            if sync:
                sync()
            t0 = time.perf_counter()
            fn()
            if sync:
                sync()
            times[key].append(time.perf_counter() - t0)
    return times


def median(values: list[float]) -> float:
    values = sorted(values)
    n = len(values)
    return values[n // 2] if n % 2 else 0.5 * (values[n // 2 - 1] + values[n // 2])


# ---------------------------------------------------------------- child: one model, one device


def _rss_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_above(fn: Callable[[], object]) -> float:
    """Peak RSS (MB) during ``fn()`` above the RSS before it (Linux ``clear_refs``; else NaN)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before = _rss_mb("VmRSS")
        fn()
        return _rss_mb("VmHWM") - before
    except OSError:
        fn()
        return float("nan")


def plain_forward(model, rgb, multiple: int, device):
    """The research repositories' way: NCHW float32, reflect-pad to the multiple, no_grad, one
    forward, crop, back to (H, W, B)."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    h, w = rgb.shape[:2]
    x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None].to(device)
    ph, pw = -h % multiple, -w % multiple
    with torch.no_grad():
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="reflect")
        y = model(x)[0, :, :h, :w]
    return np.ascontiguousarray(y.permute(1, 2, 0).cpu().numpy())


#: Which modes each CPU child times: the engine's (a Reconstructor) apart from plain's, since a CPU
#: Reconstructor tunes the process's allocator (``engine.reuse_freed_memory``) and plain, the
#: research scripts' way, runs with the default one.
CPU_GROUPS = {"plain": ("plain", "engine NCHW"), "engine": ("engine", "bf16")}


def measure(name: str, h: int, w: int, device: str, repeats: int, threads: int, group: str = "") -> dict:
    """Time the modes of ``group`` (every mode when empty; see the module doc) for ``name`` on
    ``device``: per mode the seconds of each call, peak memory and the largest difference from the
    plain output."""
    import numpy as np
    import torch

    from hstool.recon import Reconstructor, create_model, engine, model_spec, predict
    from hstool.recon.weights import bundled_path

    spec = model_spec(name)
    cuda = device.startswith("cuda")
    if not cuda:
        threads = 1 if spec.kind == "pixel" else threads
        if threads > 0:
            torch.set_num_threads(threads)
    weights = "bundled" if bundled_path(name, "clean").exists() else None
    dev = torch.device(device)

    def fresh():  # one model per mode (a Reconstructor stores its weights channels-last)
        torch.manual_seed(0)
        return create_model(name, weights, "clean").to(dev)

    def engine_nchw(model):  # predict with the layout choice off: plain's arithmetic
        def call():
            engine.CHANNELS_LAST = False
            try:
                return predict(model, rgb, device)
            finally:
                engine.CHANNELS_LAST = None

        return call

    def reconstructor(precision="fp32"):  # what `hstool recon` runs
        torch.manual_seed(0)
        rec = Reconstructor(name, weights, "clean", device=device, precision=precision)
        return lambda: rec(rgb)

    rgb = np.random.default_rng(0).random((h, w, 3), dtype=np.float32)
    wanted = CPU_GROUPS.get(group) or ("plain", "engine NCHW", "engine", "bf16", "fp16")
    plain_model = fresh()
    plain = lambda: plain_forward(plain_model, rgb, max(1, spec.multiple), dev)
    ref = np.maximum(plain(), 0)  # untimed: the reference output for max |Δ|
    # only the group's modes are built: building a CPU Reconstructor tunes the allocator
    fns = {"plain": plain} if "plain" in wanted else {}
    if spec.kind == "deep" and "engine NCHW" in wanted:
        fns["engine NCHW"] = engine_nchw(fresh())
    if "engine" in wanted:
        fns["engine"] = reconstructor()
    if spec.kind == "deep":
        for half in ("fp16", "bf16") if cuda else ("bf16",):
            if half in wanted and engine.compute_dtype(dev, half) != torch.float32:
                fns[half] = reconstructor(half)

    result = {"model": name, "kind": spec.kind, "device": device, "weights": weights or "untrained",
              "threads": torch.get_num_threads() if not cuda else None, "modes": {}}
    sync = torch.cuda.synchronize if cuda else None
    for key, fn in fns.items():  # first call of each mode: warm-up, output check, peak memory
        out = {}
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            y = fn()
            torch.cuda.synchronize()
            out["peak_mb"] = (torch.cuda.max_memory_allocated() - base) / 2**20
        else:
            box = []
            out["peak_mb"] = _peak_above(lambda fn=fn, box=box: box.append(fn()))
            y = box[0]
        out["max_diff"] = float(np.abs(np.maximum(y, 0) - ref).max())
        result["modes"][key] = out
        del y
    for key, times in round_robin(fns, repeats, sync).items():
        result["modes"][key]["times"] = times
    return result


def _summarise(result: dict) -> dict:
    for mode in result.get("modes", {}).values():
        if mode.get("times"):
            mode.update(seconds=median(mode["times"]), min_seconds=min(mode["times"]))
    return result


def measure_cpu(child: list[str], rounds: int, mem_gb: float, timeout: float) -> dict:
    """The CPU modes of one model: a child per group of :data:`CPU_GROUPS`, alternating ``rounds``
    times so that a change of machine load hits both; times pooled, the first round's memory."""
    merged: dict = {}
    for _ in range(rounds):
        for group in CPU_GROUPS:
            r = run_capped([*child, "--group", group], mem_gb, timeout)
            if "error" in r:
                return r
            if not merged:
                merged = {**r, "modes": {}}
            for key, mode in r["modes"].items():
                if key in merged["modes"]:
                    merged["modes"][key]["times"] += mode["times"]
                else:
                    merged["modes"][key] = mode
    return _summarise(merged)


# ---------------------------------------------------------------- parent: table


def _fmt_ms(mode: dict | None) -> str:
    return f"{mode['seconds'] * 1e3:.1f}" if mode and "seconds" in mode else "—"


def _ratio(mode: dict | None, plain: dict | None) -> float | None:
    if not mode or not plain or "seconds" not in mode or "seconds" not in plain:
        return None
    return mode["seconds"] / plain["seconds"]


def _mark(ok: bool | None, text: str) -> str:
    if ok is None:
        return text
    return f"[green]{text}[/green]" if ok else f"[red]{text}[/red]"


def print_table(results: list[dict], size: tuple[int, int], cuda: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    h, w = size
    table = Table(title=f"Reconstruction of one {h}×{w} image: engine vs plain PyTorch (median ms)",
                  title_justify="left")
    cols = ["model", "threads", "plain", "engine NCHW", "overhead", "engine", "× plain", "bf16", "× plain",
            "img/s", "peak MB plain", "peak MB engine", "max |Δ|", "GPU plain", "GPU engine", "GPU fp16", "GPU bf16"]
    for col in cols:
        table.add_column(col, justify="left" if col == "model" else "right")
    for r in results:
        cpu, gpu = r.get("cpu") or {"kind": r.get("kind", ""), "modes": {}}, r.get("gpu")
        if "error" in cpu:
            table.add_row(r["model"], "", f"[red]{cpu['error']}[/red]", *[""] * (len(cols) - 3))
            continue
        m = cpu["modes"]
        plain, nchw, eng, bf = m.get("plain"), m.get("engine NCHW"), m.get("engine"), m.get("bf16")
        over = _ratio(nchw or eng, plain)
        ratio, ratio_bf = _ratio(eng, plain), _ratio(bf, plain)
        pixel = cpu["kind"] == "pixel"
        ips = 1.0 / eng["seconds"] if eng and "seconds" in eng else None
        gpu_cells = ["n/a"] * 4
        if gpu is not None and "error" in gpu:
            gpu_cells = [f"[red]{gpu['error'][:40]}[/red]", "", "", ""]
        elif gpu is not None:
            g = gpu["modes"]
            target = GPU_TARGET_MS.get(r["model"])
            ge = g.get("engine")
            ok = ge["seconds"] * 1e3 < target if target and ge and "seconds" in ge else None
            gpu_cells = [_fmt_ms(g.get("plain")), _mark(ok, _fmt_ms(ge)), _fmt_ms(g.get("fp16")), _fmt_ms(g.get("bf16"))]
        if gpu is not None and "modes" in gpu:  # the GPU's engine against its plain run too
            m = {**m, **{f"gpu {k}": v for k, v in gpu["modes"].items() if k not in ("fp16", "bf16")}}
        diff = max((v.get("max_diff", 0.0) for k, v in m.items() if k != "bf16"), default=float("nan"))
        table.add_row(
            r["model"],
            str(cpu.get("threads", "")),
            _fmt_ms(plain),
            _fmt_ms(nchw) if nchw else "—",
            _mark(over - 1 <= MAX_OVERHEAD, f"{(over - 1) * 100:+.1f}%") if over else "—",
            _fmt_ms(eng),
            _mark(None if pixel else ratio <= MAX_CPU_RATIO, f"{ratio:.2f}") if ratio else "—",
            _fmt_ms(bf) if bf else "—",
            _mark(ratio_bf <= MAX_CPU_RATIO, f"{ratio_bf:.2f}") if ratio_bf else "—",
            _mark(ips >= MIN_PIXEL_IMAGES_PER_S if pixel else None, f"{ips:.1f}") if ips else "—",
            f"{plain['peak_mb']:.0f}" if plain else "—",
            f"{eng['peak_mb']:.0f}" if eng else "—",
            f"{diff:.1e}",
            *gpu_cells,
        )
    console = Console(stderr=True, width=max(170, Console(stderr=True).width))
    console.print(table)
    console.print(
        f"targets: overhead ≤ {MAX_OVERHEAD:.0%} (engine NCHW vs plain), engine ≤ {MAX_CPU_RATIO}× plain on "
        f"CPU (deep models), pixel models ≥ {MIN_PIXEL_IMAGES_PER_S:.0f} images/s on one thread, H100: "
        + ", ".join(f"{k} < {v:.0f} ms" for k, v in GPU_TARGET_MS.items())
        + ("" if cuda else "; no CUDA device: GPU columns n/a")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="", help="comma-separated names (default: every registered model)")
    parser.add_argument("--size", default="482x512", help="HxW of the test image (default 482x512)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per mode and round (median of all)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="CPU: times the plain and the engine child run, alternating")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads for deep models on CPU (0: torch's default; pixel models use 1)")
    parser.add_argument("--mem-gb", type=float, default=8.0, help="address-space cap per CPU child (0: none)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per model and device")
    parser.add_argument("--no-gpu", action="store_true", help="skip the GPU even when CUDA is available")
    parser.add_argument("--no-cpu", action="store_true", help="time the GPU only (CUDA required)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON to stdout")
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    parser.add_argument("--group", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        h, w = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        parser.error(f"--size must be HxW, e.g. 482x512 (got {args.size!r})")

    if args.child:
        print(json.dumps(measure(args.child, h, w, args.device, args.repeats, args.threads, args.group)))
        return 0

    import torch

    from hstool.recon import list_models, model_spec

    names = [n for n in args.models.split(",") if n] or [n for n in list_models() if not n.startswith("_")]
    cuda = torch.cuda.is_available() and not args.no_gpu
    if args.no_cpu and not cuda:
        parser.error("--no-cpu needs a CUDA device (and no --no-gpu)")
    results = []
    for name in names:
        print(f"{name} …", file=sys.stderr, flush=True)
        child = [str(Path(__file__).resolve()), "--child", name, "--size", f"{h}x{w}",
                 "--repeats", str(args.repeats), "--threads", str(args.threads)]
        r = {"model": name, "kind": model_spec(name).kind, "gpu": None,
             "cpu": None if args.no_cpu else measure_cpu(child, args.rounds, args.mem_gb, args.timeout)}
        if cuda:
            r["gpu"] = _summarise(run_capped([*child, "--device", "cuda"], 0, args.timeout))
        results.append(r)
    if args.json:
        print(json.dumps({"size": [h, w], "repeats": args.repeats, "cuda": cuda, "results": results}, indent=2))
        return 0
    print_table(results, (h, w), cuda)
    return 0


if __name__ == "__main__":
    sys.exit(main())
