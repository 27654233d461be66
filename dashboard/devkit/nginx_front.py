"""A private nginx in front of local web hosts, configured by the deployment's own
deploy/nginx.conf (tests/integration/test_hosts.py, scripts/cluster-demo.sh).

    python -m dashboard.devkit.nginx_front start DIR --listen PORT --upstream 127.0.0.1:8051 ...
    python -m dashboard.devkit.nginx_front render DIR --listen PORT --upstream ...   # config only

`render` keeps the site file as it is except its upstream servers (the given ones) and its
listen lines (one, on loopback), and wraps it in a main config whose pid file, logs and
temporary folders are under DIR; a site file whose upstream or listen lines cannot be found
is an error, so a test of the rendered config tests the file the operators install.
Debian's `nginx` binary runs in the foreground (`daemon off`), needing no root for a port
above 1024; run as root, its workers stay root (they write the temporary folders in DIR).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

SITE = Path(__file__).resolve().parents[2] / "deploy" / "nginx.conf"
UPSTREAM = re.compile(r"(upstream\s+pingan_web\s*\{)(.*?)(\})", re.S)
UPSTREAM_SERVER = re.compile(r"^[ \t]*server\s+\S+[^;\n]*;[ \t]*\n", re.M)
LISTEN = re.compile(r"^[ \t]*listen\s+[^;\n]*;[ \t]*\n", re.M)
READY_S = 15.0
TEMP_DIRS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


class NginxError(RuntimeError):
    pass


def binary() -> str:
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/sbin/nginx") if os.access(p, os.X_OK)), None)
    if found is None:
        raise NginxError("nginx is not installed (apt-get install nginx)")
    return found


def render_site(site: str, listen: int, upstreams: list[str]) -> str:
    """The site file with `upstreams` as its web hosts and one listen line on 127.0.0.1."""
    if not upstreams:
        raise NginxError("at least one upstream web host")
    block = UPSTREAM.search(site)
    if block is None or not UPSTREAM_SERVER.search(block.group(2)):
        raise NginxError("the site file has no `upstream pingan_web { server ...; }`")
    servers = "".join(f"    server {u} max_fails=3 fail_timeout=10s;\n" for u in upstreams)
    site = site[:block.start(2)] + _replace_all(UPSTREAM_SERVER, block.group(2), servers) \
        + site[block.end(2):]
    if not LISTEN.search(site):
        raise NginxError("the site file has no listen line")
    return _replace_all(LISTEN, site, f"    listen 127.0.0.1:{listen};\n")


def _replace_all(pattern: re.Pattern, text: str, new: str) -> str:
    """Every match of `pattern` removed, `new` where the first one was."""
    at = pattern.search(text).start()
    return pattern.sub("", text[:at]) + new + pattern.sub("", text[at:])


def render(directory: Path, listen: int, upstreams: list[str], site: Path = SITE,
           worker_connections: int = 4096) -> Path:
    """Write DIR/nginx.conf (main config + the rendered site) and return its path."""
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / "tmp"
    for name in TEMP_DIRS:
        (tmp / name).mkdir(parents=True, exist_ok=True)
    root = os.geteuid() == 0
    user = "user root;\n" if root else ""
    # an open screen holds two connections (browser, web host) plus a file or two
    want = 2 * worker_connections + 64
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    files = want if root or hard == resource.RLIM_INFINITY else min(want, hard)
    temps = "".join(f"    {name}_temp_path {tmp / name};\n" for name in TEMP_DIRS)
    conf = (
        f"# rendered by dashboard.devkit.nginx_front from {site}\n{user}"
        "worker_processes 1;\n"
        f"worker_rlimit_nofile {files};\n"
        f"pid {directory / 'nginx.pid'};\n"
        f"error_log {directory / 'error.log'} warn;\n"
        f"events {{ worker_connections {worker_connections}; }}\n"
        "http {\n"
        "    default_type application/octet-stream;\n"
        f"    access_log {directory / 'access.log'};\n"
        f"{temps}"
        + render_site(site.read_text(), listen, upstreams)
        + "}\n")
    path = directory / "nginx.conf"
    path.write_text(conf)
    return path


@dataclass
class NginxHandle:
    directory: Path
    listen: int
    proc: subprocess.Popen

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listen}"

    def error_log(self) -> str:
        path = self.directory / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Fast shutdown (SIGTERM): open live streams are cut, not waited for."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def command(conf: Path) -> list[str]:
    d = conf.parent
    return [binary(), "-p", str(d), "-c", str(conf), "-e", str(d / "error.log"),
            "-g", "daemon off;"]


def start(directory: Path, listen: int, upstreams: list[str], site: Path = SITE,
          worker_connections: int = 4096) -> NginxHandle:
    """Render, check (`nginx -t`) and start nginx; returns once it answers on `listen`.
    A proxied live stream holds two connections (bench/scale.py: 2,000 screens need > 4096)."""
    conf = render(directory, listen, upstreams, site, worker_connections)
    check = subprocess.run([*command(conf), "-t"], capture_output=True, text=True)
    if check.returncode != 0:
        raise NginxError(f"nginx -t refused {conf}:\n{check.stderr}")
    with open(conf.parent / "nginx.out", "ab") as out:
        proc = subprocess.Popen(command(conf), stdout=out, stderr=subprocess.STDOUT)
    handle = NginxHandle(conf.parent, listen, proc)
    deadline = time.monotonic() + READY_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            urllib.request.urlopen(handle.url + "/assets/login.css", timeout=2).close()
            return handle
        except urllib.error.HTTPError:
            return handle  # nginx answers (a web host may not be up yet)
        except OSError:
            time.sleep(0.1)
    handle.stop()
    raise NginxError(f"nginx did not come up on {listen}:\n{handle.error_log()[-2000:]}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dashboard.devkit.nginx_front", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=("start", "render"))
    p.add_argument("directory", type=Path)
    p.add_argument("--listen", type=int, required=True)
    p.add_argument("--upstream", action="append", required=True, help="host:port (repeat)")
    p.add_argument("--site", type=Path, default=SITE)
    a = p.parse_args(argv)
    try:
        if a.action == "render":
            print(render(a.directory, a.listen, a.upstream, a.site))
            return 0
        conf = render(a.directory, a.listen, a.upstream, a.site)
        check = subprocess.run([*command(conf), "-t"], capture_output=True, text=True)
        if check.returncode != 0:
            raise NginxError(f"nginx -t refused {conf}:\n{check.stderr}")
    except NginxError as e:
        print(e, file=sys.stderr)
        return 1
    # in the foreground, as the caller's child: its trap stops it with SIGTERM
    os.execv(command(conf)[0], command(conf))
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
