"""Seeds from arguments and files: comments, junk lines, missing files."""

from __future__ import annotations

from pathlib import Path

import pytest

from crawler.credentials import Credentials
from crawler.seeds import SeedError, read_seeds


def test_files_and_urls_with_comments_blanks_and_junk(tmp_path: Path) -> None:
    seeds = tmp_path / "seeds.txt"
    seeds.write_text("# a comment\n\nhttp://A.example/x\nnot a url\nftp://x/\n  https://b.example  \n")
    urls, warnings = read_seeds([str(seeds), "http://c.example/#frag", "http://a.example/x"])
    assert urls == ["http://a.example/x", "https://b.example/", "http://c.example/"]
    assert warnings == [
        f"{seeds}:4: 'not a url': not an http(s) URL, skipped",
        f"{seeds}:5: 'ftp://x/': not an http(s) URL, skipped",
    ]


def test_missing_file_and_nothing_valid(tmp_path: Path) -> None:
    with pytest.raises(SeedError, match="no such seeds file"):
        read_seeds([str(tmp_path / "missing.txt")])
    junk = tmp_path / "junk.txt"
    junk.write_bytes(b"\xff\xfe garbage\n")
    with pytest.raises(SeedError, match="no valid seed URLs"):
        read_seeds([str(junk)])
    with pytest.raises(SeedError) as bad_arguments:
        read_seeds(["http://exa mple.com/", "http://a.test:99999/"])
    assert str(bad_arguments.value) == (
        "no valid seed URLs given (argument: 'http://exa mple.com/': invalid host 'exa mple.com', and 1 more)"
    )


def test_the_shipped_python_seed_list_parses() -> None:
    urls, warnings = read_seeds([str(Path(__file__).parents[2] / "seeds" / "python.txt")])
    assert len(urls) == 13 and not warnings


def test_a_bom_is_not_part_of_the_first_url_and_bad_bytes_cost_one_line(tmp_path: Path) -> None:
    seeds = tmp_path / "seeds.txt"
    seeds.write_bytes(b"\xef\xbb\xbfhttp://a.example/\nhttp://b.example/caf\xe9\nhttp://c.example/\r\n")
    urls, warnings = read_seeds([str(seeds)])
    assert urls == ["http://a.example/", "http://c.example/"]
    assert warnings == [f"{seeds}:2: not UTF-8 (byte 0xe9 at column 21), skipped"]


def test_a_host_without_a_scheme_is_told_to_add_one(tmp_path: Path) -> None:
    with pytest.raises(SeedError) as host:
        read_seeds(["example.com"])
    assert str(host.value) == "no such seeds file: example.com; for a site, give its URL: https://example.com/"
    with pytest.raises(SeedError) as file:
        read_seeds([str(tmp_path / "seeds.txt")])
    assert str(file.value) == f"no such seeds file: {tmp_path / 'seeds.txt'}"


def test_a_seeds_credentials_are_kept_apart_and_the_seed_is_stored_without_them(tmp_path: Path) -> None:
    seeds = tmp_path / "seeds.txt"
    seeds.write_text("http://alice:s3cret@a.example/\nhttp://a.example/x\nhttp://bad:pw@exa mple/\n")
    credentials = Credentials()
    urls, warnings = read_seeds([str(seeds), "http://a.example/", "https://bob:pw@b.example/"], credentials)
    assert urls == ["http://a.example/", "http://a.example/x", "https://b.example/"]
    assert credentials.for_url("http://a.example/y") == ("alice", "s3cret")
    assert credentials.for_url("https://b.example/") == ("bob", "pw")
    assert credentials.for_url("http://exa%20mple/") is None and len(warnings) == 1
