#!/usr/bin/env bash
# Steps 1-6 in one command, from the checkpoint to the guide's accuracy and throughput tables.
#
#   CKPT=model_lincls_best.pth.tar VAL_DIR=/data/imagenet/val LABELS=val_label.txt scripts/run_all.sh
#
# Runs the numbered steps in order: 1 export, 2 atc (when CANN is present), 3 preprocess, 4 info
# file, 5 inference (the .om on the NPU when CANN is present, else the .onnx on ONNX Runtime),
# 6 accuracy. REFERENCE=1 adds the checkpoint on PyTorch and the precision comparison; PERF=1
# adds step 7's batch-size sweep. Ends with the accuracy table (Top-1/Top-5 beside the guide's
# published figures for INTERPOLATION) and the throughput table, also kept in $WORK_DIR/tables.md.
# The settings (BS, INTERPOLATION, CKPT path, size and sha256, VAL_DIR, LABELS, model kind) are
# recorded in $WORK_DIR/run_settings.json; a run with other settings in a WORK_DIR holding outputs
# is refused (use another WORK_DIR, or OVERWRITE=1 to delete those outputs). A rerun with the same
# settings resumes: step 5 runs with RESUME=1 (run_om_infer.py --resume), reusing proven results. Settings: CKPT, VAL_DIR, LABELS, BS, CHIP_NAME, INTERPOLATION, DEVICE_ID,
# WORK_DIR, REFERENCE, PERF, OVERWRITE (see scripts/env.sh).

set -euo pipefail
# shellcheck source=scripts/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
handle_help "$0" "$@"
begin_step "run_all"

REFERENCE="${REFERENCE:-0}"
PERF="${PERF:-0}"
OVERWRITE="${OVERWRITE:-0}"
S="$ROOT/scripts"
# The steps read these from the environment; export them so that each sees this run's values.
export BS DEVICE_ID CHIP_NAME WORK_DIR CKPT VAL_DIR LABELS INTERPOLATION PYTHON ONNX_MODEL OM_BASE PREP_DIR \
       INFO_FILE RESULT_DIR PERF_DIR
torch_dir="$WORK_DIR/result_torch"

[ -f "$CKPT" ] || { echo "$STEP_NAME: checkpoint $CKPT not found (set CKPT=...)" >&2; exit 1; }
[ -d "$VAL_DIR" ] || { echo "$STEP_NAME: image folder $VAL_DIR not found (set VAL_DIR=...)" >&2; exit 1; }
[ -f "$LABELS" ] || { echo "$STEP_NAME: label file $LABELS not found (set LABELS=...)" >&2; exit 1; }
if have_cann; then model_kind=om; else model_kind=onnx; fi
# Every file setting this run writes, before anything (OVERWRITE included) touches the folder.
written=(ONNX_MODEL INFO_FILE RESULT_JSON COMPARE_JSON TABLES)
if [ "$model_kind" = om ]; then written+=(OM); fi
if [ "$AIPP" = 1 ]; then written+=(AIPP_CONFIG); fi
check_outputs "${written[@]}"

overwrite=()
if [ "$OVERWRITE" = 1 ]; then overwrite=(--overwrite); fi
# What this run's steps write, each by its exact name from the settings, never by pattern:
# OVERWRITE=1 deletes these (those inside WORK_DIR) and nothing else, so a user's own
# moco-v2-bs1-finetuned.onnx beside them stays.
outputs=("$ONNX_MODEL" "$OM_BASE.om" "$PREP_DIR" "$INFO_FILE" "$RESULT_DIR" "$torch_dir" "$WORK_DIR/result.json"
         "$WORK_DIR/result_compare.json" "$PERF_DIR" "$WORK_DIR/tables.md")
