"""Charset: owns turning HTML bytes into text.

The order follows WHATWG HTML "determining the character encoding", simplified for a crawler:
byte order mark -> charset= of the HTTP Content-Type header -> a <meta> charset in the first 4096 bytes
-> valid UTF-8 -> charset_normalizer detection -> UTF-8. Labels are read through the WHATWG Encoding
Standard label table, so a label decodes as browsers decode it (iso-8859-1, latin1 and us-ascii as
windows-1252, gb2312 and gbk as gb18030, shift_jis as cp932, euc-kr as cp949, big5 as big5hkscs);
other labels Python knows as a text codec are accepted too. Decoding uses errors="replace": garbage
never raises. The returned name is the Python codec actually used, so body.decode(name) repeats it.
Known difference from browsers: the five bytes windows-1252 leaves undefined (0x81, 0x8D, 0x8F, 0x90,
0x9D) become U+FFFD here, not C1 controls.
"""

from __future__ import annotations

import codecs
import re

import charset_normalizer

_SNIFF_BYTES = 4096  # how far to look for a <meta> charset
_DETECT_BYTES = 16384  # how much charset_normalizer sees

# Python codec -> the WHATWG labels that decode with it (Encoding Standard, "Encodings" table).
# Not in the table (so Python's own codec, if any, is used): iso-2022-kr, hz-gb-2312 and x-user-defined.
_WHATWG_LABELS: dict[str, str] = {
    "utf-8": "unicode-1-1-utf-8 unicode11utf8 unicode20utf8 utf-8 utf8 x-unicode20utf8",
    "cp866": "866 cp866 csibm866 ibm866",
    "iso8859-2": "csisolatin2 iso-8859-2 iso-ir-101 iso8859-2 iso88592 iso_8859-2 iso_8859-2:1987 l2 latin2",
    "iso8859-3": "csisolatin3 iso-8859-3 iso-ir-109 iso8859-3 iso88593 iso_8859-3 iso_8859-3:1988 l3 latin3",
    "iso8859-4": "csisolatin4 iso-8859-4 iso-ir-110 iso8859-4 iso88594 iso_8859-4 iso_8859-4:1988 l4 latin4",
    "iso8859-5": "csisolatincyrillic cyrillic iso-8859-5 iso-ir-144 iso8859-5 iso88595 iso_8859-5 "
    "iso_8859-5:1988",
    "iso8859-6": "arabic asmo-708 csiso88596e csiso88596i csisolatinarabic ecma-114 iso-8859-6 "
    "iso-8859-6-e iso-8859-6-i iso-ir-127 iso8859-6 iso88596 iso_8859-6 iso_8859-6:1987",
    "iso8859-7": "csisolatingreek ecma-118 elot_928 greek greek8 iso-8859-7 iso-ir-126 iso8859-7 "
    "iso88597 iso_8859-7 iso_8859-7:1987 sun_eu_greek",
    "iso8859-8": "csiso88598e csisolatinhebrew hebrew iso-8859-8 iso-8859-8-e iso-ir-138 iso8859-8 "
    "iso88598 iso_8859-8 iso_8859-8:1988 visual csiso88598i iso-8859-8-i logical",
    "iso8859-10": "csisolatin6 iso-8859-10 iso-ir-157 iso8859-10 iso885910 l6 latin6",
    "iso8859-13": "iso-8859-13 iso8859-13 iso885913",
    "iso8859-14": "iso-8859-14 iso8859-14 iso885914",
    "iso8859-15": "csisolatin9 iso-8859-15 iso8859-15 iso885915 iso_8859-15 l9",
    "iso8859-16": "iso-8859-16",
    "koi8-r": "cskoi8r koi koi8 koi8-r koi8_r",
    "koi8-u": "koi8-ru koi8-u",
    "mac-roman": "csmacintosh mac macintosh x-mac-roman",
    "cp874": "dos-874 iso-8859-11 iso8859-11 iso885911 tis-620 windows-874",
    "cp1250": "cp1250 windows-1250 x-cp1250",
    "cp1251": "cp1251 windows-1251 x-cp1251",
    "cp1252": "ansi_x3.4-1968 ascii cp1252 cp819 csisolatin1 ibm819 iso-8859-1 iso-ir-100 iso8859-1 "
    "iso88591 iso_8859-1 iso_8859-1:1987 l1 latin1 us-ascii windows-1252 x-cp1252",
    "cp1253": "cp1253 windows-1253 x-cp1253",
    "cp1254": "cp1254 csisolatin5 iso-8859-9 iso-ir-148 iso8859-9 iso88599 iso_8859-9 iso_8859-9:1989 "
    "l5 latin5 windows-1254 x-cp1254",
    "cp1255": "cp1255 windows-1255 x-cp1255",
    "cp1256": "cp1256 windows-1256 x-cp1256",
    "cp1257": "cp1257 windows-1257 x-cp1257",
    "cp1258": "cp1258 windows-1258 x-cp1258",
    "mac-cyrillic": "x-mac-cyrillic x-mac-ukrainian",
    "gb18030": "chinese csgb2312 csiso58gb231280 gb2312 gb_2312 gb_2312-80 gbk iso-ir-58 x-gbk gb18030",
    "big5hkscs": "big5 big5-hkscs cn-big5 csbig5 x-x-big5",
    "euc_jp": "cseucpkdfmtjapanese euc-jp x-euc-jp",
    "iso2022_jp": "csiso2022jp iso-2022-jp",
    "cp932": "csshiftjis ms932 ms_kanji shift-jis shift_jis sjis windows-31j x-sjis",
    "cp949": "cseuckr csksc56011987 euc-kr iso-ir-149 korean ks_c_5601-1987 ks_c_5601-1989 ksc5601 "
    "ksc_5601 windows-949",
    "utf-16-be": "unicodefffe utf-16be",
    "utf-16-le": "csunicode iso-10646-ucs-2 ucs-2 unicode unicodefeff utf-16 utf-16le",
}
_LABELS: dict[str, str] = {label: codec for codec, labels in _WHATWG_LABELS.items() for label in labels.split()}

