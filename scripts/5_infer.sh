#!/usr/bin/env bash
# Step 5 (guide: 离线推理): run every image of the info file through the model.
#
#   scripts/5_infer.sh                      # the .om on an NPU when CANN is here, else the .onnx
#   MODEL=model_lincls_best.pth.tar RESULT_DIR=work/result_torch scripts/5_infer.sh   # PyTorch reference
#   STREAM=1 scripts/5_infer.sh             # the images of VAL_DIR straight in: no steps 3-4, no .bin files
#
#   DEVICE_ID=0,1,2,3 scripts/5_infer.sh    # one worker process per device, contiguous shares of the inputs
#   DYNAMIC_BATCH=1,4,8,16,32,64 BS=16 scripts/5_infer.sh   # the one dynamic-batch model, at batch BS
#   BACKEND=aisbench RESULT_DIR=work/result_aisbench scripts/5_infer.sh   # the .om through ais_bench
#
# Writes $RESULT_DIR/dumpOutput_device$FIRST_DEVICE/<image>_1.$OUTFMT (the first id of DEVICE_ID: with
# several devices, every result goes there), a perf file per device and summary.json. With DYNAMIC_BATCH set,
# the model is the dynamic-batch one of steps 1-2: the .onnx runs at any BS, the .om at a listed one.
# The info file may list float32 or uint8 files (imagenet_torch_preprocess.py --dtype uint8): a
# float32 model gets uint8 files normalised on the host, an AIPP .om takes them as they are.
# BACKEND: auto (the default), acl or aisbench (the .om, through pyACL or ais_bench's InferSession:
# docs/cross-check.md), onnxruntime or torch.
# A rerun runs again and replaces the results (docs/reruns.md); RESUME=1 reuses the proven ones.
# Settings: MODEL, BACKEND, BS, DEVICE_ID, DYNAMIC_BATCH, OUTFMT, INFO_FILE, RESULT_DIR, RESUME; with
# STREAM=1, VAL_DIR, INTERPOLATION and WORKERS instead of INFO_FILE (see scripts/env.sh).

set -euo pipefail
# shellcheck source=scripts/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
handle_help "$0" "$@"
begin_step "5_infer"
check_dynamic_batch

if [ -n "${MODEL:-}" ]; then
    reason="MODEL is set"
elif [ "$BACKEND" = "acl" ] || [ "$BACKEND" = "aisbench" ]; then
    # An NPU runtime asked for by name runs the .om, never the .onnx in its place.
    MODEL="$OM_BASE.om"
    reason="BACKEND=$BACKEND runs the .om"
elif [ -f "$OM_BASE.om" ] && have_cann; then
    MODEL="$OM_BASE.om"
    reason="CANN is present"
elif [ -f "$OM_BASE.om" ]; then
    MODEL="$ONNX_MODEL"
    reason="$OM_BASE.om exists but CANN (atc, acl) is not available here"
else
    MODEL="$ONNX_MODEL"
    reason="no .om model (step 2 not run)"
fi
[ -f "$MODEL" ] || { echo "$STEP_NAME: model $MODEL not found" >&2; exit 1; }
echo "$STEP_NAME: using $MODEL ($reason)"
if [ "$STREAM" = "1" ]; then
    # Streamed: the images themselves, with the preprocessing settings of step 3.
    input=(--input "$VAL_DIR" --interpolation "$INTERPOLATION")
    if [ -n "$WORKERS" ]; then input+=(--workers "$WORKERS"); fi
    echo "$STEP_NAME: streaming the images of $VAL_DIR (no .bin files)"
else
    input=(--input "$INFO_FILE")
fi
resume=()
if [ "$RESUME" = "1" ]; then resume=(--resume); fi
"$PYTHON" "$ROOT/run_om_infer.py" --model "$MODEL" "${input[@]}" --output "$RESULT_DIR" \
    --batch-size "$BS" --device-id "$DEVICE_ID" --outfmt "$OUTFMT" --backend "$BACKEND" \
    ${resume[@]+"${resume[@]}"}
