"""crawler.extract.charset: BOM > header > <meta> > valid UTF-8 > detection > UTF-8, with WHATWG label aliases."""

from __future__ import annotations

import codecs
import random

import pytest

from crawler.extract.charset import _WHATWG_LABELS, decode_html, header_charset, lookup, meta_charset

RUSSIAN = "Съешь же ещё этих мягких французских булок, да выпей же чаю. Широкая электрификация южных губерний."
JAPANESE = "いろはにほへと　ちりぬるを。日本語のウェブページです。東京都渋谷区、株式会社サンプル。"
CHINESE = "中文网页的标题。我们的网站提供新闻、体育和财经信息。欢迎访问！"


def page(body: str, head: str = "") -> str:
    return f"<!DOCTYPE html><html><head>{head}<title>t</title></head><body><p>{body}</p></body></html>"


@pytest.mark.parametrize(
    ("label", "codec"),
    [
        ("utf-8", "utf-8"),
        ("UTF8", "utf-8"),
        (" Utf-8 ", "utf-8"),
        ("iso-8859-1", "cp1252"),  # WHATWG: latin1 labels mean windows-1252
        ("latin1", "cp1252"),
        ("ISO_8859-1", "cp1252"),
        ("us-ascii", "cp1252"),
        ("ascii", "cp1252"),
        ("latin_1", "cp1252"),  # Python's alias, mapped through the WHATWG table
        ("windows-1251", "cp1251"),
        ("gb2312", "gb18030"),  # GBK's superset decodes everything labelled gb2312 or gbk
        ("GBK", "gb18030"),
        ("euc-cn", "gb18030"),
        ("gb18030", "gb18030"),
        ("Shift_JIS", "cp932"),  # WHATWG's Shift_JIS decoder is Microsoft's cp932
        ("sjis", "cp932"),
        ("x-sjis", "cp932"),
        ("windows-31j", "cp932"),
        ("euc-kr", "cp949"),
        ("ks_c_5601-1987", "cp949"),
        ("big5", "big5hkscs"),
        ("euc-jp", "euc_jp"),
        ("iso-8859-9", "cp1254"),
        ("tis-620", "cp874"),
        ("koi8-r", "koi8-r"),
        ("utf-16", "utf-16-le"),
        ("cp437", "cp437"),  # not a web label, but a text codec Python knows
    ],
)
def test_lookup_maps_labels_like_browsers(label: str, codec: str) -> None:
    assert lookup(label) == codec


@pytest.mark.parametrize("label", ["utf-7", "base64", "rot13", "idna", "x-bogus", "", "x-user-defined"])
def test_lookup_refuses_what_is_no_web_charset(label: str) -> None:
    assert lookup(label) is None


def test_label_table_names_canonical_python_codecs() -> None:
    assert all(codecs.lookup(codec).name == codec for codec in _WHATWG_LABELS)


@pytest.mark.parametrize(
    ("header", "codec"),
    [
        ("text/html; charset=UTF-8", "utf-8"),
        ('text/html; charset="windows-1251"', "cp1251"),
        ("text/html;charset='gbk';q=1", "gb18030"),
        ("text/html; CHARSET = Shift_JIS", "cp932"),
        ("text/html", None),
        ("text/html; charset=", None),
        ("text/html; charset=nonsense", None),
        (None, None),
    ],
)
def test_header_charset(header: str | None, codec: str | None) -> None:
    assert header_charset(header) == codec


def test_gbk_declared_in_header() -> None:
    body = page(CHINESE).encode("gbk")
    assert decode_html(body, "text/html; charset=GBK") == (page(CHINESE), "gb18030")


def test_gb2312_label_decodes_gbk_only_characters() -> None:
    text = page("朱镕基")  # 镕 is in GBK, not in GB2312: pages labelled gb2312 use it anyway
    assert decode_html(text.encode("gbk"), "text/html; charset=gb2312") == (text, "gb18030")


def test_shift_jis_label_decodes_microsoft_extensions() -> None:
    text = page(JAPANESE + "①②Ⅲ㈱")  # NEC/IBM extensions: in cp932, not in strict shift_jis
    body = text.encode("cp932")
    assert decode_html(body, "text/html; charset=Shift_JIS") == (text, "cp932")


