#!/usr/bin/env bash
# Step 7 (guide: 性能对比): throughput by batch size, one column per backend measured on this host.
#
#   BATCH_SIZES="1 4 8 16 32 64" PERF_BACKENDS="onnxruntime torch" scripts/7_perf.sh
#
# For each batch size: export moco-v2-bs<N>.onnx (kept when newer than the checkpoint), convert it
# with atc and measure the .om when CANN is present, then run pure inference (generated data,
# PERF_WARMUP untimed and PERF_LOOP timed batches) on every backend. Writes $PERF_DIR/throughput.md
# (the table) and throughput.png (images/s against batch size).
# Settings: BATCH_SIZES, PERF_BACKENDS, PERF_LOOP, PERF_WARMUP, CKPT, PERF_DIR (see scripts/env.sh).

set -euo pipefail
# shellcheck source=scripts/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
handle_help "$0" "$@"
begin_step "7_perf"

[ -f "$CKPT" ] || { echo "$STEP_NAME: checkpoint $CKPT not found (set CKPT=...)" >&2; exit 1; }
read -r -a sizes <<< "$BATCH_SIZES"
read -r -a backends <<< "$PERF_BACKENDS"
if have_cann && [[ " ${backends[*]} " != *" acl "* ]]; then backends=(acl "${backends[@]}"); fi

for bs in "${sizes[@]}"; do
    onnx="$WORK_DIR/moco-v2-bs$bs.onnx"
    if [ ! -f "$onnx" ] || [ "$CKPT" -nt "$onnx" ]; then
        "$PYTHON" "$ROOT/pthtar2onnx.py" --bs "$bs" --weight "$CKPT" --output "$onnx"
    fi
    for backend in "${backends[@]}"; do
        case "$backend" in
            onnxruntime) model="$onnx" ;;
            torch) model="$CKPT" ;;
            acl)
                model="$WORK_DIR/moco-v2-atc-bs$bs.om"
                if [ ! -f "$model" ] || [ "$onnx" -nt "$model" ]; then
                    BS="$bs" ONNX_MODEL="$onnx" OM_BASE="${model%.om}" "$ROOT/scripts/2_onnx2om.sh"
                fi ;;
            *) echo "$STEP_NAME: unknown backend '$backend' in PERF_BACKENDS" >&2; exit 1 ;;
        esac
        echo "$STEP_NAME: $backend, batch $bs"
        "$PYTHON" "$ROOT/run_om_infer.py" --model "$model" --backend "$backend" --batch-size "$bs" \
            --device-id "$DEVICE_ID" --pure-data random --warmup "$PERF_WARMUP" --loop "$PERF_LOOP" \
            --output "$PERF_DIR/$backend/bs$bs" > /dev/null
    done
done
"$PYTHON" -m mocoinfer.sweep "$PERF_DIR"
