#!/usr/bin/env bash
# Every setting of the numbered steps, in one place. Override any of them from the environment:
#   BS=16 VAL_DIR=/data/imagenet/val scripts/3_preprocess.sh
# Sourced by each step; running it directly prints the settings in force.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# CANN puts atc and the Python `acl` module on the path through its set_env.sh.
CANN_SET_ENV="${CANN_SET_ENV:-/usr/local/Ascend/ascend-toolkit/set_env.sh}"
if [ -f "$CANN_SET_ENV" ]; then
    # set_env.sh reads variables that may be unset; -u would abort on them.
    set +u
    # shellcheck source=/dev/null
    source "$CANN_SET_ENV"
    set -u
fi

detect_chip_name() {
    # The Name of the first device in `npu-smi info`, read as mocoinfer/envcheck.py reads it: in
    # the table under "| NPU  Name |", a block's first row is "| <card id>  <Name> | <Health> ...";
    # the process table ("| NPU  Chip |") is not searched. A hung driver gets NPU_SMI_TIMEOUT
    # seconds, then nothing: timeout sends TERM to npu-smi's whole process group, and KILL 2 s
    # later (-k), because a wedged npu-smi (or one that ignores TERM) would otherwise hang every
    # step that sources this file.
    if command -v npu-smi > /dev/null 2>&1; then
        local smi=(npu-smi info)
        if command -v timeout > /dev/null 2>&1; then smi=(timeout -k 2 "$NPU_SMI_TIMEOUT" npu-smi info); fi
        "${smi[@]}" 2> /dev/null | awk -F'|' '
            { split($2, f, " ") }
            f[1] == "NPU" && f[2] == "Name" { table = 1; next }
            f[1] == "NPU" && f[2] == "Chip" { table = 0 }
            table && f[1] ~ /^[0-9]+$/ && f[2] != "" && f[3] == "" && $3 != "" { print f[2]; exit }' || true
    fi
}

# Seconds `npu-smi info` may take (here, and in step 0's check) before it is stopped.
NPU_SMI_TIMEOUT="${NPU_SMI_TIMEOUT:-15}"
BS="${BS:-1}"
# DEVICE_ID=0,1,2,3: step 5 runs one worker process per device; every result goes to
# dumpOutput_device$FIRST_DEVICE, the folder step 6 reads. Steps 0 and 7 use the first device.
DEVICE_ID="${DEVICE_ID:-0}"
# shellcheck disable=SC2034  # read by the steps that source this file
FIRST_DEVICE="${DEVICE_ID%%,*}"
CHIP_NAME="${CHIP_NAME:-$(detect_chip_name)}"
WORK_DIR="${WORK_DIR:-$ROOT/work}"
CKPT="${CKPT:-$WORK_DIR/model_lincls_best.pth.tar}"
VAL_DIR="${VAL_DIR:-/opt/npu/imagenet/val}"
LABELS="${LABELS:-$WORK_DIR/val_label.txt}"
INTERPOLATION="${INTERPOLATION:-bicubic}"
BACKEND="${BACKEND:-auto}"
OUTFMT="${OUTFMT:-txt}"
ATC_LOG="${ATC_LOG:-error}"
BATCH_SIZES="${BATCH_SIZES:-1 4 8 16 32 64}"
PERF_BACKENDS="${PERF_BACKENDS:-onnxruntime}"
PERF_LOOP="${PERF_LOOP:-20}"
PERF_WARMUP="${PERF_WARMUP:-3}"
# AIPP=1: step 2 puts ImageNet normalisation on the device; the OM then reads uint8 pixels
# (imagenet_torch_preprocess.py --dtype uint8). DYNAMIC_BATCH="1,4,8,16,32,64": steps 1 and 2
# make one dynamic-batch model for those batch sizes instead of one fixed-batch model per BS.
AIPP="${AIPP:-0}"
DYNAMIC_BATCH="${DYNAMIC_BATCH:-}"
# Step 3's file type: uint8 pixels by default with AIPP (the AIPP OM reads nothing else; a float32
# model normalises them on the host, to the same inputs), else the guide's float32.
if [ "$AIPP" = "1" ]; then DTYPE="${DTYPE:-uint8}"; else DTYPE="${DTYPE:-float32}"; fi
# STREAM=1: step 5 reads the images of VAL_DIR itself (worker processes decode them as the model
# runs, WORKERS of them, default all cores) and needs no step 3 or 4: no .bin files are written.
STREAM="${STREAM:-0}"
WORKERS="${WORKERS:-}"
# RESUME=1: step 5 reuses the results an earlier run with the same model and settings proved
# (run_om_infer.py --resume; run_all.sh sets it); without it a rerun runs again and measures again.
RESUME="${RESUME:-0}"

