#!/usr/bin/env bash
# Step 0 (guide: 推理环境准备): is this host ready, and for which path?
#
#   scripts/0_check_env.sh              # one row per item: ok / warning / missing, and what it affects
#   scripts/0_check_env.sh --npu        # exit 1 unless the NPU path (atc, acl, a usable device) is complete
#   scripts/0_check_env.sh --json       # the same as JSON, with a "devices" list
#
# Checks Python, each package (and which steps need it), CANN's set_env.sh and version, atc,
# `import acl`, ais_bench and its version (optional: `--backend aisbench`), the devices of
# `npu-smi info` (card id, chip, device id, health, memory in use) and whether
# acl.rt.set_device opens each, CHIP_NAME against the chips found, free disk in
# WORK_DIR for 50,000 preprocessed images, and the usable CPU cores. Exit 0 when the CPU path
# (ONNX Runtime / PyTorch) or the NPU path can run. Writes nothing.
# Settings: CHIP_NAME, DEVICE_ID (the first of a list is checked), WORK_DIR, CANN_SET_ENV, PYTHON,
# NPU_SMI_TIMEOUT (seconds npu-smi may take, default 15; see scripts/env.sh).

set -euo pipefail
# shellcheck source=scripts/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

args=()
for a in "$@"; do
    case "$a" in
        -h|--help) usage_from_header "$0"; exit 0 ;;
        --npu|--json) args+=("$a") ;;
        *) echo "$(basename "$0"): unknown argument '$a' (--npu, --json; settings come from the environment)" >&2
           exit 2 ;;
    esac
done

# No begin_step: a check must not create WORK_DIR.
"$PYTHON" -m mocoinfer.envcheck --chip-name "$CHIP_NAME" --work-dir "$WORK_DIR" --device-id "$FIRST_DEVICE" \
    --cann-set-env "$CANN_SET_ENV" --npu-smi-timeout "$NPU_SMI_TIMEOUT" ${args[@]+"${args[@]}"}
