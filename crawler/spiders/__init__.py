"""One spider per source, all yielding :class:`crawler.items.ImageItem`.

A spider gets ``queries`` (a list of ``{"clade", "keyword", "taxon"}``) and ``max_per_keyword``; it
pages each query until it has that many items or the source is exhausted. Per query and source it
counts, in the crawler stats, ``fid/pages/<source>/<clade>``, ``fid/items/...``, ``fid/skipped/...``
and ``fid/parse_errors/...``; a first page with zero results is a parse error logged with its URL.
"""

from __future__ import annotations

import importlib
import json
from urllib.parse import urlencode

import scrapy

from ..items import new_item
from ..settings import ENGINE_BASES, ENGINES, SEARCH_ENGINES, engine_bases

SPIDER_MODULES = {name: f"crawler.spiders.{name}" for name in ENGINES + ("catalog",)}


def spider_class(name: str):
    from ..settings import UnknownEngineError

    if name not in SPIDER_MODULES:
        raise UnknownEngineError(name, tuple(SPIDER_MODULES))
    mod = importlib.import_module(SPIDER_MODULES[name])
    return next(v for v in vars(mod).values()
                if isinstance(v, type) and issubclass(v, FidSpider) and getattr(v, "name", None) == name)


def stat_key(kind: str, source: str, clade: str) -> str:
    return f"fid/{kind}/{source}/{clade}"


class FidSpider(scrapy.Spider):
    """Base of every source spider: queries, bases, paging limits, counting, loud parse errors."""

    name = "fid"
    #: role -> default base URL (from crawler.settings.ENGINE_BASES)
    page_size = 50

    def __init__(self, queries=None, max_per_keyword: int = 100, **kw):
        super().__init__(**kw)
        if isinstance(queries, str):
            queries = json.loads(queries)
        self.queries = list(queries or [])
        self.max_per_keyword = int(max_per_keyword)
        self._emitted: dict[int, int] = {}
        self._seen: dict[int, set] = {}

    @classmethod
    def from_crawler(cls, crawler, *args, **kwargs):
        spider = super().from_crawler(crawler, *args, **kwargs)
        if spider.name in ENGINE_BASES:
            spider.bases = engine_bases(spider.name, crawler.settings.get("FID_ENGINE_URLS") or {})
        size = (crawler.settings.getdict("FID_PAGE_SIZES") or {}).get(spider.name)
        if size:
            spider.page_size = int(size)
        return spider

    # ---- helpers --------------------------------------------------------------------------------
    def base(self, role: str | None = None) -> str:
        return self.bases[role] if role else next(iter(self.bases.values()))

    def url(self, path: str, params: dict | None = None, role: str | None = None) -> str:
        return self.base(role) + path + (("?" + urlencode(params)) if params else "")

    def request(self, url: str, qi: int, callback, **meta):
        """A request to the source's own API/result pages (not an image download)."""
        # Result pages and APIs are not image hosts: the engines' robots.txt disallow their result
        # pages (the documented exception, see the README) and the collections' APIs are machine
        # interfaces governed by their terms (Commons disallows /w/ yet asks bots to use its API).
        m = {"qi": qi, "dont_obey_robotstxt": True, **meta}
        if self.name in SEARCH_ENGINES:
            # one request at a time per engine, slowly, through a dedicated download slot
            m["download_slot"] = f"engine:{self.name}"
        return scrapy.Request(url, callback=callback, errback=self.on_error, meta=m, dont_filter=True,
                              headers=getattr(self, "headers", None))

    def _count(self, kind: str, qi: int, n: int = 1) -> None:
        clade = self.queries[qi]["clade"]
        self.crawler.stats.inc_value(stat_key(kind, self.name, clade), n)
        self.crawler.stats.inc_value(f"fid/{kind}", n)

    def page_seen(self, qi: int) -> None:
        self._count("pages", qi)

    def remaining(self, qi: int) -> int:
        return self.max_per_keyword - self._emitted.get(qi, 0)

    def emit(self, qi: int, image_url, **fields):
        """An item for query ``qi``, or None (skipped: no URL, already seen, or over the limit)."""
        q = self.queries[qi]
        if not image_url or not str(image_url).startswith(("http://", "https://")):
            self._count("skipped", qi)
            return None
        seen = self._seen.setdefault(qi, set())
        if image_url in seen or self.remaining(qi) <= 0:
            self._count("skipped", qi)
            return None
        seen.add(image_url)
        self._emitted[qi] = self._emitted.get(qi, 0) + 1
        self._count("items", qi)
        return new_item(image_url=str(image_url), source=self.name, keyword=q["keyword"], clade=q["clade"],
                        **fields)

    def parse_error(self, response, qi: int, why: str) -> None:
        self._count("parse_errors", qi)
        self.logger.error("%s: parse error on %s (query %r): %s", self.name, response.url,
                          self.queries[qi]["keyword"], why)

    def check_first_page(self, response, qi: int, n_results: int, first: bool) -> bool:
        """False (and a counted parse error) when the first page of a query has no results."""
        if n_results == 0 and first:
            self.parse_error(response, qi, "the first page yielded zero results")
            return False
        return n_results > 0

    def on_error(self, failure):
        req = getattr(failure, "request", None)
        qi = req.meta.get("qi", 0) if req is not None else 0
        self._count("parse_errors", qi)
        self.logger.error("%s: request failed %s: %s", self.name, getattr(req, "url", "?"),
                          failure.getErrorMessage())

    def bad_status(self, response, qi: int) -> bool:
        if response.status >= 400 or response.status in (202,):
            self.parse_error(response, qi, f"HTTP {response.status}")
            return True
        return False

    def json(self, response, qi: int):
        try:
            return json.loads(response.text)
        except ValueError as exc:
            self.parse_error(response, qi, f"not JSON: {exc}")
            return None

    # ---- start ----------------------------------------------------------------------------------
    def json_page(self, response, qi: int):
        """The JSON body of a result page, counted as a page seen; None (recorded) when unusable."""
        if self.bad_status(response, qi):
            return None
        data = self.json(response, qi)
        if data is not None:
            self.page_seen(qi)
        return data

    async def start(self):
        for qi in range(len(self.queries)):
            for req in self.first_requests(qi):
                yield req

    def first_requests(self, qi: int):  # pragma: no cover - abstract
        raise NotImplementedError
