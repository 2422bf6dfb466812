#!/usr/bin/env bash
# Step 7 (guide: 性能对比): throughput by batch size, one column per variant measured on this host,
# and each variant's accuracy cost against the float32 reference.
#
#   BATCH_SIZES="1 4 8 16 32 64" PERF_VARIANTS="onnxruntime onnxruntime-int8 torch torch-bf16" scripts/7_perf.sh
#   DYNAMIC_BATCH=1,4,8,16,32,64 scripts/7_perf.sh   # one dynamic-batch model, every listed size
#
# Variants: onnxruntime, onnxruntime-int8 (pthtar2onnx.py --quantize int8, calibrated on CALIB_DIR),
# onnxruntime-fp16 (TensorRT), torch, torch-bf16 (CPUs with bfloat16 units, or CUDA), torch-fp16
# (CUDA), acl (added first when CANN is present), aisbench (the same .om through ais_bench's
# InferSession, when asked for). PERF_VARIANTS defaults to PERF_BACKENDS.
# For each batch size: export moco-v2-bs<N>.onnx (kept when newer than the checkpoint), convert or
# quantize it where a variant needs it, then run pure inference (generated data, PERF_WARMUP
# untimed and PERF_LOOP timed batches) on every variant. With DYNAMIC_BATCH set, the batch sizes
# are its list and steps 1-2 make the one dynamic-batch model once (kept when newer than its input;
# AIPP=1 measures the AIPP .om), which every batch size then runs: no re-export, no reconversion.
# When ACCURACY_INPUT (default PREP_DIR) holds .bin files, its first PERF_ACCURACY_IMAGES go
# through every variant at the first batch size, and the comparison with the float32 reference
# (onnxruntime, else torch) goes into the table (PERF_ACCURACY_IMAGES=0: none). Runs on the first
# device of DEVICE_ID.
# Writes $PERF_DIR/throughput.md (the tables) and throughput.png (images/s against batch size).
# Settings: BATCH_SIZES, DYNAMIC_BATCH, PERF_VARIANTS (or PERF_BACKENDS), PERF_LOOP, PERF_WARMUP,
# CKPT, PERF_DIR, CALIB_DIR, CALIB_COUNT (100), ACCURACY_INPUT, PERF_ACCURACY_IMAGES (100) (see scripts/env.sh).

set -euo pipefail
# shellcheck source=scripts/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
handle_help "$0" "$@"
begin_step "7_perf"

PERF_VARIANTS="${PERF_VARIANTS:-$PERF_BACKENDS}"
CALIB_DIR="${CALIB_DIR:-$PREP_DIR}"
CALIB_COUNT="${CALIB_COUNT:-100}"
ACCURACY_INPUT="${ACCURACY_INPUT:-$PREP_DIR}"
PERF_ACCURACY_IMAGES="${PERF_ACCURACY_IMAGES:-100}"

[ -f "$CKPT" ] || { echo "$STEP_NAME: checkpoint $CKPT not found (set CKPT=...)" >&2; exit 1; }
check_dynamic_batch
read -r -a variants <<< "$PERF_VARIANTS"
if have_cann && [[ " ${variants[*]} " != *" acl "* ]]; then variants=(acl "${variants[@]}"); fi
export_args=()
if [ -n "$DYNAMIC_BATCH" ]; then
    IFS=',' read -r -a sizes <<< "$DYNAMIC_BATCH"
    export_args=(--dynamic)
    # The one dynamic-batch model of steps 1-2 ($ONNX_MODEL, $OM_BASE.om), made here when missing or stale.
    if [ ! -f "$ONNX_MODEL" ] || [ "$CKPT" -nt "$ONNX_MODEL" ]; then "$ROOT/scripts/1_pth2onnx.sh"; fi
    if [[ " ${variants[*]} " == *" acl "* || " ${variants[*]} " == *" aisbench "* ]] &&
        { [ ! -f "$OM_BASE.om" ] || [ "$ONNX_MODEL" -nt "$OM_BASE.om" ]; }; then
        "$ROOT/scripts/2_onnx2om.sh"
    fi
else
    read -r -a sizes <<< "$BATCH_SIZES"
fi

# The float ONNX model batch size $1 runs on: the dynamic one, or moco-v2-bs<N>.onnx made when stale.
onnx_for() {
    if [ -n "$DYNAMIC_BATCH" ]; then
        onnx="$ONNX_MODEL"
    else
        onnx="$WORK_DIR/moco-v2-bs$1.onnx"
        if [ ! -f "$onnx" ] || [ "$CKPT" -nt "$onnx" ]; then
            "$PYTHON" "$ROOT/pthtar2onnx.py" --bs "$1" --weight "$CKPT" --output "$onnx"
        fi
    fi
}

