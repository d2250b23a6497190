"""The one vocabulary of URL statuses. Every layer and `fid status` derive from this module.

Each status belongs to one *bucket* (pending, downloaded, failed) that `fid status` reports as a
column, and is either retryable (the `catalog` spider / `fid fetch` tries it again, up to
``max_attempts`` attempts in all) or final.
"""

from __future__ import annotations

from dataclasses import dataclass

PENDING = "pending"
DOWNLOADED = "downloaded"
FAILED = "failed"
BUCKETS = (PENDING, DOWNLOADED, FAILED)


@dataclass(frozen=True)
class UrlStatus:
    name: str
    bucket: str
    retryable: bool
    max_attempts: int
    description: str


_DEFINED = [
    UrlStatus("pending", PENDING, True, 5, "known, not yet downloaded"),
    UrlStatus("stored", DOWNLOADED, False, 0, "downloaded, valid, stored as a new image"),
    UrlStatus("duplicate", DOWNLOADED, False, 0, "downloaded, valid, same bytes as an image already stored"),
    UrlStatus("timeout", FAILED, True, 3, "the download did not finish within the time limit"),
    UrlStatus("connection_error", FAILED, True, 3, "connection refused or reset"),
    UrlStatus("dns_error", FAILED, True, 2, "the host name did not resolve"),
    UrlStatus("tls_error", FAILED, False, 1, "TLS handshake or certificate failure"),
    UrlStatus("not_image", FAILED, False, 1, "the body is not a decodable raster image (HTML, SVG, empty, truncated)"),
    UrlStatus("too_small", FAILED, False, 1, "the image is below the minimum side length"),
    UrlStatus("too_large", FAILED, False, 1, "the body or pixel count is above the limit (decompression bomb)"),
    UrlStatus("robots_denied", FAILED, False, 1, "robots.txt forbids the URL"),
    UrlStatus("noai_denied", FAILED, False, 1, "the host sent X-Robots-Tag noai/noimageai (with --respect-noai)"),
    UrlStatus("redirect_loop", FAILED, False, 1, "too many redirects"),
    UrlStatus("invalid_url", FAILED, False, 0, "the URL cannot be fetched (bad scheme or host)"),
    UrlStatus("error", FAILED, True, 2, "an unexpected error; see error_message"),
]

STATUSES: dict[str, UrlStatus] = {s.name: s for s in _DEFINED}

#: HTTP codes that are worth retrying later (rate limits, server trouble).
RETRYABLE_HTTP = {408, 425, 429, 500, 502, 503, 504}


def http_status(code: int) -> str:
    """The status name for an HTTP error response, e.g. ``http_404``."""
    return f"http_{int(code)}"


def lookup(name: str) -> UrlStatus:
    """Describe any status name, including the open family ``http_<code>``."""
    if name in STATUSES:
        return STATUSES[name]
    if name.startswith("http_") and name[5:].isdigit():
        code = int(name[5:])
        retry = code in RETRYABLE_HTTP
        return UrlStatus(name, FAILED, retry, 4 if retry else 1, f"HTTP {code}")
    known = ", ".join(list(STATUSES) + ["http_<code>"])
    raise ValueError(f"unknown URL status {name!r}; choose from: {known}")


def bucket(name: str) -> str:
    return lookup(name).bucket


def is_retryable(name: str, attempts: int) -> bool:
    """True when a URL in this status should be (re)tried, given the attempts made so far."""
    st = lookup(name)
    return st.retryable and attempts < st.max_attempts


def retryable_names() -> list[str]:
    """Fixed status names that may be retried (``http_<code>`` ones are checked with :func:`lookup`)."""
    return [s.name for s in _DEFINED if s.retryable]


def retryable_http_names() -> list[str]:
    return [http_status(c) for c in sorted(RETRYABLE_HTTP)]


# Review vocabulary (current state of an image)
REVIEW_UNREVIEWED = "unreviewed"
REVIEW_ACCEPTED = "accepted"
REVIEW_REJECTED = "rejected"

DECISIONS = ("accept", "reject", "relabel", "crop", "reset")

REJECT_REASONS = (
    "not_fossil",
    "replica_or_cast",
    "drawing_or_reconstruction",
    "modern_organism",
    "several_clades",
    "poor_quality",
    "watermark_or_text",
    "other",
)

SPLITS = ("train", "val", "test")