# The stage scripts find the package beside them; `python -m mocoinfer.*` needs it on the path.
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi

# Paths derived from the settings, named as the guide names the files.
if [ -n "$DYNAMIC_BATCH" ]; then MODEL_TAG="dynamic"; else MODEL_TAG="bs$BS"; fi
if [ "$AIPP" = "1" ]; then OM_TAG="$MODEL_TAG-aipp"; else OM_TAG="$MODEL_TAG"; fi
ONNX_MODEL="${ONNX_MODEL:-$WORK_DIR/moco-v2-$MODEL_TAG.onnx}"
OM_BASE="${OM_BASE:-$WORK_DIR/moco-v2-atc-$OM_TAG}"      # atc appends .om; an AIPP OM never replaces the float one
AIPP_CONFIG="${AIPP_CONFIG:-$WORK_DIR/aipp_moco.config}"
PREP_DIR="${PREP_DIR:-$WORK_DIR/prep_dataset}"
INFO_FILE="${INFO_FILE:-$WORK_DIR/dataset_prep_bin.info}"
RESULT_DIR="${RESULT_DIR:-$WORK_DIR/result}"
PERF_DIR="${PERF_DIR:-$WORK_DIR/perf}"

# The output policy of the Python stages (mocoinfer/atomic.py: check_output), for the files a shell
# step writes itself and for every setting that names an output. `check_outputs NAME...` refuses,
# in one line and before any work, an output setting (ONNX_MODEL, OM, AIPP_CONFIG, INFO_FILE,
# RESULT_JSON, COMPARE_JSON, TABLES) that is a symlink, special file or folder, or that names the
# same file as an input (CKPT, LABELS, VAL_DIR, CANN_SET_ENV) or as another output: AIPP_CONFIG set
# to the ONNX model's path would otherwise replace the model with the config text.
# Every name of OUTPUT_SETTINGS is a file the pipeline writes; the steps name theirs.
OUTPUT_SETTINGS=(ONNX_MODEL OM AIPP_CONFIG INFO_FILE RESULT_JSON COMPARE_JSON TABLES)
output_path() {
    case "$1" in
        OM) printf '%s\n' "$OM_BASE.om" ;;
        RESULT_JSON) printf '%s\n' "$WORK_DIR/result.json" ;;
        COMPARE_JSON) printf '%s\n' "$WORK_DIR/result_compare.json" ;;
        TABLES) printf '%s\n' "$WORK_DIR/tables.md" ;;
        *) printf '%s\n' "${!1}" ;;
    esac
}
check_outputs() {
    # The pipeline's files, each as --output (this step writes it) or --input (some step reads it).
    local name writes=" $* " args=()
    for name in CKPT LABELS VAL_DIR CANN_SET_ENV; do args+=(--input "$name=${!name}"); done
    for name in "${OUTPUT_SETTINGS[@]}"; do
        if [[ "$writes" == *" $name "* ]]; then args+=(--output "$name=$(output_path "$name")")
        else args+=(--input "$name=$(output_path "$name")"); fi
    done
    MOCOINFER_STEP="${STEP_NAME:-env.sh}" "$PYTHON" -m mocoinfer.cli check-output "${args[@]}"
}
# A hidden temporary beside $1, named as mocoinfer/temporaries.py names them
# (.<name>.tmp<pid>-<8 hex>), so nothing that reads the folder takes it for an output.
temp_path() {
    printf '%s/.%s.tmp%s-%04x%04x\n' "$(dirname "$1")" "$(basename "$1")" "$$" "$RANDOM" "$RANDOM"
}
# install_output NAME=PATH TMP [NAME=INPUT...]: the policy once more (the path may have become a
# symlink or a folder meanwhile), then TMP is renamed onto PATH (mv -T: never into a folder), so no
# reader sees half a file; TMP is deleted when refused.
install_output() {
    local out="$1" tmp="$2" args=() extra
    shift 2
    for extra in "$@"; do args+=(--input "$extra"); done
    if ! MOCOINFER_STEP="${STEP_NAME:-env.sh}" "$PYTHON" -m mocoinfer.cli check-output --output "$out" \
            ${args[@]+"${args[@]}"}; then
        rm -f -- "$tmp"
        return 1
    fi
    mv -f -T -- "$tmp" "${out#*=}"
}

