#!/usr/bin/env bash
# The whole live demo on the embedded default (embedded Redis + SQLite under ./var).
# Usage: scripts/demo.sh [--port 8050] [--speed 60] [--history-days 30]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
# 整体联动 needs Janus (Debian's janus); install it when we may, else the demo runs without it
if ! command -v janus >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
  echo "installing janus (the SFU of 整体联动)…"
  { $SUDO apt-get install -y -qq --no-install-recommends janus >/dev/null 2>&1 ||
    { $SUDO apt-get update -qq >/dev/null 2>&1 &&
      $SUDO apt-get install -y -qq --no-install-recommends janus >/dev/null 2>&1; }; } ||
    echo "could not install janus: the demo runs without 整体联动 (apt-get install janus)"
fi
exec .venv/bin/pingan demo "$@"
