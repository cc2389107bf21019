#!/usr/bin/env bash
# Every GPU check in one run, for a machine with an NVIDIA GPU and a CUDA build of PyTorch:
# the CUDA tests, the GPU column of benchmarks/recon.py for every model, and where MST++'s and
# AWAN's time goes (benchmarks/gpu_profile.py). Each step has its own time limit, and its log
# lands in OUTDIR whether or not it passes.
#
#   bash benchmarks/gpu.sh [OUTDIR]            # default OUTDIR: gpu-results
#
# Offline machine: set WHEELS to a folder of wheels for what its Python lacks. They are installed
# into a temporary folder, and hstool itself without its dependencies. For Python 3.12 with the
# usual scientific stack already there (e.g. a PyTorch image), fetch them elsewhere with
#
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux2014_x86_64 -d WHEELS spectral colour-science earthlib loguru
set -uo pipefail
out=${1:-gpu-results}
source "$(dirname "$0")/device_setup.sh"
"$py" -c "import torch; print('torch', torch.__version__, '| CUDA', torch.version.cuda, '|',
    torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA device')" | tee "$out/device.txt"

step() {  # step NAME SECONDS COMMAND...: run with a limit, log to OUTDIR/NAME.log, report
    local name=$1 limit=$2
    shift 2
    local t0=$SECONDS
    timeout "$limit" "$@" > "$out/$name.log" 2>&1
    local rc=$?
    echo "== $name: exit $rc in $((SECONDS - t0)) s (log: $out/$name.log)"
    tail -n "${TAIL:-25}" "$out/$name.log"
}
step test_cuda 240 "$py" -m pytest -q -p no:cacheprovider tests/test_cuda.py
step recon_gpu 240 "$py" benchmarks/recon.py --no-cpu --repeats 10
TAIL=60 step gpu_profile 180 "$py" benchmarks/gpu_profile.py --models mstpp,awan_s --rows 12
