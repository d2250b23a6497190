"""The one item every spider yields."""

from __future__ import annotations

import scrapy


class ImageItem(scrapy.Item):
    image_url = scrapy.Field()      # the file
    page_url = scrapy.Field()       # the page it appears on ("" when unknown)
    source = scrapy.Field()         # spider name: bing, gbif, ..., catalog
    keyword = scrapy.Field()        # the query that found it
    clade = scrapy.Field()          # proposed clade (catalog spelling) or 'unassigned'
    title = scrapy.Field()
    license = scrapy.Field()        # SPDX-style id or 'unknown' (crawler.licenses)
    rights_holder = scrapy.Field()
    width = scrapy.Field()          # when the source gives it, else None
    height = scrapy.Field()
    record = scrapy.Field()         # collections: the raw record (catalogue number, institution, ...)
    url_id = scrapy.Field()         # catalog spider: the Url row being fetched


def new_item(**kw) -> ImageItem:
    base = dict(page_url="", title="", license="unknown", rights_holder="", width=None, height=None,
                record=None, url_id=None)
    base.update({k: v for k, v in kw.items() if v is not None or k not in base})
    return ImageItem(**base)
