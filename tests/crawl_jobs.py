"""The `crawl` CLI as a job in a session of its own, and what tests read while it runs or after it died:
its database (read-only), the requests a test site served, the processes it left. Also a server whose
pages answer only when released, to keep a request in flight. Used by tests/integration/test_resume.py.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
from conftest import ROOT, Site

POLL = 0.02  # seconds between two looks at real state
ROBOTS = "/robots.txt"  # fetched once by every run of a crawl, by design


# -- the crawl as a job --------------------------------------------------------------------------------


class Job:
    """`python -m crawler ARGS` in a session of its own; stderr is collected by a thread."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CRAWL_")} | (env or {})
        self.proc = subprocess.Popen([sys.executable, "-m", "crawler", *args], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env,
                                     start_new_session=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        with self.proc.stderr:  # closed at EOF: when the crawl and everything holding its stderr is gone
            for line in self.proc.stderr:
                self.lines.append(line)

    @property
    def stderr(self) -> str:
        return "".join(self.lines)

    def wait(self, timeout: float = 90) -> int:
        """The exit code; a job still running after `timeout` is killed (its whole session) and the test fails."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)  # not left running (and eating a core) for the tests after
            self.proc.wait(timeout=10)
            raise
        self._reader.join(timeout=10)
        return code

    def descendants(self) -> list[psutil.Process]:
        return psutil.Process(self.proc.pid).children(recursive=True)

    def signal(self, signum: int, group: bool) -> None:
        (os.killpg if group else os.kill)(self.proc.pid, signum)


def wait_for(condition: Callable[[], bool], what: str, job: Job, timeout: float = 60) -> None:
    """Poll `condition` until it holds; fail if the job exits first or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert job.proc.poll() is None, f"crawl exited ({job.proc.returncode}) before {what}: {job.stderr}"
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(POLL)


def seconds_until(condition: Callable[[], bool], timeout: float) -> float:
    """Poll `condition`; how long it took to hold (`timeout` if it never did)."""
    began = time.monotonic()
    while not condition() and time.monotonic() - began < timeout:
        time.sleep(POLL)
    return time.monotonic() - began


def assert_gone(processes: list[psutil.Process], timeout: float = 10) -> None:
    """The processes exit within `timeout` (the extraction pool and the resource tracker included)."""
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    assert not alive, f"left behind: {[(p.pid, p.cmdline()[-2:]) for p in alive]}"


# -- the database, read-only ---------------------------------------------------------------------------


def query(db: Path, sql: str) -> list[tuple]:
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as conn:
        return conn.execute(sql).fetchall()


def count(db: Path, sql: str) -> int:
    """A count, or 0 while the database or its tables don't exist yet."""
    try:
        return query(db, sql)[0][0]
    except sqlite3.OperationalError:
        return 0


def pages_stored(db: Path) -> int:
    return count(db, "SELECT count(*) FROM pages")


INVARIANTS = {  # each query counts violations: all must be 0 whenever a run is gone, however it ended
    # (claimed: a run died between storing the page and settling its job; a resume settles it)
    "page whose frontier row is queued or missing": "SELECT count(*) FROM pages p LEFT JOIN frontier f "
    "ON f.crawl_id = p.crawl_id AND f.url = p.url WHERE f.state IS NULL OR f.state = 'queued'",
    "done frontier row without its page": "SELECT count(*) FROM frontier f LEFT JOIN pages p "
    "ON p.crawl_id = f.crawl_id AND p.url = f.url WHERE f.state = 'done' AND p.id IS NULL",
    "HTML page without its links": "SELECT count(*) FROM pages p WHERE p.title IS NOT NULL "
    "AND NOT EXISTS (SELECT 1 FROM links l WHERE l.page_id = p.id)",
    "finished crawl without a frontier": "SELECT count(*) FROM crawls c WHERE c.status = 'finished' "
    "AND NOT EXISTS (SELECT 1 FROM frontier f WHERE f.crawl_id = c.id)",
    "page stored with an error": "SELECT count(*) FROM pages WHERE error IS NOT NULL",
    "URL stored twice": "SELECT count(*) - count(DISTINCT url) FROM pages",
}


def assert_consistent(db: Path) -> None:
    assert query(db, "PRAGMA integrity_check") == [("ok",)]
    assert query(db, "PRAGMA foreign_key_check") == []
    violations = {name: n for name, sql in INVARIANTS.items() if (n := query(db, sql)[0][0])}
    assert not violations


# -- the site's request counts, and a stalled server -------------------------------------------------


def hits(site: Site) -> Counter[str]:
    with urllib.request.urlopen(site.url + "_hits", timeout=10) as response:
        return Counter(json.load(response))


@dataclass
class Requests:
    """What the site served to one chain of runs of one crawl; `repeats` of each run after the first."""

    site: Site
    seen: set[str] = field(default_factory=set)
    before: Counter[str] = field(default_factory=Counter)
    repeats: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.before = hits(self.site)

    def run_ended(self) -> None:
        now = hits(self.site)
        served = now - self.before
        served.pop(ROBOTS, None)
        again = sum(n if path in self.seen else n - 1 for path, n in served.items())
        self.repeats.append(again)
        self.seen |= set(served)
        self.before = now


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a crawl killed mid-response breaks the pipe: expected here


class Stalled:
    """A page that answers only once released: a request to it stays in flight until then."""

    def __init__(self) -> None:
        self.release = threading.Event()
        stalled = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/robots.txt":
                    stalled.release.wait(60)
                body = b"<html><title>late</title></html>"
                self.send_response(404 if self.path == "/robots.txt" else 200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