# Sets backend, model and precision for variant $1 at batch size $2 (float model $onnx), making
# the model the variant needs when it is missing or stale.
prepare_variant() {
    local variant="$1" bs="$2"
    precision=fp32
    case "$variant" in
        onnxruntime) backend=onnxruntime; model="$onnx" ;;
        onnxruntime-fp16) backend=onnxruntime; model="$onnx"; precision=fp16 ;;
        onnxruntime-int8)
            backend=onnxruntime; model="${onnx%.onnx}-int8.onnx"
            if [ ! -f "$model" ] || [ "$onnx" -nt "$model" ]; then
                # --output names the int8 model; the float one it is made from is not kept ($onnx stays).
                "$PYTHON" "$ROOT/pthtar2onnx.py" --bs "$bs" --weight "$CKPT" --output "$model" "${export_args[@]}" \
                    --quantize int8 --calibration "$CALIB_DIR" --calibration-count "$CALIB_COUNT"
            fi ;;
        torch) backend=torch; model="$CKPT" ;;
        torch-bf16) backend=torch; model="$CKPT"; precision=bf16 ;;
        torch-fp16) backend=torch; model="$CKPT"; precision=fp16 ;;
        acl|aisbench)
            # The same .om through pyACL or ais_bench's InferSession (docs/cross-check.md).
            backend="$variant"
            if [ -n "$DYNAMIC_BATCH" ]; then
                model="$OM_BASE.om"
            else
                model="$WORK_DIR/moco-v2-atc-bs$bs.om"
                if [ ! -f "$model" ] || [ "$onnx" -nt "$model" ]; then
                    BS="$bs" ONNX_MODEL="$onnx" OM_BASE="${model%.om}" "$ROOT/scripts/2_onnx2om.sh"
                fi
            fi ;;
        *) echo "$STEP_NAME: unknown variant '$variant' in PERF_VARIANTS (onnxruntime, onnxruntime-int8," \
                "onnxruntime-fp16, torch, torch-bf16, torch-fp16, acl, aisbench)" >&2; exit 1 ;;
    esac
}

for bs in "${sizes[@]}"; do
    onnx_for "$bs"
    for variant in "${variants[@]}"; do
        prepare_variant "$variant" "$bs"
        echo "$STEP_NAME: $variant, batch $bs"
        "$PYTHON" "$ROOT/run_om_infer.py" --model "$model" --backend "$backend" --batch-size "$bs" \
            --device-id "$FIRST_DEVICE" --pure-data random --warmup "$PERF_WARMUP" --loop "$PERF_LOOP" \
            --precision "$precision" --output "$PERF_DIR/$variant/bs$bs" > /dev/null
    done
done

# Accuracy cost: the same real inputs through every variant, compared by sweep.py.
mapfile -t bins < <(find "$ACCURACY_INPUT" -maxdepth 1 -name '*.bin' 2> /dev/null | sort -V | head -n "$PERF_ACCURACY_IMAGES")
if [ "${#bins[@]}" -gt 0 ]; then
    bs="${sizes[0]}"
    onnx_for "$bs"
    info="$PERF_DIR/accuracy_inputs.info"
    mkdir -p "$PERF_DIR"
    # Written as every output is (scripts/env.sh: install_output): a temporary, then the policy
    # (not a symlink, special file or folder, not one of the files it lists), then the rename.
    tmp="$(temp_path "$info")"
    for i in "${!bins[@]}"; do printf '%d %s 224 224\n' "$i" "${bins[$i]}"; done > "$tmp"
    install_output "PERF_DIR/accuracy_inputs.info=$info" "$tmp" "ACCURACY_INPUT=$ACCURACY_INPUT" "CKPT=$CKPT" \
        "LABELS=$LABELS"
    for variant in "${variants[@]}"; do
        prepare_variant "$variant" "$bs"
        echo "$STEP_NAME: $variant, accuracy on ${#bins[@]} images from $ACCURACY_INPUT"
        rm -rf "$PERF_DIR/$variant/accuracy"
        "$PYTHON" "$ROOT/run_om_infer.py" --model "$model" --backend "$backend" --batch-size "$bs" \
            --device-id "$FIRST_DEVICE" --input "$info" --precision "$precision" --no-progress \
            --output "$PERF_DIR/$variant/accuracy" > /dev/null
    done
elif [ "$PERF_ACCURACY_IMAGES" = "0" ]; then
    echo "$STEP_NAME: throughput only (PERF_ACCURACY_IMAGES=0: no accuracy columns)"
else
    echo "$STEP_NAME: no .bin files in $ACCURACY_INPUT: throughput only (set ACCURACY_INPUT for the accuracy columns)"
fi
"$PYTHON" -m mocoinfer.sweep "$PERF_DIR"
