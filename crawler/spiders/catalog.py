"""``catalog``: the URLs already in the catalog that are pending or retryable (what `fid import urls`
added, or what an earlier crawl could not finish), so `fid fetch` runs the same image pipeline."""

from __future__ import annotations

from ..items import new_item
from . import FidSpider


class CatalogSpider(FidSpider):
    name = "catalog"

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