have_cann() {
    command -v atc > /dev/null 2>&1 && "$PYTHON" -c "import acl" > /dev/null 2>&1
}

# The first comment block of a step script is its --help.
usage_from_header() {
    sed -n '2,/^$/ s/^# \{0,1\}//p' "$1"
}

handle_help() {
    local script="$1"
    shift
    case "${1:-}" in
        -h|--help) usage_from_header "$script"; exit 0 ;;
        "") ;;
        *) echo "$(basename "$script"): unknown argument '$1' (settings come from the environment; see --help)" >&2
           exit 2 ;;
    esac
}

# DYNAMIC_BATCH, when set, is atc's --dynamic_batch_size list: batch sizes, comma-separated. atc
# takes 2 to 100 of them (ATC docs, --dynamic_batch_size: "(1,100]" profiles), all different
# (ATC error E10039: duplicate profiles). Checked before a step does any work, so a bad list stops
# here rather than inside atc after step 1's export.
check_dynamic_batch() {
    [ -n "$DYNAMIC_BATCH" ] || return 0
    local rule="atc's --dynamic_batch_size takes 2 to 100 different batch sizes, comma-separated (e.g. DYNAMIC_BATCH=1,4,8,16,32,64)"
    if ! [[ "$DYNAMIC_BATCH" =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]]; then
        echo "$STEP_NAME: DYNAMIC_BATCH='$DYNAMIC_BATCH' is not a list of batch sizes: $rule" >&2
        exit 2
    fi
    local sizes size seen=","
    IFS=',' read -r -a sizes <<< "$DYNAMIC_BATCH"
    if [ "${#sizes[@]}" -lt 2 ]; then
        echo "$STEP_NAME: DYNAMIC_BATCH='$DYNAMIC_BATCH' lists one batch size: $rule; for one fixed batch, leave DYNAMIC_BATCH empty and set BS=$DYNAMIC_BATCH" >&2
        exit 2
    fi
    if [ "${#sizes[@]}" -gt 100 ]; then
        echo "$STEP_NAME: DYNAMIC_BATCH lists ${#sizes[@]} batch sizes: $rule" >&2
        exit 2
    fi
    for size in "${sizes[@]}"; do
        if [[ "$seen" == *",$size,"* ]]; then
            echo "$STEP_NAME: DYNAMIC_BATCH='$DYNAMIC_BATCH' lists $size more than once: $rule" >&2
            exit 2
        fi
        seen+="$size,"
    done
}

# Fail fast, and say which step failed.
on_error() {
    echo "$STEP_NAME: failed (exit $1); fix the cause above and rerun: completed work is kept" >&2
}

begin_step() {
    STEP_NAME="$1"
    trap 'on_error $?' ERR
    mkdir -p "$WORK_DIR"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    for v in BS DEVICE_ID FIRST_DEVICE CHIP_NAME WORK_DIR CKPT VAL_DIR LABELS INTERPOLATION BACKEND OUTFMT BATCH_SIZES \
             PERF_BACKENDS AIPP DYNAMIC_BATCH DTYPE STREAM WORKERS RESUME PYTHON ONNX_MODEL OM_BASE AIPP_CONFIG PREP_DIR INFO_FILE RESULT_DIR \
             PERF_DIR CANN_SET_ENV NPU_SMI_TIMEOUT; do
        printf '%s=%s\n' "$v" "${!v}"
    done
fi
