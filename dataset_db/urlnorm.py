"""URL normalisation: one spelling per URL, so the catalog can deduplicate by ``url_hash``.

What changes: surrounding whitespace is stripped; scheme and host are lower-cased; the default
port is dropped (``:80`` for http, ``:443`` for https); the fragment is removed; an empty http(s)
path becomes ``/``; a non-ASCII host becomes its IDNA (punycode) form and non-ASCII or unsafe
characters in the path and query are percent-encoded as UTF-8 (``w3lib.url.safe_url_string``).
What does not: the path and the query are kept as given (query parameters are never reordered,
existing percent-escapes are left alone), and so is any user-info.

Only ``http``, ``https`` and ``file`` (local images) are URLs here.
"""

from __future__ import annotations

import hashlib
import re

#: Schemes fid accepts, with their default port.
SCHEMES: dict[str, int | None] = {"http": 80, "https": 443, "file": None}

# Reasons a non-blank text is not a URL (counted by the importer).
BLANK = "blank"
NOT_URL = "not_url"                  # no scheme://, e.g. a title, a truncated line, //host/path
UNSUPPORTED_SCHEME = "unsupported_scheme"  # ftp://, data:, javascript: ...
BAD_URL = "bad_url"                  # http(s) with an empty or invalid host or port
REASONS = (BLANK, NOT_URL, UNSUPPORTED_SCHEME, BAD_URL)

_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*)://")
# printable ASCII without space: the fast path; anything else goes through w3lib first
# URLs without "//": data:image/png;base64,..., javascript:..., mailto:...
_OPAQUE_RE = re.compile(r"(?:data|javascript|mailto|about|blob|tel):", re.I)
_PLAIN_RE = re.compile(r"[!-~]*\Z")
# already normal: lower-case http(s) scheme and host, no port, user-info or fragment, a path
_NORMAL_RE = re.compile(r"https?://[a-z0-9\-]+(?:\.[a-z0-9\-]+)+/[!-\"$-~]*\Z")
_AUTHORITY_END = re.compile(r"[/?#]")
_HOST_RE = re.compile(r"[a-z0-9_~!$&'()*+,;=%\-]+(?:\.[a-z0-9_~!$&'()*+,;=%\-]+)*\.?\Z")
_IPV6_RE = re.compile(r"\[[0-9a-f:.]+(?:%[0-9a-z._~\-]+)?\]\Z")


def classify_url(raw: str) -> tuple[str | None, str | None]:
    """``(normalised URL, None)`` for a URL, ``(None, reason)`` otherwise (see :data:`REASONS`)."""
    s = raw.strip()
    if _NORMAL_RE.match(s) is not None:  # the common case, already in normal form
        return s, None
    if not s:
        return None, BLANK
    m = _SCHEME_RE.match(s)
    if m is None:
        return None, (UNSUPPORTED_SCHEME if _OPAQUE_RE.match(s) else NOT_URL)
    scheme = m.group(1).lower()
    if scheme not in SCHEMES:
        return None, UNSUPPORTED_SCHEME
    if _PLAIN_RE.match(s) is None:
        from w3lib.url import safe_url_string

        try:
            s = safe_url_string(s)
        except (ValueError, UnicodeError):
            return None, BAD_URL
    rest = s[m.end():]
    e = _AUTHORITY_END.search(rest)
    if e is None:
        netloc, tail = rest, ""
    else:
        netloc, tail = rest[:e.start()], rest[e.start():]
        h = tail.find("#")
        if h >= 0:
            tail = tail[:h]
    netloc = _normalise_netloc(netloc, scheme)
    if netloc is None:
        return None, BAD_URL
    if scheme != "file" and not tail.startswith("/"):
        tail = "/" + tail
    return f"{scheme}://{netloc}{tail}", None


def _normalise_netloc(netloc: str, scheme: str) -> str | None:
    userinfo, at, hostport = netloc.rpartition("@")
    hostport = hostport.lower()
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            return None
        host, port = hostport[:end + 1], hostport[end + 1:]
        if _IPV6_RE.match(host) is None or (port and not port.startswith(":")):
            return None
        port = port[1:]
    else:
        host, _, port = hostport.partition(":")
        if host and _HOST_RE.match(host) is None:
            return None
    if port:
        if not port.isdigit() or int(port) > 65535:
            return None
        if int(port) == SCHEMES[scheme]:
            port = ""
    if not host and scheme != "file":
        return None
    return f"{userinfo}{at}{host}{':' + port if port else ''}"


def normalise_url(raw: str) -> str | None:
    """The normalised spelling of ``raw``, or None when it is not an http(s)/file URL."""
    return classify_url(raw)[0]


def url_key(url: str) -> str:
    """``Url.url_hash``: the sha1 hex digest of the *normalised* URL (normalise first)."""
    return hashlib.sha1(url.encode("utf-8")).hexdigest()


def sighting_key(url: str, source: str, keyword: str, clade: str, page_url: str) -> str:
    """``Sighting.sighting_key``: seeing the same URL from the same place twice adds no row."""
    return hashlib.sha1("\x1f".join((url, source, keyword, clade, page_url)).encode("utf-8")).hexdigest()
