"""What the crawl presents to servers, through the real CLI on both engines: --header, --proxy,
--ca-bundle/--insecure (a local https server with a trustme CA), cookies (--cookies/--no-cookies, a jar
per host, bounded), and the refusals up front (a bad --user-agent, --header, --proxy, --ca-bundle).
No secret given in --header or --proxy is stored with the crawl."""

from __future__ import annotations

import sqlite3
import ssl
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import trustme
from conftest import run_cli

PAGES = 30  # pages of the cookie site: each sets a new cookie


@dataclass
class Seen:
    """What the server saw: (request line target, headers) per request."""

    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, target: str, headers: dict[str, str]) -> None:
        with self.lock:
            self.requests.append((target, headers))

    def headers_of(self, suffix: str) -> list[dict[str, str]]:
        with self.lock:
            return [h for target, h in self.requests if target.split("?")[0].endswith(suffix)]


def handler(seen: Seen) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        """A site of PAGES pages in a chain; /p/N sets cookie cN (and / a session cookie). As a proxy it
        gets absolute targets and serves them all the same."""

        def do_GET(self) -> None:
            seen.add(self.path, {k.lower(): v for k, v in self.headers.items()})
            path = "/" + self.path.split("://", 1)[-1].split("/", 1)[-1] if "://" in self.path else self.path
            body, cookies = b"", []
            if path == "/robots.txt":
                body = b"User-agent: *\nAllow: /\n"
            elif path == "/":
                body, cookies = b'<a href="/p/1">1</a>', ["session=s1; Path=/"]
            elif path.startswith("/p/"):
                n = int(path[3:])
                body = f'<a href="/p/{n + 1}">next</a>'.encode() if n < PAGES else b"end"
                cookies = [f"c{n}={'x' * 400}; Path=/"]
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/plain" if path == "/robots.txt" else "text/html")
            for cookie in cookies:
                self.send_header("Set-Cookie", cookie)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@contextmanager
def site(context: ssl.SSLContext | None = None) -> Iterator[tuple[str, Seen]]:
    seen = Seen()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(seen))
    server.daemon_threads = True
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        scheme = "https" if context else "http"
        yield f"{scheme}://localhost:{server.server_address[1]}/", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def crawl(*args: str) -> tuple[int, str]:
    result = run_cli(*args, "--quiet", "--parse-workers", "1")
    return result.returncode, result.stderr


def statuses(db: Path) -> list[tuple[str, int | None, str | None]]:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute("SELECT url, status, error FROM pages ORDER BY url").fetchall()


def test_cookies_are_sent_back_bounded_and_the_same_on_both_engines(tmp_path: Path, engine: str) -> None:
    with site() as (url, seen):
        code, err = crawl(url, "--db", str(tmp_path / "c.db"), "--engine", engine, "--per-host", "1")
        assert code == 0, err
        sent = [h.get("cookie", "") for h in seen.headers_of("")]
    pages = [h.get("cookie", "") for h in seen.headers_of("/p/30")]
    assert pages and "session=s1" in pages[0] and "c1=" in pages[0]  # kept across requests and threads
    assert max(len(c) for c in sent) <= 8 * 1024  # 30 cookies of 400 bytes: the jar stops at 8 KiB
    assert "c29=" not in pages[0]  # the later ones were not kept; the first (the session's) stayed


def test_no_cookies_sends_none(tmp_path: Path, engine: str) -> None:
    with site() as (url, seen):
        code, err = crawl(url, "--db", str(tmp_path / "c.db"), "--engine", engine, "--no-cookies",
                          "--max-pages", "5")
        assert code == 0, err
        assert all("cookie" not in h for h in seen.headers_of(""))


def test_headers_go_with_every_request_and_secrets_are_not_stored(tmp_path: Path, engine: str) -> None:
    db = tmp_path / "c.db"
    with site() as (url, seen):
        code, err = crawl(url, "--db", str(db), "--engine", engine, "--max-pages", "3",
                          "--header", "X-Team: crawl-tests", "--header", "Authorization: Bearer s3cret")
        assert code == 0, err
        every = seen.headers_of("")
        assert every and seen.headers_of("/robots.txt")
        assert all(h.get("x-team") == "crawl-tests" and h.get("authorization") == "Bearer s3cret" for h in every)
    with closing(sqlite3.connect(db)) as conn:
        (settings,) = conn.execute("SELECT settings FROM crawls").fetchone()
    assert "s3cret" not in settings and "X-Team: crawl-tests" in settings
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE crawls SET status = 'interrupted'")
    conn.close()
    code, err = crawl("--db", str(db))
    assert code == 2 and "give every --header again" in err and "Traceback" not in err


