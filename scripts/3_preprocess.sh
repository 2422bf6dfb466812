#!/usr/bin/env bash
# Step 3 (guide: 数据集预处理): ImageNet val JPEGs → one float32 .bin per image.
#
#   VAL_DIR=/data/imagenet/val scripts/3_preprocess.sh
#
# INTERPOLATION=bicubic (default) is the ModelZoo script's, behind the guide's published accuracy;
# INTERPOLATION=bilinear is the transform MoCo's main_lincls.py measured the checkpoint with.
# DTYPE=uint8 (the default with AIPP=1) writes uint8 HWC pixels, 150,528 bytes per image, which
# step 5 feeds to an AIPP .om as they are and to a float32 model normalised on the host.
# A rerun skips images already done. Settings: VAL_DIR, PREP_DIR, INTERPOLATION, DTYPE (see scripts/env.sh).

set -euo pipefail
# shellcheck source=scripts/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
handle_help "$0" "$@"
begin_step "3_preprocess"

[ -d "$VAL_DIR" ] || { echo "$STEP_NAME: image folder $VAL_DIR not found (set VAL_DIR=...)" >&2; exit 1; }
"$PYTHON" "$ROOT/imagenet_torch_preprocess.py" "$VAL_DIR" "$PREP_DIR" --interpolation "$INTERPOLATION" --dtype "$DTYPE"
