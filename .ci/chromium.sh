#!/usr/bin/env bash
# CI: Debian's Chromium for the report-rendering test (never fatal: the test skips with a
# message without it).
set -u

if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "chromium.sh: no apt-get here; the report-rendering test will be skipped" >&2
    exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo="sudo -n"
    else
        echo "chromium.sh: not root and no passwordless sudo; the report test will be skipped" >&2
        exit 0
    fi
fi
if ! $sudo env DEBIAN_FRONTEND=noninteractive sh -c \
        'apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium' \
        >/tmp/chromium-install.log 2>&1; then
    echo "chromium.sh: installing Chromium failed (see /tmp/chromium-install.log);" \
         "the report-rendering test will be skipped" >&2
    exit 0
fi
echo "chromium.sh: Chromium installed"
