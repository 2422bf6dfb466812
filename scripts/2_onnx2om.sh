#!/usr/bin/env bash
# Step 2 (guide: 模型转换, onnx → om): convert the ONNX model with CANN's atc for this chip.
#
#   CHIP_NAME=310P3 BS=1 scripts/2_onnx2om.sh
#
# Runs the guide's command: atc --model=$ONNX_MODEL --framework=5 --output=$OM_BASE
# --input_format=NCHW --input_shape="actual_input_1:$BS,3,224,224" --log=$ATC_LOG
# --soc_version=Ascend$CHIP_NAME. CHIP_NAME defaults to the Name column of `npu-smi info`.
# Needs CANN (atc); without it the ONNX model still runs through step 5 on CPU/GPU.
#
#   AIPP=1 scripts/2_onnx2om.sh             # uint8 input, normalised on the device
#   DYNAMIC_BATCH=1,4,8,16,32,64 scripts/2_onnx2om.sh
#
# AIPP=1 writes $AIPP_CONFIG (python -m mocoinfer.aipp) and adds --insert_op_conf=$AIPP_CONFIG
# --enable_small_channel=1: the OM ($OM_BASE, default moco-v2-atc-bs$BS-aipp) then reads uint8 RGB
# NHWC 224x224x3 images (imagenet_torch_preprocess.py --dtype uint8). DYNAMIC_BATCH converts the
# dynamic ONNX model of step 1 with --input_shape=actual_input_1:-1,3,224,224 and
# --dynamic_batch_size=$DYNAMIC_BATCH (2 to 100 different sizes).
# Settings: BS, CHIP_NAME, ATC_LOG, ONNX_MODEL, OM_BASE, AIPP, AIPP_CONFIG, DYNAMIC_BATCH,
# CANN_SET_ENV (see scripts/env.sh).

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

check_dynamic_batch
outputs=(OM)
if [ "$AIPP" = "1" ]; then outputs+=(AIPP_CONFIG); fi
check_outputs "${outputs[@]}"

# With AIPP, --input_format and --input_shape still describe the ONNX model's own input (an ONNX
# model's format can only be NCHW, per the ATC AIPP docs); atc forces the input that feeds AIPP to
# NHWC, and its element type to uint8, whatever --input_format says. So the flags below are the
# same with and without AIPP, and the OM's input is [batch,224,224,3] uint8 with it.
# Static AIPP with --dynamic_batch_size: the ATC docs forbid AIPP with --dynamic_dims, and static
# AIPP with a shape range in --input_shape on a one-input model (--insert_op_conf, its
# restrictions), not with a dynamic batch; Ascend's detect_and_classify sample converts with both
# (samples: cplusplus/level3_application/1_cv/detect_and_classify, README: atc ...
# --insert_op_conf=./aipp.cfg --dynamic_batch_size="1,2,4,8"; its aipp.cfg is downloaded, so its
# aipp_mode is not shown there). Not run here: no CANN.
if [ -n "$DYNAMIC_BATCH" ]; then
    shape_args=(--input_shape="actual_input_1:-1,3,224,224" --dynamic_batch_size="$DYNAMIC_BATCH")
else
    shape_args=(--input_shape="actual_input_1:$BS,3,224,224")
fi
# Expanded as ${a[@]+...}: an empty array is an unset variable to bash < 4.4 under set -u.
aipp_args=()
if [ "$AIPP" = "1" ]; then
    "$PYTHON" -m mocoinfer.aipp "$AIPP_CONFIG"
    # --enable_small_channel=1: the ATC docs recommend it for an input of <= 4 channels with static
    # AIPP (faster convolutions on it; performance only, not allowed with dynamic AIPP), and
    # ModelZoo's guides with an AIPP config pass it (e.g. SqueezeNet1_1, FaceBoxes, Pelee).
    aipp_args=(--insert_op_conf="$AIPP_CONFIG" --enable_small_channel=1)
elif [ "$AIPP" != "0" ]; then
    echo "$STEP_NAME: AIPP='$AIPP' must be 0 or 1" >&2
    exit 2
fi

# atc writes the OM under a hidden temporary name (it appends .om), renamed into place once it
# succeeded: a failed or interrupted atc never leaves a half-written $OM_BASE.om, and the rename
# goes through the output policy again.
tmp_base="$(temp_path "$OM_BASE")"
trap 'rm -f -- "$tmp_base.om"' EXIT
atc --model="$ONNX_MODEL" --framework=5 --output="$tmp_base" --input_format=NCHW \
    "${shape_args[@]}" --log="$ATC_LOG" --soc_version="Ascend$CHIP_NAME" ${aipp_args[@]+"${aipp_args[@]}"}
[ -f "$tmp_base.om" ] || { echo "$STEP_NAME: atc reported success but wrote no $tmp_base.om" >&2; exit 1; }
install_output OM="$OM_BASE.om" "$tmp_base.om" ONNX_MODEL="$ONNX_MODEL" AIPP_CONFIG="$AIPP_CONFIG" CKPT="$CKPT"
if [ "$AIPP" = "1" ]; then
    echo "$STEP_NAME: wrote $OM_BASE.om (AIPP: feed it uint8 files from imagenet_torch_preprocess.py --dtype uint8)"
else
    echo "$STEP_NAME: wrote $OM_BASE.om"
fi