if [ "$AIPP" = 1 ]; then outputs+=("$AIPP_CONFIG"); fi
# Step 7's models, one per batch size of BATCH_SIZES (the dynamic model is ONNX_MODEL / OM_BASE).
read -r -a perf_sizes <<< "$BATCH_SIZES"
outputs+=("${ONNX_MODEL%.onnx}-int8.onnx")
for b in "${perf_sizes[@]}"; do
    outputs+=("$WORK_DIR/moco-v2-bs$b.onnx" "$WORK_DIR/moco-v2-bs$b-int8.onnx" "$WORK_DIR/moco-v2-atc-bs$b.om")
done
output_args=()
for o in "${outputs[@]}"; do output_args+=(--output "$o"); done
"$PYTHON" -m mocoinfer.report settings "$WORK_DIR" --bs "$BS" --interpolation "$INTERPOLATION" --ckpt "$CKPT" \
    --val-dir "$VAL_DIR" --labels "$LABELS" --model-kind "$model_kind" ${overwrite[@]+"${overwrite[@]}"} \
    "${output_args[@]}" || exit 1   # its one line says why

echo "== step 1: checkpoint → ONNX"
# run_settings.json holds the checkpoint's sha256, so a newer .onnx was made from this checkpoint.
if [ -f "$ONNX_MODEL" ] && [ "$ONNX_MODEL" -nt "$CKPT" ]; then
    echo "$ONNX_MODEL is newer than $CKPT: kept"
else
    "$S/1_pth2onnx.sh"
fi
echo "== step 2: ONNX → OM"
if [ "$model_kind" = om ]; then
    if [ -f "$OM_BASE.om" ] && [ "$OM_BASE.om" -nt "$ONNX_MODEL" ]; then
        echo "$OM_BASE.om is newer than $ONNX_MODEL: kept"
    else
        "$S/2_onnx2om.sh"
    fi
else
    echo "skipped: no CANN (atc and the acl module) here; step 5 runs the ONNX model"
fi
echo "== step 3: preprocess ($INTERPOLATION)"
"$S/3_preprocess.sh"
echo "== step 4: info file"
"$S/4_get_info.sh"
echo "== step 5: inference"
# 5_infer.sh takes the .om when it exists and CANN is here (as step 2 made sure), else the .onnx.
# RESUME=1: a rerun of the whole pipeline reuses the results step 5 proved (a stopped run's too).
RESUME=1 "$S/5_infer.sh"
result_dirs=(--result-dir "$RESULT_DIR")
eval_env=()
if [ "$REFERENCE" = 1 ]; then
    echo "== step 5 (REFERENCE=1): the checkpoint on PyTorch"
    MODEL="$CKPT" BACKEND=torch RESULT_DIR="$torch_dir" RESUME=1 "$S/5_infer.sh"
    result_dirs+=(--result-dir "$torch_dir" --compare)
    # A several-device run writes every result to the first device's folder (as step 6 reads it).
    eval_env=(REFERENCE_DIR="$torch_dir/dumpOutput_device$FIRST_DEVICE")
fi
echo "== step 6: accuracy"
# Exit 3 is the comparison's verdict (top-1 drop above TOLERANCE): print the tables, then report it.
eval_status=0
env "${eval_env[@]}" "$S/6_eval.sh" || eval_status=$?
if [ "$eval_status" != 0 ] && [ "$eval_status" != 3 ]; then exit "$eval_status"; fi
perf_args=()
if [ "$PERF" = 1 ]; then
    echo "== step 7: throughput by batch size ($BATCH_SIZES)"
    "$S/7_perf.sh"
    perf_args=(--perf-dir "$PERF_DIR")
fi

echo
"$PYTHON" -m mocoinfer.report tables "$WORK_DIR" "${result_dirs[@]}" "${perf_args[@]}" \
    --markdown "$WORK_DIR/tables.md"
if [ "$eval_status" = 3 ]; then
    echo "$STEP_NAME: the top-1 drop against the PyTorch reference exceeds the tolerance (see above)" >&2
    exit 3
fi
echo "$STEP_NAME: done; the tables are in $WORK_DIR/tables.md"
