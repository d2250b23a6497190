"""Downloader middlewares of fid crawls.

:class:`BackoffMiddleware` retries 429/503 (and whatever a request lists in
``meta["fid_backoff_statuses"]``, e.g. DuckDuckGo's 202/403/418) after an exponential delay,
honouring ``Retry-After`` (seconds or an HTTP date), capped at ``FID_BACKOFF_MAX`` seconds and
``FID_BACKOFF_TRIES`` tries; after that the response passes through and its status is recorded
(``http_429`` stays retryable for a later run). While one request waits, the host's download slot
delay is raised to the same wait so its other requests slow down too, and restored afterwards.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time

from scrapy.downloadermiddlewares.robotstxt import RobotsTxtMiddleware as _StockRobots
from scrapy.exceptions import NotConfigured
from scrapy.logformatter import LogFormatter
from scrapy.utils.httpobj import urlparse_cached

from .settings import log_shows

logger = logging.getLogger(__name__)

DEFAULT_STATUSES = (429, 503)


def retry_after_seconds(value: bytes | str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds from now (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    if isinstance(value, bytes):
        value = value.decode("latin-1", "replace")
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


class BackoffMiddleware:
    def __init__(self, crawler, base: float, max_delay: float, tries: int):
        self.crawler, self.base, self.max_delay, self.tries = crawler, base, max_delay, tries

    @classmethod
    def from_crawler(cls, crawler):
        s = crawler.settings
        tries = s.getint("FID_BACKOFF_TRIES", 4)
        if tries <= 0:
            raise NotConfigured("FID_BACKOFF_TRIES is 0: no backoff on 429/503")
        return cls(crawler, s.getfloat("FID_BACKOFF_BASE", 1.0), s.getfloat("FID_BACKOFF_MAX", 60.0), tries)

    def delay_for(self, response, attempt: int) -> float:
        ra = retry_after_seconds(response.headers.get(b"Retry-After"))
        delay = ra if ra is not None else self.base * (2 ** attempt)
        return min(max(delay, 0.0), self.max_delay)

    async def process_response(self, request, response, spider=None):
        statuses = request.meta.get("fid_backoff_statuses") or DEFAULT_STATUSES
        if response.status not in statuses:
            return response
        attempt = request.meta.get("fid_backoff", 0)
        if attempt >= self.tries:
            logger.warning("giving up on %s after %d backoffs (HTTP %d)", request.url, attempt, response.status)
            return response
        delay = self.delay_for(response, attempt)
        self.crawler.stats.inc_value("fid/backoffs")
        logger.info("HTTP %d from %s: waiting %.1fs (backoff %d/%d)", response.status, request.url, delay,
                    attempt + 1, self.tries)
        self._slow_slot(request, delay)
        await asyncio.sleep(delay)
        new = request.replace(dont_filter=True)
        new.meta["fid_backoff"] = attempt + 1
        return new

    def _slow_slot(self, request, delay: float) -> None:
        """Space the host's other requests by ``delay`` while this one waits, then restore the delay."""
        try:
            downloader = self.crawler.engine.downloader
            slot = downloader.slots.get(downloader.get_slot_key(request))
        except Exception:  # noqa: BLE001 - slowing the slot is best effort
            return
        if slot is None or slot.delay >= delay:
            return
        before, slot.delay = slot.delay, delay

        def restore():
            if slot.delay == delay:  # nobody (AutoThrottle, another backoff) changed it meanwhile
                slot.delay = before

        asyncio.get_running_loop().call_later(delay, restore)


class RobotsTxtMiddleware(_StockRobots):
    """Scrapy's robots.txt middleware with a fix for concurrent first requests to a host.

    With the asyncio reactor (Scrapy 2.19), every request that arrives while a host's robots.txt is
    being downloaded awaits the same Deferred through ``Deferred.asFuture``, whose callback returns
    None: only the first waiter gets the parser, the others get None, which means "allow
    everything" -- a disallowed URL requested at that moment was fetched anyway (the emulator test
    of per-host robots caught it). The parser is stored on the middleware before the Deferred
    fires, so we read it from there.
    """

    async def robot_parser(self, request):
        rp = await super().robot_parser(request)
        if rp is None:
            stored = self._parsers.get(urlparse_cached(request).netloc)
            if stored is not None and hasattr(stored, "allowed"):
                return stored
        return rp


class QuietLogFormatter(LogFormatter):
    """Scrapy's log formatter, minus the per-response and per-item DEBUG messages when LOG_LEVEL
    hides them anyway. Scrapy builds "Crawled (200) <GET ...>" and "Scraped from ..." records for
    every response and item whatever the level (its handler filters them afterwards): ~3% of the
    crawling process per image on the ingest benchmark. Returning None is Scrapy's documented way
    to skip a message."""

    def __init__(self, debug: bool = True):
        self.debug = debug

    @classmethod
    def from_crawler(cls, crawler):
        return cls(debug=log_shows(crawler.settings.get("LOG_LEVEL", "DEBUG"), logging.DEBUG))

    def crawled(self, request, response, spider=None):
        return super().crawled(request, response, spider) if self.debug else None

    def scraped(self, item, response, spider=None):
        return super().scraped(item, response, spider) if self.debug else None
