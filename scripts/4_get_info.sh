#!/usr/bin/env bash
# Step 4 (guide: 生成数据集info文件): list the .bin files in an info file.
#
#   scripts/4_get_info.sh
#
# Runs the guide's `get_info.py bin $PREP_DIR $INFO_FILE 224 224`, which checks every file's size.
# Settings: PREP_DIR, INFO_FILE (see scripts/env.sh).

set -euo pipefail
# shellcheck source=scripts/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
handle_help "$0" "$@"
begin_step "4_get_info"
check_outputs INFO_FILE

"$PYTHON" "$ROOT/get_info.py" bin "$PREP_DIR" "$INFO_FILE" 224 224
