# Shell helpers shared by scripts/test.sh and scripts/cluster-demo.sh (sourced, not run).

# apt_install PKG…: install the Debian packages named (none named: nothing to do)
apt_install() {
  [ $# -gt 0 ] || return 0
  echo "installing Debian packages: $*"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# postgres_up: start the machine's PostgreSQL on 127.0.0.1:5432 when it is installed but down
postgres_up() {
  if command -v pg_isready >/dev/null 2>&1 && ! pg_isready -q -h 127.0.0.1 -p 5432; then
    if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
      pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    fi
  fi
}
