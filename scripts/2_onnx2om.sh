#!/usr/bin/env bash
# Step 2 (guide: 模型转换, onnx → om): convert the ONNX model with CANN's atc for this chip.
#
#   CHIP_NAME=310P3 BS=1 scripts/2_onnx2om.sh
#
# Runs the guide's command: atc --model=$ONNX_MODEL --framework=5 --output=$OM_BASE
# --input_format=NCHW --input_shape="actual_input_1:$BS,3,224,224" --log=$ATC_LOG
# --soc_version=Ascend$CHIP_NAME. CHIP_NAME defaults to the Name column of `npu-smi info`.
# Needs CANN (atc); without it the ONNX model still runs through step 5 on CPU/GPU.
# Settings: BS, CHIP_NAME, ATC_LOG, ONNX_MODEL, OM_BASE, CANN_SET_ENV (see scripts/env.sh).

set -euo pipefail
# shellcheck source=scripts/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
handle_help "$0" "$@"
begin_step "2_onnx2om"

if ! command -v atc > /dev/null 2>&1; then
    echo "$STEP_NAME: atc not found: converting to .om needs Huawei CANN (source its set_env.sh, or set" \
         "CANN_SET_ENV). Without CANN, step 5 runs $ONNX_MODEL with ONNX Runtime instead." >&2
    exit 1
fi
if [ -z "$CHIP_NAME" ]; then
    echo "$STEP_NAME: CHIP_NAME is unknown: set it to the Name column of 'npu-smi info' (e.g. 310P3)" >&2
    exit 1
fi
[ -f "$ONNX_MODEL" ] || { echo "$STEP_NAME: $ONNX_MODEL not found: run scripts/1_pth2onnx.sh first" >&2; exit 1; }

atc --model="$ONNX_MODEL" --framework=5 --output="$OM_BASE" --input_format=NCHW \
    --input_shape="actual_input_1:$BS,3,224,224" --log="$ATC_LOG" --soc_version="Ascend$CHIP_NAME"
[ -f "$OM_BASE.om" ] || { echo "$STEP_NAME: atc reported success but $OM_BASE.om is missing" >&2; exit 1; }
echo "$STEP_NAME: wrote $OM_BASE.om"
