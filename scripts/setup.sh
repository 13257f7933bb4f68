#!/usr/bin/env bash
# Set up a machine to run lakefs and its tests. Idempotent: on a machine where everything
# is already there it only checks and returns in a second or two.
#
# Targets a fresh Debian 12, as root or with sudo:
#   - apt packages: fuse3 (fusermount3), libfuse3-3 (libfuse3.so.3, loaded by mfusepy),
#     attr (getfattr), rsync and git (used by tests), python3-venv, python3-pip
#   - /dev/fuse (modprobe fuse if it is missing)
#   - pip install -e ".[test]" with $PYTHON (default: python3). If that interpreter is
#     "externally managed" (PEP 668, Debian's system python), a .venv is created in the
#     repo and used instead; scripts/test.sh and scripts/quickstart.sh pick it up, and
#     /usr/local/bin/lakefs is linked to .venv/bin/lakefs (unless another lakefs is there)
#     so that `lakefs` works from any folder, as the README uses it.
#
# Environment: PYTHON=/path/to/python to choose the interpreter; LAKEFS_SKIP_APT=1 to
# skip the apt step (e.g. no root and no sudo); LAKEFS_SKIP_PIP=1 to skip the .venv and
# pip step (lakefs is installed for $PYTHON already: tests/cli/test_quickstart.py, which
# must not install the checkout it runs from over the one installed).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO_ROOT=$(pwd)
say() { echo "[setup] $*"; }

SUDO=()
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    else
        say "not root and no sudo: system steps may fail"
    fi
fi

# --- system packages ------------------------------------------------------------------
APT_PACKAGES=(fuse3 libfuse3-3 attr rsync git python3-venv python3-pip)
if [ "${LAKEFS_SKIP_APT:-0}" = 1 ]; then
    say "LAKEFS_SKIP_APT=1: skipping apt"
elif ! command -v dpkg-query >/dev/null 2>&1; then
    say "not a Debian-like system: install the equivalents of ${APT_PACKAGES[*]} yourself"
else
    missing=()
    for pkg in "${APT_PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$pkg")
        fi
    done
    if [ ${#missing[@]} -eq 0 ]; then
        say "apt packages present: ${APT_PACKAGES[*]}"
    else
        say "installing apt packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        # Wait for a concurrent apt/dpkg instead of failing on its lock.
        "${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=600 update
        "${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${missing[@]}"
    fi
fi

# --- /dev/fuse ------------------------------------------------------------------------
if [ -e /dev/fuse ]; then
    say "/dev/fuse present"
else
    say "/dev/fuse missing: trying modprobe fuse"
    "${SUDO[@]}" modprobe fuse 2>/dev/null || true
    if [ ! -e /dev/fuse ]; then
        say "WARNING: /dev/fuse still missing; mounts will fail (in a container, run it with --device /dev/fuse --cap-add SYS_ADMIN)"
    fi
fi

# --- Python package -------------------------------------------------------------------
PYTHON=${PYTHON:-python3}
if [ "${LAKEFS_SKIP_PIP:-0}" = 1 ]; then
    say "LAKEFS_SKIP_PIP=1: skipping the virtualenv and pip"
elif [ -x "$REPO_ROOT/.venv/bin/python" ]; then
    say "using existing virtualenv $REPO_ROOT/.venv"
    PYTHON="$REPO_ROOT/.venv/bin/python"
elif "$PYTHON" - <<'EOF'
import os, sys, sysconfig
in_venv = sys.prefix != sys.base_prefix
marker = os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")
sys.exit(0 if (not in_venv and os.path.exists(marker)) else 1)
EOF
then
    say "$PYTHON is externally managed (PEP 668): creating $REPO_ROOT/.venv"
    "$PYTHON" -m venv "$REPO_ROOT/.venv"
    PYTHON="$REPO_ROOT/.venv/bin/python"
fi
say "python: $PYTHON ($("$PYTHON" --version 2>&1))"

# Skip pip when this repo is already installed (editable) with the current pyproject.toml.
STAMP_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/lakefs-setup"
STAMP="$STAMP_DIR/$(printf '%s' "$REPO_ROOT:$("$PYTHON" -c 'import sys; print(sys.executable)')" | sha256sum | cut -c1-16)"
WANT="$(sha256sum pyproject.toml | cut -c1-64)"
installed_here() {
    (cd / && "$PYTHON" -c "import importlib.util as u, sys; s = u.find_spec('lakefs'); sys.exit(0 if s and s.origin.startswith('$REPO_ROOT/') else 1)") >/dev/null 2>&1
}
if [ "${LAKEFS_SKIP_PIP:-0}" = 1 ]; then
    :
elif [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && installed_here; then
    say "lakefs already installed (editable) from $REPO_ROOT with current dependencies"
else
    say "pip install -e \".[test]\""
    "$PYTHON" -m pip install --disable-pip-version-check --root-user-action=ignore -q -e ".[test]"
    mkdir -p "$STAMP_DIR" && echo "$WANT" > "$STAMP"
fi

# In a .venv, put its `lakefs` on PATH: the README's commands (`lakefs umount ./mnt`) are
# typed from anywhere. Only a missing link or one into some .venv is replaced.
VENV_LAKEFS="$REPO_ROOT/.venv/bin/lakefs"
LINK=/usr/local/bin/lakefs
if [ "$PYTHON" = "$REPO_ROOT/.venv/bin/python" ] && [ -x "$VENV_LAKEFS" ]; then
    current=$(readlink "$LINK" 2>/dev/null || true)
    if [ "$current" = "$VENV_LAKEFS" ]; then
        say "lakefs on PATH: $LINK -> $VENV_LAKEFS"
    elif [ -e "$LINK" ] && [[ "$current" != */.venv/bin/lakefs ]]; then
        say "$LINK exists and is not ours: use $VENV_LAKEFS (or . .venv/bin/activate)"
    elif "${SUDO[@]}" ln -sfn "$VENV_LAKEFS" "$LINK" 2>/dev/null; then
        say "lakefs on PATH: $LINK -> $VENV_LAKEFS"
    else
        say "could not link $LINK: use $VENV_LAKEFS (or . .venv/bin/activate)"
    fi
fi

say "checking the FUSE binding"
(cd / && "$PYTHON" -c "from lakefs.fs import binding as b; print('[setup] FUSE binding:', b.BINDING, 'on libfuse', f'{b.LIBFUSE_MAJOR}.{b.LIBFUSE_MINOR}')") \
    || say "WARNING: the FUSE binding does not load (see the error above)"
say "done"
