#!/usr/bin/env bash
# Step 5 (guide: 离线推理): run every image of the info file through the model.
#
#   scripts/5_infer.sh                      # the .om on an NPU when CANN is here, else the .onnx
#   MODEL=model_lincls_best.pth.tar RESULT_DIR=work/result_torch scripts/5_infer.sh   # PyTorch reference
#
# Writes $RESULT_DIR/dumpOutput_device$DEVICE_ID/<image>_1.$OUTFMT, the perf file and summary.json.
# Settings: MODEL, BACKEND, BS, DEVICE_ID, OUTFMT, INFO_FILE, RESULT_DIR (see scripts/env.sh).

set -euo pipefail
# shellcheck source=scripts/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
handle_help "$0" "$@"
begin_step "5_infer"

if [ -n "${MODEL:-}" ]; then
    reason="MODEL is set"
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
"$PYTHON" "$ROOT/run_om_infer.py" --model "$MODEL" --input "$INFO_FILE" --output "$RESULT_DIR" \
    --batch-size "$BS" --device-id "$DEVICE_ID" --outfmt "$OUTFMT" --backend "$BACKEND"
