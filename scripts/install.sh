#!/usr/bin/env bash
# One set-up for `make run`, `make test`, CI and the Dockerfile: the Debian packages blkcmp drives
# (fio, QEMU, debootstrap, ...) and a Python virtual environment in .venv with blkcmp installed.
#   scripts/install.sh          runtime only
#   scripts/install.sh test     runtime + test dependencies (pytest, statsmodels, chromium)
# Idempotent: packages already present and an unchanged pyproject.toml cost nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
want_test=${1:-}

packages=(fio qemu-system-x86 debootstrap python3 python3-venv util-linux kmod xz-utils zstd
          ca-certificates procps)
[ "$want_test" = test ] && packages+=(chromium)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "install.sh: missing Debian packages ${missing[*]}; run as root to install them" >&2
        exit 1
    fi
    echo "install.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

extras=vm
[ "$want_test" = test ] && extras=vm,test
stamp=.venv/.blkcmp-installed-$extras
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "install.sh: installing blkcmp[$extras] into .venv"
    # pip's chatter (setuptools' editable-install banner) goes to a log, shown only on failure.
    if ! { .venv/bin/pip install -q --upgrade pip && .venv/bin/pip install -q -e ".[$extras]"; } \
            > .venv/pip.log 2>&1; then
        cat .venv/pip.log >&2
        echo "install.sh: pip install failed (log above, also in .venv/pip.log)" >&2
        exit 1
    fi
    touch "$stamp"
fi
