"""`crawl changes`: new, gone, changed, moved and unchanged URLs between two crawls of a changing site."""

from __future__ import annotations

import json

from conftest import run_cli
from servers import AdversarialServer, redirect, serve, static

pytest_plugins = ["conftest_db"]


def page(body: str) -> bytes:
    return f"<html><title>{body}</title><body>{body}</body></html>".encode()


def site(server: AdversarialServer, version: int) -> None:
    """Version 1, then 2: /a stays, /b changes, /c goes (404), /r redirects elsewhere, /d is new."""
    links = ["/a", "/b", "/c", "/r"] + (["/d"] if version == 2 else [])
    server.mount("/", static(page(" ".join(f"<a href='{link}'>x</a>" for link in links))))
    server.mount("/a", static(page("same")))
    server.mount("/b", static(page(f"version {version}")))
    server.mount("/c", static(page("here")) if version == 1 else static(b"", 404))
    server.mount("/r", redirect("/x" if version == 1 else "/y"))
    for path in ("/d", "/x", "/y"):
        server.mount(path, static(page(path)))


def crawl(server: AdversarialServer, db: str, *command: str) -> None:
    result = run_cli(*command, "--db", db, "--quiet", "--parse-workers", "0", "--engine", "threads")
    assert result.returncode == 0, result.stderr


def test_changes_between_two_crawls(any_db: str) -> None:
    with serve() as server:
        site(server, 1)
        crawl(server, any_db, server.url("/"))
        site(server, 2)
        crawl(server, any_db, "recrawl")
    result = run_cli("changes", "--db", any_db, "--format", "json")
    assert result.returncode == 0, result.stderr
    change = {"/" + row["url"].split("/", 3)[3]: row["change"] for row in json.loads(result.stdout)}
    assert change == {"/": "changed", "/a": "unchanged", "/b": "changed", "/c": "gone", "/r": "moved",
                      "/d": "new"}  # (/r's row stands for where it led, followed in place: /x, then /y)
    table = run_cli("changes", "--db", any_db, "--crawl", "2", "--since", "1")
    assert table.stdout.splitlines()[-1] == "crawl 2 since crawl 1: new 1, gone 1, changed 2, moved 1, unchanged 1"


def test_no_crawl_to_compare_with_is_one_line(sqlite_db: str) -> None:
    with serve() as server:
        site(server, 1)
        crawl(server, sqlite_db, server.url("/"))
    result = run_cli("changes", "--db", sqlite_db)
    assert result.returncode == 2
    assert result.stderr == "crawl: no earlier crawl with the seeds of crawl 1: give --since ID\n"
