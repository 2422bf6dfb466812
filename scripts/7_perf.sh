#!/usr/bin/env bash
# Step 7 (guide: 性能对比): throughput by batch size, one column per backend measured on this host.
#
#   BATCH_SIZES="1 4 8 16 32 64" PERF_BACKENDS="onnxruntime torch" scripts/7_perf.sh
#
#   DYNAMIC_BATCH=1,4,8,16,32,64 scripts/7_perf.sh   # one dynamic-batch model, every listed size
#
# For each batch size: export moco-v2-bs<N>.onnx (kept when newer than the checkpoint), convert it
# with atc and measure the .om when CANN is present, then run pure inference (generated data,
# PERF_WARMUP untimed and PERF_LOOP timed batches) on every backend. With DYNAMIC_BATCH set, the
# batch sizes are its list and steps 1-2 make the one dynamic-batch model once (kept when newer
# than its input; AIPP=1 measures the AIPP .om), which every batch size then runs: no re-export,
# no reconversion. Writes $PERF_DIR/throughput.md (the table) and throughput.png (images/s
# against batch size). Runs on the first device of DEVICE_ID.
# Settings: BATCH_SIZES, DYNAMIC_BATCH, PERF_BACKENDS, PERF_LOOP, PERF_WARMUP, CKPT, PERF_DIR (see scripts/env.sh).

set -euo pipefail
# shellcheck source=scripts/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
handle_help "$0" "$@"
begin_step "7_perf"

[ -f "$CKPT" ] || { echo "$STEP_NAME: checkpoint $CKPT not found (set CKPT=...)" >&2; exit 1; }
check_dynamic_batch
read -r -a backends <<< "$PERF_BACKENDS"
if have_cann && [[ " ${backends[*]} " != *" acl "* ]]; then backends=(acl "${backends[@]}"); fi
if [ -n "$DYNAMIC_BATCH" ]; then
    IFS=',' read -r -a sizes <<< "$DYNAMIC_BATCH"
    # The one dynamic-batch model of steps 1-2 ($ONNX_MODEL, $OM_BASE.om), made here when missing or stale.
    if [ ! -f "$ONNX_MODEL" ] || [ "$CKPT" -nt "$ONNX_MODEL" ]; then "$ROOT/scripts/1_pth2onnx.sh"; fi
    if [[ " ${backends[*]} " == *" acl "* ]] && { [ ! -f "$OM_BASE.om" ] || [ "$ONNX_MODEL" -nt "$OM_BASE.om" ]; }; then
        "$ROOT/scripts/2_onnx2om.sh"
    fi
else
    read -r -a sizes <<< "$BATCH_SIZES"
fi

for bs in "${sizes[@]}"; do
    if [ -n "$DYNAMIC_BATCH" ]; then
        onnx="$ONNX_MODEL"
    else
        onnx="$WORK_DIR/moco-v2-bs$bs.onnx"
        if [ ! -f "$onnx" ] || [ "$CKPT" -nt "$onnx" ]; then
            "$PYTHON" "$ROOT/pthtar2onnx.py" --bs "$bs" --weight "$CKPT" --output "$onnx"
        fi
    fi
    for backend in "${backends[@]}"; do
        case "$backend" in
            onnxruntime) model="$onnx" ;;
            torch) model="$CKPT" ;;
            acl)
                if [ -n "$DYNAMIC_BATCH" ]; then
                    model="$OM_BASE.om"
                else
                    model="$WORK_DIR/moco-v2-atc-bs$bs.om"
                    if [ ! -f "$model" ] || [ "$onnx" -nt "$model" ]; then
                        BS="$bs" ONNX_MODEL="$onnx" OM_BASE="${model%.om}" "$ROOT/scripts/2_onnx2om.sh"
                    fi
                fi ;;
            *) echo "$STEP_NAME: unknown backend '$backend' in PERF_BACKENDS" >&2; exit 1 ;;
        esac
        echo "$STEP_NAME: $backend, batch $bs"
        "$PYTHON" "$ROOT/run_om_infer.py" --model "$model" --backend "$backend" --batch-size "$bs" \
            --device-id "$FIRST_DEVICE" --pure-data random --warmup "$PERF_WARMUP" --loop "$PERF_LOOP" \
            --output "$PERF_DIR/$backend/bs$bs" > /dev/null
    done
done
"$PYTHON" -m mocoinfer.sweep "$PERF_DIR"
