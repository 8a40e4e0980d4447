"""`crawl --warc`: every HTTP exchange recorded at fetch time, on both engines, read back by two
independent readers (warcio and FastWARC) with every digest checked, and replayed against the database."""

from __future__ import annotations

import gzip
import hashlib
import signal
import sqlite3
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import run_cli
from crawl_jobs import Job, wait_for
from fastwarc.warc import ArchiveIterator as FastIterator
from fastwarc.warc import WarcRecordType
from servers import OK_HTML, serve, static
from warcio.archiveiterator import ArchiveIterator

from crawler.extract.html import extract
from crawler.warc import file_name, next_index

SITE = ("--pages", "30", "--fanout", "4")
QUIET = ("--quiet", "--parse-workers", "1")
MAX_SIZE = 20_000


def warc_files(base: Path) -> list[Path]:
    return [Path(file_name(str(base), i)) for i in range(next_index(str(base)))]


def records(path: Path) -> Iterator[dict]:
    """warcio's view of each record, every digest checked (a bad one raises)."""
    with path.open("rb") as stream:
        for record in ArchiveIterator(stream, check_digests="raise"):
            yield {"type": record.rec_type, "id": record.rec_headers.get_header("WARC-Record-ID"),
                   "headers": dict(record.rec_headers.headers), "http": record.http_headers,
                   "raw": record.raw_stream.read(), "uri": record.rec_headers.get_header("WARC-Target-URI")}


def fastwarc_view(path: Path) -> list[tuple[str, str, int | None]]:
    """FastWARC's view: (type, record id, HTTP status), after checking block and payload digests."""
    with path.open("rb") as stream:
        for record in FastIterator(stream, parse_http=False):
            assert record.verify_block_digest(consume=False), record.record_id
    seen = []
    with path.open("rb") as stream:
        for record in FastIterator(stream, parse_http=True):
            if record.record_type in (WarcRecordType.response, WarcRecordType.request):
                assert record.verify_payload_digest(consume=False), record.record_id
            status = record.http_headers.status_code if record.record_type == WarcRecordType.response else None
            seen.append((record.headers["WARC-Type"], record.record_id, status))
    return seen


def all_records(base: Path) -> list[dict]:
    return [r for path in warc_files(base) for r in records(path)]


def gzip_members_end_at_record_boundaries(path: Path) -> int:
    """Each gzip member holds exactly one whole record: decompress member by member."""
    data, members = path.read_bytes(), 0
    while data:
        inflater = zlib.decompressobj(31)
        record = inflater.decompress(data)
        assert record.startswith(b"WARC/1.1\r\n") and record.endswith(b"\r\n\r\n"), record[:40]
        data, members = inflater.unused_data, members + 1
    return members


@pytest.fixture
def warc(tmp_path: Path) -> Path:
    return tmp_path / "crawl.warc.gz"


def test_a_crawl_is_recorded_request_and_response_read_back_twice(site_factory, engine: str, db: Path,  # type: ignore[no-untyped-def]
                                                                  warc: Path) -> None:
    url = site_factory(*SITE).url
    result = run_cli(url, "--db", str(db), "--engine", engine, "--warc", str(warc),
                     "--warc-max-size", str(MAX_SIZE), *QUIET)
    assert result.returncode == 0, result.stderr
    files = warc_files(warc)
    assert len(files) >= 2 and files[0].name == "crawl-00000.warc.gz"
    assert all(f.stat().st_size >= MAX_SIZE for f in files[:-1])  # rotated once past the size, not before
    found = all_records(warc)
    for path in files:
        view = fastwarc_view(path)
        assert [(t, i) for t, i, _ in view] == [(r["type"], r["id"]) for r in records(path)]
        assert view[0][0] == "warcinfo" and gzip_members_end_at_record_boundaries(path) == len(view)
        assert all(status in (200, 404) for kind, _, status in view if kind == "response")
    requests = {r["id"]: r for r in found if r["type"] == "request"}
    responses = [r for r in found if r["type"] == "response"]
    assert len(requests) == len(responses) == 31  # robots.txt and 30 pages
    for response in responses:
        request = requests[response["headers"]["WARC-Concurrent-To"]]
        assert request["uri"] == response["uri"] and request["http"].protocol == "GET"
        assert request["headers"]["WARC-Date"] == response["headers"]["WARC-Date"]
        assert response["headers"]["WARC-IP-Address"] == "127.0.0.1"
        assert response["headers"]["WARC-Payload-Digest"].startswith("sha1:")
    assert url + "robots.txt" in {r["uri"] for r in responses}
    with sqlite3.connect(db) as conn:
        pages = conn.execute("SELECT url, text, content_hash FROM pages").fetchall()
    bodies = {r["uri"]: r for r in responses}
    assert {u for u, _, _ in pages} <= set(bodies)
    for page_url, text, content_hash in pages[:10]:  # replay: the recorded body decodes to the stored text
        body = bodies[page_url]["raw"]
        assert hashlib.sha1(body).hexdigest() == content_hash
        assert extract(page_url, body, bodies[page_url]["http"].get_header("Content-Type")).text == text