def test_a_proxy_gets_every_request_and_its_password_is_not_stored(tmp_path: Path, engine: str) -> None:
    db = tmp_path / "c.db"
    with site() as (proxy, seen):
        proxy_url = proxy.replace("http://", "http://user:pw123@").rstrip("/")
        target = "http://127.0.0.2:9/"  # nothing listens there: only the proxy can answer
        code, err = crawl(target, "--db", str(db), "--engine", engine, "--max-pages", "3", "--proxy", proxy_url)
        assert code == 0, err
        targets = [t for t, _ in seen.requests]
    assert "http://127.0.0.2:9/robots.txt" in targets and "http://127.0.0.2:9/" in targets
    assert all(h.get("proxy-authorization", "").startswith("Basic ") for h in seen.headers_of(""))
    assert statuses(db)[0][1] == 200
    with closing(sqlite3.connect(db)) as conn:
        (settings,) = conn.execute("SELECT settings FROM crawls").fetchone()
    assert "pw123" not in settings


def test_https_with_a_ca_bundle_or_insecure(tmp_path: Path, engine: str) -> None:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    with site(context) as (url, _):
        untrusted = tmp_path / "untrusted.db"
        code, err = crawl(url, "--db", str(untrusted), "--engine", engine, "--max-pages", "1", "--ignore-robots")
        assert code == 4, err  # no page got an answer
        assert statuses(untrusted)[0][2].startswith("ssl: ")
        for options in (("--ca-bundle", str(bundle)), ("--insecure",)):
            db = tmp_path / f"{options[0].strip('-')}.db"
            code, err = crawl(url, "--db", str(db), "--engine", engine, "--max-pages", "2", *options)
            assert code == 0, err
            assert statuses(db)[0][1:] == (200, None), statuses(db)
            assert ("TLS certificates are not checked" in err) == (options == ("--insecure",))
            assert "InsecureRequestWarning" not in err


def test_the_environments_proxy_variables_are_named_not_used(tmp_path: Path) -> None:
    with site() as (url, seen):
        env = {"HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}
        result = run_cli(url, "--db", str(tmp_path / "c.db"), "--max-pages", "1", "--quiet", env=env)
        assert result.returncode == 0, result.stderr
        assert "HTTPS_PROXY is set but not used; give --proxy to use it" in result.stderr
        assert seen.headers_of("/")


def test_requests_ca_bundle_is_trusted_as_requests_trusts_it(tmp_path: Path) -> None:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    with site(context) as (url, _):
        db = tmp_path / "c.db"
        result = run_cli(url, "--db", str(db), "--max-pages", "1", "--quiet", "--ignore-robots",
                         env={"REQUESTS_CA_BUNDLE": str(bundle), "CURL_CA_BUNDLE": ""})
        assert result.returncode == 0, result.stderr
        assert statuses(db)[0][1:] == (200, None)
    missing = run_cli(url, "--db", str(tmp_path / "m.db"), env={"REQUESTS_CA_BUNDLE": str(tmp_path / "no.pem")})
    assert missing.returncode == 2 and "REQUESTS_CA_BUNDLE" in missing.stderr


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (("--user-agent", "bot/1\r\nX-Injected: 1"), "--user-agent"),
        (("--user-agent", " "), "--user-agent"),
        (("--header", "NoColon"), "expected 'Name: value'"),
        (("--header", "Bad Name: v"), "expected 'Name: value'"),
        (("--header", "X-A: v\nX-B: w"), "line break"),
        (("--proxy", "127.0.0.1:3128"), "--proxy"),
        (("--ca-bundle", "/no/such/ca.pem"), "--ca-bundle"),
    ],
)
def test_bad_client_options_are_refused_before_anything_is_written(
    tmp_path: Path, option: tuple[str, str], message: str
) -> None:
    db = tmp_path / "c.db"
    result = run_cli("http://127.0.0.1:9/", "--db", str(db), *option)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not db.exists()
