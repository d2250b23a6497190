"""``catalog``: the URLs already in the catalog that are pending or retryable (what `fid import urls`
added, or what an earlier crawl could not finish), so `fid fetch` runs the same image pipeline."""

from __future__ import annotations

from ..items import new_item
from ..settings import scrapy_base_without
from . import FidSpider

#: middlewares with nothing to do in a fetch: its only requests are the pipeline's image requests,
#: which never carry cookies (``dont_merge_cookies``; skipping the cookie middleware also skips
#: loading its public-suffix list, ~40 ms of start-up), credentials or HTML to meta-refresh, and
#: its only spider output is the items ``start()`` yields, which the spider middlewares below
#: (referer, URL length, depth, meta-copy checks; they act on callback output) only pass along
_IDLE_IN_A_FETCH = {
    "scrapy.downloadermiddlewares.cookies.CookiesMiddleware",
    "scrapy.downloadermiddlewares.httpauth.HttpAuthMiddleware",
    "scrapy.downloadermiddlewares.redirect.MetaRefreshMiddleware",
    "scrapy.spidermiddlewares.httperror.HttpErrorMiddleware",
    "scrapy.spidermiddlewares.referer.RefererMiddleware",
    "scrapy.spidermiddlewares.urllength.UrlLengthMiddleware",
    "scrapy.spidermiddlewares.depth.DepthMiddleware",
    "scrapy.spidermiddlewares.metacopy.MetaCopyDetectionMiddleware",
}


class CatalogSpider(FidSpider):
    name = "catalog"
    custom_settings = {
        "DOWNLOADER_MIDDLEWARES_BASE": scrapy_base_without("DOWNLOADER_MIDDLEWARES_BASE", _IDLE_IN_A_FETCH),
        "SPIDER_MIDDLEWARES_BASE": scrapy_base_without("SPIDER_MIDDLEWARES_BASE", _IDLE_IN_A_FETCH),
    }

    def __init__(self, urls=None, **kw):
        super().__init__(queries=[], **kw)
        self.urls = list(urls or [])

    async def start(self):
        for u in self.urls:
            clade = u.get("clade") or "unassigned"
            self.crawler.stats.inc_value(f"fid/items/{self.name}/{clade}")
            self.crawler.stats.inc_value("fid/items")
            yield new_item(image_url=u["url"], url_id=u["url_id"], source=self.name, clade=clade,
                           keyword=u.get("keyword") or "")
