"""Credentials in seed URLs, on both engines: sent as basic auth to the seed's origin only, never stored.

A site on 127.0.0.1 answers 401 to any request without the right Authorization header; a second server
on the same host but another port (another origin) records every Authorization header it is sent.
"""

from __future__ import annotations

import base64
import gzip
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import run_cli
from servers import AdversarialServer, Route, redirect, serve, static

from crawler.settings import Settings
from crawler.store.sql import open_store

USER, PASSWORD = "alice", "s3cret-pa55"
TOKEN = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
QUIET = ("--quiet", "--parse-workers", "0")
ELSEWHERE = ("--allow-private",)  # the other origin is another port of 127.0.0.1, which seeds don't trust


@dataclass
class Sites:
    private: AdversarialServer  # needs the credentials
    other: AdversarialServer  # same host, another port: another origin
    refused: list[str] = field(default_factory=list)  # paths the private site answered 401
    sent_elsewhere: list[str] = field(default_factory=list)  # Authorization headers the other one got

    def seed(self, path: str = "/") -> str:
        return f"http://{USER}:{PASSWORD}@127.0.0.1:{self.private.port}{path}"


def guarded(sites: Sites, route: Route) -> Route:
    def check(h) -> None:  # type: ignore[no-untyped-def]
        if h.headers.get("Authorization") == f"Basic {TOKEN}":
            return route(h)
        sites.refused.append(h.path)
        return static(b"who are you?", 401, headers=[("WWW-Authenticate", 'Basic realm="x"')])(h)

    return check


def recorded(sites: Sites, route: Route) -> Route:
    def record(h) -> None:  # type: ignore[no-untyped-def]
        if "Authorization" in h.headers:
            sites.sent_elsewhere.append(h.headers["Authorization"])
        return route(h)

    return record


def page(*hrefs: str) -> Route:
    return static(("<title>t</title>" + "".join(f"<a href='{href}'>x</a>" for href in hrefs)).encode())


@contextmanager
def two_origins() -> Iterator[Sites]:
    with serve() as private, serve() as other:
        sites = Sites(private, other)
        elsewhere = f"http://127.0.0.1:{other.port}"
        with_credentials = f"http://mallory:wrong@127.0.0.1:{private.port}/b"  # a link's userinfo: dropped
        routes = {
            "/robots.txt": static(b"User-agent: *\nAllow: /\n", content_type="text/plain"),
            "/": page("/a", "/b", with_credentials, "/go", f"{elsewhere}/y"),
            "/a": page("/"), "/b": page("/a"), "/go": redirect(f"{elsewhere}/x"),
        }
        for path, route in routes.items():
            private.mount(path, guarded(sites, route))
        for path in ("/robots.txt", "/x", "/y"):
            other.mount(path, recorded(sites, page()))
        yield sites


def dump(db: Path) -> str:
    with closing(sqlite3.connect(db)) as conn:
        return "\n".join(conn.iterdump())


def pages(db: Path) -> list[tuple[str, int | None]]:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute("SELECT url, status FROM pages ORDER BY url").fetchall()


def assert_crawled(db: Path, sites: Sites) -> None:
    """Every page fetched once, the private ones with the credentials (the redirect to the other origin
    is followed in place or queued, as the other origin's robots.txt is known in time or not)."""
    private, other = (f"http://127.0.0.1:{server.port}" for server in (sites.private, sites.other))
    assert len(sites.other.hits("/x")) == len(sites.other.hits("/y")) == 1  # a redirect, a link
    found = dict(pages(db))
    assert found.pop(f"{private}/go") in (200, 302) and found.pop(f"{other}/x", 200) == 200
    assert found == {f"{private}/": 200, f"{private}/a": 200, f"{private}/b": 200, f"{other}/y": 200}


def assert_no_secret(text: str) -> None:
    assert PASSWORD not in text and TOKEN not in text and f"{USER}:" not in text and f"{USER}@" not in text


def test_seed_credentials_go_to_their_origin_only_and_are_never_stored(engine: str, db: Path, tmp_path: Path
                                                                       ) -> None:
    with two_origins() as sites:
        base = f"http://127.0.0.1:{sites.private.port}"
        result = run_cli(sites.seed(), f"{base}/a", "--engine", engine, "--db", str(db),
                         "--warc", str(tmp_path / "w.warc.gz"), *ELSEWHERE, *QUIET)
        assert result.returncode == 0, result.stderr
        assert sites.refused == []
        assert sites.sent_elsewhere == []
        assert_crawled(db, sites)
    assert_no_secret(dump(db))
    warc = b"".join(gzip.decompress(f.read_bytes()) for f in sorted(tmp_path.glob("w-*.warc.gz"))).decode()
    assert_no_secret(warc)
    assert "Authorization: [redacted]" in warc


def test_a_resume_is_given_the_credentials_with_auth(engine: str, db: Path) -> None:
    with two_origins() as sites:
        base = f"http://127.0.0.1:{sites.private.port}"
        store = open_store(str(db))
        try:  # an unfinished crawl, as an interrupted one is: no credentials in it anywhere
            store.start_crawl([f"{base}/"], Settings(db=str(db), allow_private=True).to_json())
        finally:
            store.close()
        result = run_cli("--db", str(db), "--engine", engine, "--auth", sites.seed("/anything"), *QUIET)
        assert result.returncode == 0, result.stderr
        assert sites.refused == [] and sites.sent_elsewhere == []
        assert_crawled(db, sites)
    assert_no_secret(dump(db))


@pytest.mark.parametrize(("auth", "message"), [("http://127.0.0.1:1/", "no user name or password"),
                                               ("ftp://a:b@h/", "not an http(s) URL")])
def test_bad_auth_urls_are_one_line_and_exit_2(db: Path, auth: str, message: str) -> None:
    result = run_cli("http://127.0.0.1:1/", "--auth", auth, "--db", str(db), *QUIET)
    assert result.returncode == 2 and message in result.stderr and len(result.stderr.splitlines()) == 1
    assert not db.exists()
