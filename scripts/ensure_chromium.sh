#!/usr/bin/env bash
# The kedro viz browser test drives Debian's Chromium (Playwright cannot download a browser here).
# Installs it when missing and apt-get can; otherwise says so, and that test is skipped.
set -uo pipefail
command -v chromium >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing Debian's chromium for the kedro viz browser test..."
  if apt-get install -y -qq chromium >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1; }; then
    exit 0
  fi
fi
echo "warning: no chromium (Debian package 'chromium'): the kedro viz browser test will be skipped." >&2