def test_windows_1251_from_meta_http_equiv() -> None:
    text = page(RUSSIAN, '<meta http-equiv="Content-Type" content="text/html; charset=windows-1251">')
    assert decode_html(text.encode("cp1251"), "text/html") == (text, "cp1251")


def test_meta_charset_attribute() -> None:
    text = page(JAPANESE, "<meta charset='shift_jis'>")
    assert decode_html(text.encode("cp932"), None) == (text, "cp932")


def test_meta_content_before_http_equiv_and_unquoted() -> None:
    head = "<META content=text/html;charset=KOI8-R HTTP-EQUIV=Content-Type>"
    assert meta_charset(page(RUSSIAN, head).encode("koi8-r")) == "koi8-r"


def test_header_beats_meta() -> None:
    text = page(RUSSIAN, '<meta charset="iso-8859-1">')
    assert decode_html(text.encode("cp1251"), "text/html; charset=windows-1251") == (text, "cp1251")


def test_unknown_header_label_falls_through_to_meta() -> None:
    text = page(RUSSIAN, '<meta charset="windows-1251">')
    assert decode_html(text.encode("cp1251"), "text/html; charset=x-unknown") == (text, "cp1251")


def test_latin1_declared_decodes_as_windows_1252() -> None:
    body = b"<p>\x93Smart quotes\x94 \x96 caf\xe9 \x80 5</p>"
    assert decode_html(body, "text/html; charset=ISO-8859-1") == ("<p>“Smart quotes” – café € 5</p>", "cp1252")


def test_meta_utf16_means_utf8() -> None:
    text = page("naïve", '<meta charset="utf-16">')
    assert decode_html(text.encode("utf-8"), None) == (text, "utf-8")


def test_commented_out_meta_is_ignored() -> None:
    text = page(RUSSIAN, '<!-- <meta charset="iso-8859-1"> --><meta charset="windows-1251">')
    assert meta_charset(text.encode("cp1251")) == "cp1251"


def test_meta_after_4096_bytes_is_not_seen() -> None:
    body = b"<html><head>" + b" " * 5000 + b'<meta charset="windows-1251"></head></html>'
    assert meta_charset(body) is None


def test_undeclared_utf8_fast_path() -> None:
    text = page("café, naïve, 日本語, emoji 🙂")
    assert decode_html(text.encode("utf-8"), None) == (text, "utf-8")
    assert decode_html(text.encode("utf-8"), "text/html") == (text, "utf-8")


@pytest.mark.parametrize(
    ("bom", "codec"),
    [(codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")],
)
def test_bom_beats_header_and_is_removed(bom: bytes, codec: str) -> None:
    text = page("Grüße 🙂", '<meta charset="windows-1252">')
    body = bom + text.encode(codec)
    assert decode_html(body, "text/html; charset=windows-1251") == (text, codec)


def test_undeclared_legacy_encodings_are_detected() -> None:
    russian = page(" ".join([RUSSIAN] * 20))
    japanese = page(" ".join([JAPANESE] * 20))
    assert decode_html(russian.encode("cp1251"), None)[0] == russian
    assert decode_html(japanese.encode("cp932"), None)[0] == japanese


def test_wrong_declaration_replaces_instead_of_raising() -> None:
    text, codec = decode_html("日本語".encode("cp932") + b"\xff\xfe\x81", "text/html; charset=utf-8")
    assert codec == "utf-8"
    assert "\ufffd" in text


@pytest.mark.parametrize("header", [None, "text/html; charset=utf-8", "text/html; charset=shift_jis"])
def test_garbage_never_raises(header: str | None) -> None:
    garbage = random.Random(1).randbytes(50_000)
    text, codec = decode_html(garbage, header)
    assert isinstance(text, str)
    assert codecs.lookup(codec)


def test_empty_body() -> None:
    assert decode_html(b"", None) == ("", "utf-8")
    assert decode_html(b"", "text/html; charset=gbk") == ("", "gb18030")
