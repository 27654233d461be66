#!/usr/bin/env bash
# The whole live demo on the embedded default (embedded Redis + SQLite under ./var).
# Usage: scripts/demo.sh [--port 8050] [--speed 60] [--history-days 30]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/pingan demo "$@"
