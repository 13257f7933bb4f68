#!/usr/bin/env bash
# Quick start: set the machine up, create ./demo-dataset and mount it at ./mnt.
#   scripts/quickstart.sh            (run from anywhere; paths are relative to the repo)
# LAKEFS_DEMO_DATASET and LAKEFS_DEMO_MNT choose other paths (tests/cli/test_quickstart.py).
# Unmount with:  lakefs umount ./mnt
set -euo pipefail
CALLER_DIR=$(pwd)
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh

LAKEFS=(lakefs)
if [ -x .venv/bin/lakefs ]; then
    # setup.sh links it into /usr/local/bin when it can; the commands printed below must
    # work when pasted in any folder, so otherwise it is named by its absolute path.
    on_path=$(command -v lakefs 2>/dev/null || true)
    if [ -z "$on_path" ] || [ "$(realpath -- "$on_path")" != "$(realpath .venv/bin/lakefs)" ]; then
        LAKEFS=("$(pwd)/.venv/bin/lakefs")
    fi
elif ! command -v lakefs >/dev/null 2>&1; then
    PYTHON=${PYTHON:-python3}
    LAKEFS=("$PYTHON" -m lakefs)
fi

DATASET=${LAKEFS_DEMO_DATASET:-./demo-dataset}
MNT=${LAKEFS_DEMO_MNT:-./mnt}
# Run from another folder, the commands printed below name the repo's paths in full.
if [ "$CALLER_DIR" != "$(pwd)" ]; then
    DATASET=$(realpath -m -- "$DATASET")
    MNT=$(realpath -m -- "$MNT")
fi

# Whether the mount table lists $1 (symlinks resolved). Not stat, mountpoint(1) or
# mkdir -p: on a FUSE mount whose process died they fail (ENOTCONN). The table escapes
# space, tab, newline and backslash as octal (proc(5)): "my data" is "my\040data".
is_mounted() {
    local path
    path=$(realpath -m -- "$1") || return 1
    path=${path//\\/\\134}
    path=${path// /\\040}
    path=${path//$'\t'/\\011}
    path=${path//$'\n'/\\012}
    cut -d' ' -f2 /proc/self/mounts | grep -qxF -- "$path"
}

# The commands printed can be pasted into a shell, whatever the paths hold.
quoted() { local out; printf -v out '%q ' "$@"; printf '%s' "${out% }"; }
LAKEFS_Q=$(quoted "${LAKEFS[@]}")
DATASET_Q=$(quoted "$DATASET")
MNT_Q=$(quoted "$MNT")

if is_mounted "$MNT"; then
    echo "[quickstart] $MNT is already mounted; unmount it with: $LAKEFS_Q umount $MNT_Q"
    exit 0
fi
mkdir -p "$MNT"
if [ ! -e "$DATASET" ]; then
    echo "[quickstart] $LAKEFS_Q create $DATASET_Q"
    "${LAKEFS[@]}" create "$DATASET"
fi
# `lakefs mount` returns once the mount is up (it runs as a daemon).
echo "[quickstart] $LAKEFS_Q mount $DATASET_Q $MNT_Q"
"${LAKEFS[@]}" mount "$DATASET" "$MNT"

cat <<MSG

lakefs is mounted: dataset $DATASET at $MNT. Try:
    mkdir $MNT_Q/images
    cp /path/to/photos/*.jpg $MNT_Q/images/  # stored byte-for-byte as a jpeg tensor
    ls -l $MNT_Q/images; md5sum $MNT_Q/images/*
Unmount (the dataset stays in $DATASET):
    $LAKEFS_Q umount $MNT_Q
MSG
