# Sourced by the GPU scripts (gpu.sh, train_full.sh) after they set $out: Python in $py, unbuffered
# output, the wheels of $WHEELS (an offline machine's missing packages, see gpu.sh) on PYTHONPATH,
# and hstool itself installed without its dependencies (log: $out/install.log).
mkdir -p "$out"
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
if [ -n "${WHEELS:-}" ]; then
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/hstool-wheels "$WHEELS"/*.whl || exit 1
    export PYTHONPATH=/tmp/hstool-wheels${PYTHONPATH:+:$PYTHONPATH}
fi
"$py" -m pip install -q --no-deps --no-build-isolation --no-index -e . > "$out/install.log" 2>&1 \
    || { cat "$out/install.log"; exit 1; }
