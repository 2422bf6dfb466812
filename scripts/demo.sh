#!/usr/bin/env bash
# The embedded default (`make demo`): every step of the guide on this machine, no download, no NPU.
#
#   scripts/demo.sh            # the guide's steps 1-7, small (`make demo`)
#   scripts/demo.sh --full     # also the slow extras (`make demo-full`, or DEMO_FULL=1)
#
# Makes a STAND-IN checkpoint in main_lincls.py's format (random backbone, classifier fitted to the
# sample images), sample images of varied sizes and modes, and a val_label.txt whose labels come
# from an independent path (torchvision's transform and PyTorch). Then runs steps 1-7 with the
# ONNX model on ONNX Runtime and the checkpoint on PyTorch, so result.json must say Top-1 100%, and
# streams the images straight into the model (STREAM=1), whose results must equal the .bin path's.
# Step 7 measures ONNX Runtime's throughput at the batch size BS, printed with the spread of the
# timed batches and the machine's load average.
# --full adds: the uint8 path (the same images preprocessed as uint8 pixels, a quarter of the
# bytes, through the same float32 model, whose results must equal those on the float32 files byte
# for byte), and step 7's variant sweep (batch sizes 1 4 8; ONNX Runtime float and int8, PyTorch;
# each variant's accuracy against float32). Each part's time is printed at the end.
# Files go under $WORK_DIR (default work/demo, git-ignored). Settings: DEMO_IMAGES (16), BS (4),
# BATCH_SIZES (BS; --full: "1 4 8"), PERF_BACKENDS (onnxruntime; --full: "onnxruntime torch"),
# PERF_VARIANTS (--full: "onnxruntime onnxruntime-int8 torch"), PERF_LOOP (5), INTERPOLATION, DEMO_FULL.

set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FULL="${DEMO_FULL:-0}"
if [ "${1:-}" = "--full" ]; then FULL=1; shift; fi
export WORK_DIR="${WORK_DIR:-$ROOT/work/demo}"
export VAL_DIR="$WORK_DIR/val" LABELS="$WORK_DIR/val_label.txt" CKPT="$WORK_DIR/model_lincls_best.pth.tar"
export BS="${BS:-4}"
if [ "$FULL" = "1" ]; then
    export BATCH_SIZES="${BATCH_SIZES:-1 4 8}" PERF_BACKENDS="${PERF_BACKENDS:-onnxruntime torch}"
    export PERF_VARIANTS="${PERF_VARIANTS:-onnxruntime onnxruntime-int8 torch}"
else
    # The model step 1 made, so step 7 exports nothing more; PyTorch's throughput (a model load and
    # slow CPU batches) and each variant's accuracy (step 6 compared already) are --full's.
    export BATCH_SIZES="${BATCH_SIZES:-$BS}" PERF_BACKENDS="${PERF_BACKENDS:-onnxruntime}"
    export PERF_ACCURACY_IMAGES="${PERF_ACCURACY_IMAGES:-0}"
fi
DEMO_IMAGES="${DEMO_IMAGES:-16}"
# The demo deletes and rewrites its outputs on every run: they all live in its WORK_DIR, at
# env.sh's default names, whatever the environment says (PREP_DIR=/data/... must not be cleared).
unset PREP_DIR INFO_FILE RESULT_DIR PERF_DIR ONNX_MODEL OM_BASE AIPP_CONFIG
export PERF_LOOP="${PERF_LOOP:-5}" PERF_WARMUP="${PERF_WARMUP:-1}"
# shellcheck source=scripts/env.sh
source "$ROOT/scripts/env.sh"
handle_help "$0" "$@"
begin_step "demo"
start=$SECONDS
# Seconds spent in the core steps and in the --full extras, printed at the end.
core=0 extras=0 part="" part_start=$SECONDS
block() {  # block core|extras "title": a new part of the demo begins
    if [ "$part" = "core" ]; then core=$((core + SECONDS - part_start)); fi
    if [ "$part" = "extras" ]; then extras=$((extras + SECONDS - part_start)); fi
    part="$1" part_start=$SECONDS
    [ -z "${2:-}" ] || echo "== $2"
}

# The demo owns its WORK_DIR: a rerun starts from clean inputs and results. It refuses to clear a
# non-empty folder that it did not create.
marker="$WORK_DIR/.mocoinfer-demo"
if [ -n "$(ls -A "$WORK_DIR")" ] && [ ! -f "$marker" ]; then
    echo "$STEP_NAME: $WORK_DIR is not empty and is not a demo folder; choose another WORK_DIR" >&2
    exit 1
