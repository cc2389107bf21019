#!/usr/bin/env bash
# Fine-tune the four full-size networks (hrnet, awan, hscnnp, mstpp) on a GPU, both tracks, from
# their bundled weights (grown function-preservingly from the trained _s files, docs/models.md),
# in one run with a time limit per file. `--keep best` validates the starting weights first, so a
# file is only replaced by one that validates better; judge the results on held-out scenes
# (benchmarks/heldout.py --weights OUTDIR/NAME_TRACK.safetensors) before bundling any of them.
#
#   bash benchmarks/train_full.sh [OUTDIR]       # default OUTDIR: full-results
#
# Set STEPS (per epoch, default 300), EPOCHS (default 4) and LIMIT (seconds per file, default 100)
# to fit the time at hand; WHEELS as in benchmarks/gpu.sh for an offline machine.
set -uo pipefail
out=${1:-full-results}
source "$(dirname "$0")/device_setup.sh"
for track in realworld clean; do
    for name in mstpp hrnet awan hscnnp; do
        extra=()
        [ "$track" = clean ] && extra+=(--css-loss 1 --loss rel-l1 --mrae-mix 0.1)
        [ "$track" = realworld ] && extra+=(--loss mrae)
        [ "$name" = hrnet ] && extra+=(--int8)
        t0=$SECONDS
        timeout "${LIMIT:-100}" "$py" -m hstool.cli train --model "$name" --data synth --track "$track" --val synth \
            --epochs "${EPOCHS:-4}" --steps-per-epoch "${STEPS:-300}" --batch 16 --crop 128 --lr 0.0001 \
            --scenes 128 --scene-size 256 --val-scenes 16 --val-size 256 --seed 21 --keep best --device cuda \
            "${extra[@]}" --init "recon/weights/${name}_${track}.safetensors" \
            --out "$out/${name}_${track}.safetensors" > "$out/${name}_${track}.log" 2>&1
        echo "== ${name}_${track}: exit $? in $((SECONDS - t0)) s"
        tail -n 3 "$out/${name}_${track}.log"
    done
done
