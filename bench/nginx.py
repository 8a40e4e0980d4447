"""nginx serving static trees on loopback addresses for the benchmarks, so the server is not what is measured.

One nginx (one worker process, no access log, sendfile, keep-alive) listens on one free port at each of
the given 127.x.y.z addresses; a request to address A is served from `root`, or from `root`/A when
`by_address` is set (the broad site: each address is its own host with its own tree and robots.txt).
`/` and `dir/` are served from their index.html. Nothing listens beyond loopback.

Needs nginx: `apt-get install -y nginx-light`.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CONF = """daemon off;
worker_processes 1;
worker_rlimit_nofile 16384;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  types {{ text/html html; text/plain txt; }}
  default_type text/html;
  charset utf-8;
  sendfile on;
  open_file_cache max=10000;
  keepalive_requests 1000000;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  server {{
{listen}
    root {root};
    location / {{ try_files $uri $uri/index.html =404; }}
  }}
}}
"""


def free_port(address: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


def config(root: Path, tmp: Path, addresses: list[str], port: int, by_address: bool) -> str:
    listen = "\n".join(f"    listen {address}:{port};" for address in addresses)
    return CONF.format(tmp=tmp, listen=listen, root=f"{root}/$server_addr" if by_address else root)


@contextmanager
def nginx(root: Path, tmp: Path, addresses: list[str], by_address: bool = False) -> Iterator[int]:
    """nginx serving `root` on a free port of every address until the block ends; yields the port."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    port = free_port(addresses[0])
    tmp.chmod(0o755)  # nginx's workers run as an unprivileged user: let them read what is under it
    conf = tmp / "nginx.conf"
    conf.write_text(config(root, tmp, addresses, port, by_address))
    proc = subprocess.Popen([binary, "-c", str(conf), "-p", str(tmp)], stderr=subprocess.DEVNULL)
    try:
        wait_for(f"http://{addresses[-1]}:{port}/", proc)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def wait_for(url: str, proc: subprocess.Popen[bytes]) -> None:
    """Until `url` answers at all (a 404 will do: the docs have no robots.txt)."""
    for _ in range(100):
        if proc.poll() is not None:
            raise SystemExit(f"nginx exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("nginx did not answer")