def test_bytes_as_received_redirect_hops_and_truncation(engine: str, db: Path, warc: Path) -> None:
    with serve() as server:
        links = "".join(f"<a href='{p}'>x</a>" for p in ("/encoded/gzip", "/redirect/2", "/big"))
        server.mount("/", static(f"<html><body>{links}</body></html>".encode()))
        server.mount("/big", static(b"<p>" + b"x" * 5000 + b"</p>"))
        result = run_cli(server.url("/"), "--db", str(db), "--engine", engine, "--warc", str(warc),
                         "--max-bytes", "2000", *QUIET)
        assert result.returncode == 0, result.stderr
    responses = {r["uri"]: r for r in all_records(warc) if r["type"] == "response"}
    encoded = responses[server.url("/encoded/gzip")]
    assert encoded["http"].get_header("Content-Encoding") == "gzip"
    assert encoded["raw"][:2] == b"\x1f\x8b" and gzip.decompress(encoded["raw"]) == OK_HTML
    hops = [server.url(p) for p in ("/redirect/2", "/redirect/1", "/ok")]
    assert all(hop in responses for hop in hops)
    assert responses[hops[0]]["http"].get_statuscode() == "302"
    big = responses[server.url("/big")]
    assert big["headers"]["WARC-Truncated"] == "length" and big["http"].get_statuscode() == "200"
    assert "WARC-Truncated" not in responses[server.url("/")]["headers"]


def test_a_new_run_appends_files_and_never_rewrites_one(site_factory, tmp_path: Path, warc: Path) -> None:
    url = site_factory(*SITE).url
    for n, name in enumerate(("a.db", "b.db")):
        result = run_cli(url, "--db", str(tmp_path / name), "--max-pages", "5", "--warc", str(warc), *QUIET)
        assert result.returncode == 0, result.stderr
        if n == 0:
            first = warc_files(warc)
            before = [p.read_bytes() for p in first]
    assert len(first) == 1 and len(warc_files(warc)) == 2
    assert [p.read_bytes() for p in first] == before
    assert next(r["type"] for r in records(warc_files(warc)[1])) == "warcinfo"


@pytest.mark.parametrize(("path", "index", "name"), [
    ("out.warc.gz", 0, "out-00000.warc.gz"), ("dir/out.warc.gz", 12, "dir/out-00012.warc.gz"),
    ("out", 1, "out-00001.warc.gz"), ("out.warc", 2, "out-00002.warc")])
def test_file_names(path: str, index: int, name: str) -> None:
    assert file_name(path, index) == name


def complete_members(data: bytes) -> tuple[int, int]:
    """(how many whole gzip members `data` starts with, where the last whole one ends)."""
    count, end = 0, 0
    while end < len(data):
        inflater = zlib.decompressobj(31)
        try:
            inflater.decompress(data[end:])
        except zlib.error:
            break
        if not inflater.eof:
            break
        end, count = len(data) - len(inflater.unused_data), count + 1
    return count, end


def test_a_sigkill_leaves_every_earlier_record_readable(site_factory, engine: str, db: Path,  # type: ignore[no-untyped-def]
                                                        warc: Path) -> None:
    url = site_factory("--pages", "3000", "--fanout", "8").url
    job = Job(url, "--db", str(db), "--engine", engine, "--warc", str(warc), *QUIET)
    first = Path(file_name(str(warc), 0))
    wait_for(lambda: first.exists() and first.stat().st_size > 100_000, "100 KB of WARC", job)
    job.signal(signal.SIGKILL, group=True)
    assert job.wait(timeout=30) == -signal.SIGKILL
    data = first.read_bytes()
    members, end = complete_members(data)
    assert members > 20 and len(data) - end < 64 * 1024  # at most one record cut short
    kept = first.with_name("kept.warc.gz")
    kept.write_bytes(data[:end])
    read = list(records(kept))  # every digest checked
    assert len(read) == members and read[0]["type"] == "warcinfo"


def test_a_resumed_crawl_records_into_a_new_file(site_factory, db: Path, warc: Path) -> None:
    url = site_factory("--pages", "3000", "--fanout", "8").url
    job = Job(url, "--db", str(db), "--warc", str(warc), *QUIET)
    first = Path(file_name(str(warc), 0))
    wait_for(lambda: first.exists() and first.stat().st_size > 50_000, "50 KB of WARC", job)
    job.signal(signal.SIGINT, group=True)
    assert job.wait(timeout=30) == 130, job.stderr
    before = first.read_bytes()
    result = run_cli("--db", str(db), "--max-pages", "400", *QUIET)  # the saved --warc path is kept
    assert result.returncode == 0, result.stderr
    assert first.read_bytes() == before and len(warc_files(warc)) == 2
    assert sum(r["type"] == "response" for r in records(warc_files(warc)[1])) > 0
