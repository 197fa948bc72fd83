#!/usr/bin/env bash
# Installs Debian's Chromium (and a CJK font) for the browser tests when they are missing.
# Safe to run repeatedly; the tests' session fixture calls it, and CI may call it up front.
# Never use `playwright install`: it downloads a browser build, which fails offline.
set -euo pipefail

if [ -x /usr/bin/chromium ] && fc-list :lang=zh 2>/dev/null | grep -q .; then
    exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo -n)
else
    echo "install_browser.sh: need root (or sudo) to apt-get install chromium" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null
/usr/bin/chromium --version
