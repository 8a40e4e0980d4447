"""WARC: the recorder of HTTP exchanges as they are fetched (`crawl --warc FILE.warc.gz`), ISO 28500
WARC/1.1 written with warcio, the way Heritrix and wget --warc-file record.

A file opens with a `warcinfo` record; each exchange (every attempt, robots.txt and every redirect hop
included) is a `request` record (the request line and headers sent, an Authorization value `[redacted]`:
no password is written) and a `response` record (status
line, headers and the body bytes as they came off the connection: Content-Encoding intact; the chunked
transfer coding is removed by http.client, so a `Transfer-Encoding` header is kept as
`X-Crawler-Transfer-Encoding`), tied by `WARC-Concurrent-To`, with `WARC-IP-Address`, block and payload
digests, and `WARC-Truncated` (`length` past --max-bytes, `time` past the deadline, `disconnect`).

One gzip member per record, flushed as written, so a SIGKILL leaves every earlier record readable.
Files are FILE-00000.warc.gz, FILE-00001.warc.gz, ...: a new one when the current one reaches
`max_size`, and a new run (a resume) starts after the last file there, never reopening one.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import re
import socket
import threading
from collections.abc import Callable
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import requests
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from crawler import __version__

Finish = Callable[[str | None], None]  # called with the truncation reason (or None) once the body is read
RENAMED = {"transfer-encoding": "X-Crawler-Transfer-Encoding"}  # framing that is no longer in the bytes


def file_name(path: str, index: int) -> str:
    """FILE.warc.gz, 3 -> FILE-00003.warc.gz (the suffix kept; `.warc.gz` added when there is none)."""
    match = re.match(r"(.*?)((\.warc)?(\.gz)?)$", path)
    stem, suffix = (match.group(1), match.group(2)) if match else (path, "")
    return f"{stem}-{index:05d}{suffix or '.warc.gz'}"


def next_index(path: str) -> int:
    """The index after the last file of `path` that exists (0 when there is none)."""
    index = 0
    while os.path.exists(file_name(path, index)):
        index += 1
    return index


class Tee:
    """Stands in for a response's file object, keeping the bytes urllib3 reads from it."""

    def __init__(self, fp: Any) -> None:
        self._fp, self.chunks = fp, []  # type: tuple[Any, list[bytes]]

    def read(self, *args: Any) -> bytes:
        return self._keep(self._fp.read(*args))

    def read1(self, *args: Any) -> bytes:
        return self._keep(self._fp.read1(*args))

    def _keep(self, data: bytes) -> bytes:
        self.chunks.append(data)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fp, name)


def request_head(request: requests.PreparedRequest) -> tuple[str, list[tuple[str, str]]]:
    """The request line and headers as http.client sends them (Host first), but an Authorization
    header's credentials, which a WARC file does not keep (it says `[redacted]`: auth was sent)."""
    parts = urlsplit(request.url or "")
    sent = ((k, "[redacted]" if k.lower() == "authorization" else v) for k, v in request.headers.items())
    headers = [("Host", parts.netloc), *((k, v) for k, v in sent if k.lower() != "host")]
    return f"{request.method} {request.path_url} HTTP/1.1", headers


def warc_date() -> str:
    """Now, as WARC/1.1 dates are written (UTC, microseconds)."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def peer_address(raw: Any) -> str | None:
    sock = getattr(getattr(raw, "_connection", None), "sock", None)
    try:
        return str(sock.getpeername()[0]) if sock is not None else None
    except OSError:
        return None


class Recorder:
    """Writes exchanges to rotating WARC files; safe from any thread or greenlet."""

    def __init__(self, path: str, max_size: int, robots: str = "obey") -> None:
        self.path, self.max_size, self.robots = path, max_size, robots
        self._lock = threading.Lock()
        self._index = next_index(path)
        self._file: BinaryIO | None = None
        self._writer: WARCWriter | None = None

    def tap(self, response: requests.Response) -> Finish:
        """Start keeping the bytes of `response` (before its body is read); the Finish records it."""
        raw = response.raw
        tee, ip, date = Tee(raw._fp), peer_address(raw), warc_date()
        raw._fp = tee
        status_line = f"{response.status_code} {raw.reason or ''}".strip()
        version = {10: "HTTP/1.0"}.get(raw.version, "HTTP/1.1")
        headers = [(RENAMED.get(k.lower(), k), v) for k, v in raw.headers.items()]
        return lambda truncated: self.write(response.request, (version, status_line, headers),
                                            b"".join(tee.chunks), {"WARC-Date": date, "WARC-IP-Address": ip,
                                                                   "WARC-Truncated": truncated})

    def write(self, request: requests.PreparedRequest, head: tuple[str, str, list[tuple[str, str]]],
              body: bytes, fields: dict[str, str | None]) -> None:
        """A request record and its response record, in one go; `fields` are WARC headers of both (the
        response's alone for WARC-Truncated), None ones left out."""
        with self._lock:
            writer = self._open()
            url = request.url or ""
            extra = {k: v for k, v in fields.items() if v}
            line, headers = request_head(request)
            sent = writer.create_warc_record(url, "request", payload=io.BytesIO(b""), length=0,
                                             http_headers=StatusAndHeaders(line, headers, is_http_request=True),
                                             warc_headers_dict={k: v for k, v in extra.items() if k != "WARC-Truncated"})
            protocol, status, received = head
            got = writer.create_warc_record(url, "response", payload=io.BytesIO(body), length=len(body),
                                            http_headers=StatusAndHeaders(status, received, protocol=protocol),
                                            warc_headers_dict=extra | {
                                                "WARC-Concurrent-To": sent.rec_headers.get_header("WARC-Record-ID")})
            writer.write_record(sent)
            writer.write_record(got)
            self._flush_or_rotate()

    def _open(self) -> WARCWriter:
        if self._writer is None:
            name = file_name(self.path, self._index)
            self._file = open(name, "xb")  # noqa: SIM115 (closed on rotation or close); never an old file
            self._writer = WARCWriter(self._file, gzip=True, warc_version="1.1")
            info = {"software": f"crawler/{__version__} (warcio)", "format": "WARC File Format 1.1",
                    "conformsTo": "https://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.1/",
                    "hostname": socket.gethostname(), "robots": self.robots}
            self._writer.write_record(self._writer.create_warcinfo_record(os.path.basename(name), info))
        return self._writer

    def _flush_or_rotate(self) -> None:
        assert self._file is not None
        self._file.flush()
        if self._file.tell() >= self.max_size:
            self._close_file()
            self._index += 1

    def _close_file(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file, self._writer = None, None

    def close(self) -> None:
        with self._lock:
            self._close_file()


def check_path(path: str | None) -> None:
    """Raise ValueError when WARC files cannot be created at `path` (checked before the crawl starts)."""
    if path is None:
        return
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"--warc {path}: no such directory {folder}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"--warc {path}: cannot write to directory {folder}")


def open_recorder(path: str | None, max_size: int, ignore_robots: bool) -> Recorder | None:
    return Recorder(path, max_size, "ignore" if ignore_robots else "obey") if path else None
