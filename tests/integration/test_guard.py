"""The address guard in a real crawl, on both engines: the rule holds for the address a connection reached
(DNS rebinding), for links, a seed's redirect, robots.txt and its redirects.

Rebinding names (tests/rebinding.py) answer a public address to the guard's lookup, then 127.0.0.1 to the
connection's, where `inner` listens: a service the crawl must never send a request to.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from conftest import CLI_TIMEOUT, ROOT
from servers import redirect, serve, static

PUBLIC = "93.184.216.34"
CONNECTED = "blocked: private address 127.0.0.1 (connected)"
NAMES = ("link.rebind.test", "seed.rebind.test", "robots.rebind.test")


def crawl_rebinding(db: Path, engine: str, *args: str) -> subprocess.CompletedProcess[str]:
    table = json.dumps({name: [PUBLIC, "127.0.0.1"] for name in NAMES})
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRAWL_")}
    cmd = [sys.executable, str(ROOT / "tests" / "rebinding.py"), table, *args, "--engine", engine,
           "--db", str(db), "--quiet", "--parse-workers", "0", "--scope", "all", "--retries", "0"]
    return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=CLI_TIMEOUT, cwd=ROOT, env=env)


def errors(db: Path) -> dict[str, str | None]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT url, error FROM pages").fetchall())


def test_a_name_rebound_to_a_private_address_is_blocked_at_connect(tmp_path: Path, engine: str) -> None:
    """A link, and a seed redirecting, to a rebinding name: robots.txt first (obeyed), then, with
    --ignore-robots, the pages themselves. A robots.txt redirecting to one. `inner` sees no request."""
    with serve() as inner, serve() as links, serve() as moved, serve() as robots:
        at = f":{inner.port}"
        links.mount("/", static(f'<a href="http://link.rebind.test{at}/secret">s</a>'.encode()))
        moved.mount("/", redirect(f"http://seed.rebind.test{at}/"))
        robots.mount("/robots.txt", redirect(f"http://robots.rebind.test{at}/robots.txt"))
        robots.mount("/", static(b"<html>robots</html>"))
        inner.mount("/", static(b"<html>inner</html>"))
        seeds = [links.url("/"), moved.url("/"), robots.url("/")]
        obeyed = crawl_rebinding(tmp_path / "obeyed.db", engine, *seeds)
        assert obeyed.returncode == 0, obeyed.stderr
        assert inner.log == [], inner.log
        ignored = crawl_rebinding(tmp_path / "ignored.db", engine, *seeds[:2], "--ignore-robots")
        assert ignored.returncode == 0, ignored.stderr
        assert inner.log == [], inner.log
    refused = f"{CONNECTED} (at robots.txt)"
    pages = errors(tmp_path / "obeyed.db")
    assert pages[robots.url("/")] == refused
    assert pages[f"http://link.rebind.test{at}/secret"] == pages[f"http://seed.rebind.test{at}/"] == refused
    pages = errors(tmp_path / "ignored.db")
    assert pages[f"http://link.rebind.test{at}/secret"] == CONNECTED
    assert pages[f"http://seed.rebind.test{at}/"] == CONNECTED
    assert pages[links.url("/")] is None
