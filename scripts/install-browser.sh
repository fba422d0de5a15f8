#!/usr/bin/env bash
# Headless Chromium and its WebDriver for the UI's browser test (tests/ui/test_browser.py), from Debian's packages:
# no browser is downloaded at test time (selenium-manager is never used). Idempotent: apt-get runs only when one of
# the two is missing. Needs root (or sudo) and apt; elsewhere it says so and exits non-zero, and the browser test
# then skips itself (fails under CI=true).
set -euo pipefail

if command -v chromium >/dev/null 2>&1 && [ -x /usr/bin/chromedriver ]; then
    echo "install-browser: chromium and chromedriver already installed"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-browser: apt-get not found; install chromium and chromium-driver yourself" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "install-browser: not root and no sudo; install chromium and chromium-driver yourself" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null
echo "install-browser: installed $(chromium --version 2>/dev/null || echo chromium)"