fi
touch "$marker"
PREP_U8="$WORK_DIR/prep_dataset_uint8" RESULT_U8="$WORK_DIR/result_uint8"
rm -rf "$VAL_DIR" "$PREP_DIR" "$RESULT_DIR" "$WORK_DIR/result_torch" "$PERF_DIR" "$PREP_U8" "$RESULT_U8" \
    "$WORK_DIR/result_stream" "$WORK_DIR/uint8_check.txt"
S="$ROOT/scripts"

block core "demo inputs"
"$PYTHON" -m mocoinfer.demo --make-inputs "$WORK_DIR" --images "$DEMO_IMAGES" --interpolation "$INTERPOLATION"
block core "step 1: checkpoint → ONNX"
"$S/1_pth2onnx.sh"
block core "step 2: ONNX → OM"
if command -v atc > /dev/null 2>&1; then "$S/2_onnx2om.sh"; else echo "skipped: no CANN (atc) on this machine"; fi
block core "step 3: preprocess"
"$S/3_preprocess.sh"
block core "step 4: info file"
"$S/4_get_info.sh"
block core "step 5: inference (the converted model), then the PyTorch reference"
"$S/5_infer.sh"
MODEL="$CKPT" BACKEND=torch RESULT_DIR="$WORK_DIR/result_torch" "$S/5_infer.sh"
block core "step 5 streamed (STREAM=1): the images straight into the model, no .bin files"
STREAM=1 RESULT_DIR="$WORK_DIR/result_stream" "$S/5_infer.sh"
dump="dumpOutput_device$FIRST_DEVICE"
# diff exits non-zero (and so fails the demo) on any file that differs or exists on one side only.
# The result folders hold results only (their manifests live beside them), so the whole folders compare.
diff -r "$RESULT_DIR/$dump" "$WORK_DIR/result_stream/$dump"
echo "streamed results are byte-identical to the .bin path's:" \
    "$(find "$RESULT_DIR/$dump" -type f ! -name '.*' | wc -l | tr -d ' ') files"
block core "step 6: accuracy, and the precision comparison against PyTorch"
REFERENCE_DIR="$WORK_DIR/result_torch/dumpOutput_device$FIRST_DEVICE" "$S/6_eval.sh"
if [ "$FULL" = "1" ]; then
    block extras "the uint8 path (--full): the same images as uint8 pixels (--dtype uint8), through the same float32 model"
    "$PYTHON" "$ROOT/imagenet_torch_preprocess.py" "$VAL_DIR" "$PREP_U8" --interpolation "$INTERPOLATION" \
        --dtype uint8 --no-progress
    "$PYTHON" "$ROOT/run_om_infer.py" --model "$ONNX_MODEL" --input "$PREP_U8" --output "$RESULT_U8" \
        --batch-size "$BS" --device-id "$FIRST_DEVICE" --outfmt "$OUTFMT" --no-progress
    # Fails the demo unless every result file is the same, byte for byte.
    uint8_check="$WORK_DIR/uint8_check.txt"
    tmp="$(temp_path "$uint8_check")"
    "$PYTHON" -m mocoinfer.demo --compare-uint8 "$PREP_DIR" "$PREP_U8" "$RESULT_DIR/$dump" "$RESULT_U8/$dump" \
        > "$tmp" || { status=$?; rm -f -- "$tmp"; exit "$status"; }
    install_output "uint8_check.txt=$uint8_check" "$tmp"
    cat "$uint8_check"
    block extras "step 7 (--full): throughput by variant ($PERF_VARIANTS) and batch size ($BATCH_SIZES)"
else
    block core "step 7: throughput at batch $BATCH_SIZES ($PERF_BACKENDS; the variant sweep, int8 and uint8: --full)"
fi
"$S/7_perf.sh"
block end

echo
echo "demo finished in $((SECONDS - start))s (the guide's steps ${core}s$([ "$FULL" = "1" ] && echo ", the --full extras ${extras}s")):" \
    "$WORK_DIR/result.json, result_compare.json, perf/throughput.md."
echo "The checkpoint is a STAND-IN with random weights and a classifier fitted to" \
    "$(find "$VAL_DIR" -type f | wc -l | tr -d ' ') sample images: 100% Top-1 shows every stage agrees with the"
echo "reference path, not that any model is accurate. For the real model: CKPT=... VAL_DIR=... LABELS=... scripts/run_all.sh"
