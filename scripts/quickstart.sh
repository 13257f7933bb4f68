#!/usr/bin/env bash
# Quick start: set the machine up, create ./demo-dataset and mount it at ./mnt.
#   scripts/quickstart.sh            (run from anywhere; paths are relative to the repo)
# LAKEFS_DEMO_DATASET and LAKEFS_DEMO_MNT choose other paths (tests/cli/test_quickstart.py).
# Unmount with:  lakefs umount ./mnt
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh

LAKEFS=(lakefs)
if [ -x .venv/bin/lakefs ]; then
    LAKEFS=(.venv/bin/lakefs)
elif ! command -v lakefs >/dev/null 2>&1; then
    PYTHON=${PYTHON:-python3}
    LAKEFS=("$PYTHON" -m lakefs)
fi

DATASET=${LAKEFS_DEMO_DATASET:-./demo-dataset}
MNT=${LAKEFS_DEMO_MNT:-./mnt}
mkdir -p "$MNT"
if grep -qs " $(realpath "$MNT") " /proc/self/mounts; then
    echo "[quickstart] $MNT is already mounted; unmount it with: ${LAKEFS[*]} umount $MNT"
    exit 0
fi
if [ ! -e "$DATASET" ]; then
    echo "[quickstart] ${LAKEFS[*]} create $DATASET"
    "${LAKEFS[@]}" create "$DATASET"
fi
# `lakefs mount` returns once the mount is up (it runs as a daemon).
echo "[quickstart] ${LAKEFS[*]} mount $DATASET $MNT"
"${LAKEFS[@]}" mount "$DATASET" "$MNT"

cat <<MSG

lakefs is mounted: dataset $DATASET at $MNT. Try:
    mkdir $MNT/images
    cp ~/Pictures/*.jpg $MNT/images/        # stored byte-for-byte as a jpeg tensor
    ls -l $MNT/images; md5sum $MNT/images/*
Unmount (the dataset stays in $DATASET):
    ${LAKEFS[*]} umount $MNT
MSG