# Python text codecs that are not web charsets (utf-7 is refused by browsers for safety).
_NOT_CHARSETS = frozenset(
    {"utf-7", "idna", "punycode", "unicode-escape", "raw-unicode-escape", "undefined", "mbcs", "oem"}
)

_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
_HEADER_CHARSET = re.compile(r"""charset\s*=\s*["']?\s*([^\s"';,]+)""", re.IGNORECASE)
_META_CHARSET = re.compile(rb"""<meta\s[^>]*?charset\s*=\s*["']?\s*([a-z0-9_.:-]+)""", re.IGNORECASE)
_COMMENT = re.compile(rb"<!--.*?-->", re.DOTALL)


def decode_html(body: bytes, content_type_header: str | None) -> tuple[str, str]:
    """Decode an HTML body; return (text, the Python codec name used)."""
    for bom, bom_encoding in _BOMS:
        if body.startswith(bom):
            return _decode(body[len(bom) :], bom_encoding)
    encoding = header_charset(content_type_header) or meta_charset(body)
    if encoding:
        return _decode(body, encoding)
    try:
        return body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return _decode(body, detect(body) or "utf-8")


def lookup(label: str) -> str | None:
    """The Python codec for a charset label, WHATWG aliases first; None when it is no web charset."""
    label = label.strip().strip("\"'").lower()
    if label in _LABELS:
        return _LABELS[label]
    try:
        info = codecs.lookup(label)
    except LookupError:
        return None
    if not info._is_text_encoding or info.name in _NOT_CHARSETS:
        return None
    return _LABELS.get(info.name) or _LABELS.get(info.name.replace("_", "-")) or info.name


def header_charset(content_type_header: str | None) -> str | None:
    """The codec named by charset= in a Content-Type header value, if known."""
    match = _HEADER_CHARSET.search(content_type_header or "")
    return lookup(match.group(1)) if match else None


def meta_charset(body: bytes) -> str | None:
    """The codec named by a <meta> charset in the first 4096 bytes (comments skipped), if known."""
    head = body[:_SNIFF_BYTES]
    if b"<!--" in head:
        head = _COMMENT.sub(b"", head)
    match = _META_CHARSET.search(head)
    if not match:
        return None
    encoding = lookup(match.group(1).decode("ascii"))
    # WHATWG: a <meta> readable as ASCII cannot be UTF-16, it means UTF-8.
    return "utf-8" if encoding in ("utf-16-le", "utf-16-be") else encoding


def detect(body: bytes) -> str | None:
    """charset_normalizer's best guess over a sample of the body, as a codec; None when it has none."""
    best = charset_normalizer.from_bytes(_sample(body)).best()
    return lookup(best.encoding) if best is not None else None


def _sample(body: bytes) -> bytes:
    """At most _DETECT_BYTES, cut after a newline so no multi-byte character is split."""
    if len(body) <= _DETECT_BYTES:
        return body
    cut = body.rfind(b"\n", 0, _DETECT_BYTES)
    return body[: cut + 1] if cut > _DETECT_BYTES // 2 else body[:_DETECT_BYTES]


def _decode(body: bytes, encoding: str) -> tuple[str, str]:
    try:
        return body.decode(encoding, "replace"), encoding
    except (UnicodeError, LookupError):  # a codec that refuses even with errors="replace"
        return body.decode("utf-8", "replace"), "utf-8"
