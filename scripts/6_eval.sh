#!/usr/bin/env bash
# Step 6 (guide: 精度统计): Top-1..Top-5 of the result dir against val_label.txt.
#
#   scripts/6_eval.sh
#   REFERENCE_DIR=work/result_torch/dumpOutput_device0 scripts/6_eval.sh   # + precision comparison
#
# Runs the guide's `vision_metric_ImageNet.py <result dir> <labels> <json dir> result.json`;
# with REFERENCE_DIR it also compares with that result dir and fails when Top-1 drops by more
# than TOLERANCE points (default 1.0, the guide's criterion).
# Settings: RESULT_DIR, DEVICE_ID (its first id names the result folder), LABELS, WORK_DIR, REFERENCE_DIR, TOLERANCE (see scripts/env.sh).

set -euo pipefail
# shellcheck source=scripts/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
handle_help "$0" "$@"
begin_step "6_eval"
check_outputs RESULT_JSON COMPARE_JSON

args=("$RESULT_DIR/dumpOutput_device$FIRST_DEVICE/" "$LABELS" "$WORK_DIR" result.json)
if [ -n "${REFERENCE_DIR:-}" ]; then
    args+=(--compare "$REFERENCE_DIR" --tolerance "${TOLERANCE:-1.0}")
fi
"$PYTHON" "$ROOT/vision_metric_ImageNet.py" "${args[@]}"
