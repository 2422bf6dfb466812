#!/usr/bin/env bash
# Step 1 (guide: 模型转换, pth → onnx): export the checkpoint to a verified fixed-batch ONNX model.
#
#   CKPT=model_lincls_best.pth.tar BS=1 scripts/1_pth2onnx.sh
#
# Writes $ONNX_MODEL (default $WORK_DIR/moco-v2-bs$BS.onnx) only after ONNX Runtime has matched
# PyTorch on it. With DYNAMIC_BATCH="1,4,8,16,32,64" it exports one dynamic-batch model instead
# (pthtar2onnx.py --dynamic; default $WORK_DIR/moco-v2-dynamic.onnx) for step 2 to convert with
# those batch sizes. Settings: BS, CKPT, WORK_DIR, ONNX_MODEL, DYNAMIC_BATCH (see scripts/env.sh).

set -euo pipefail
# shellcheck source=scripts/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
handle_help "$0" "$@"
begin_step "1_pth2onnx"

[ -f "$CKPT" ] || { echo "$STEP_NAME: checkpoint $CKPT not found (set CKPT=...)" >&2; exit 1; }
check_dynamic_batch
check_outputs ONNX_MODEL
# Expanded as ${a[@]+...}: an empty array is an unset variable to bash < 4.4 under set -u.
extra=()
if [ -n "$DYNAMIC_BATCH" ]; then extra+=(--dynamic); fi
"$PYTHON" "$ROOT/pthtar2onnx.py" --bs "$BS" --weight "$CKPT" --output "$ONNX_MODEL" ${extra[@]+"${extra[@]}"}
