"""crawler.credentials: userinfo taken from URLs by origin, percent-decoded; the first one wins."""

from __future__ import annotations

import pytest

from crawler.credentials import Credentials, userinfo
from crawler.urls import InvalidURL


@pytest.mark.parametrize(
    ("url", "found"),
    [
        ("http://alice:s3cret@example.com/", ("alice", "s3cret")),
        ("  http://alice:s3cret@example.com/\n", ("alice", "s3cret")),
        ("http://al%69ce:p%40ss%3Aword@example.com/", ("alice", "p@ss:word")),
        ("http://a:b@c@example.com/", ("a", "b@c")),  # the last "@" ends the userinfo
        ("http://alice@example.com/", ("alice", "")),
        ("http://:pw@example.com/", ("", "pw")),
        ("http://@example.com/", None),
        ("http://example.com/a@b", None),
        ("http://example.com/?q=a:b@c", None),
    ],
)
def test_userinfo(url: str, found: tuple[str, str] | None) -> None:
    assert userinfo(url) == found


def test_credentials_are_kept_by_origin_and_the_first_wins() -> None:
    credentials = Credentials()
    assert not credentials
    assert credentials.note("HTTP://alice:one@Example.COM:80/a") is True
    assert credentials.note("http://bob:two@example.com/b") is True  # the same origin: alice's stay
    assert credentials.note("http://example.com/c") is False
    assert credentials and credentials.for_url("http://example.com/x?y") == ("alice", "one")
    for other in ("https://example.com/", "http://example.com:8080/", "http://www.example.com/"):
        assert credentials.for_url(other) is None


def test_from_urls_wants_credentials_in_every_url() -> None:
    assert Credentials.from_urls(["https://a:b@h.test/"]).for_url("https://h.test/") == ("a", "b")
    with pytest.raises(InvalidURL, match="--auth 'https://h.test/': no user name or password"):
        Credentials.from_urls(["https://a:b@h.test/", "https://h.test/"])
    with pytest.raises(InvalidURL, match="^--auth 'ftp://a:b@h/': not an http"):
        Credentials.from_urls(["ftp://a:b@h/"])
