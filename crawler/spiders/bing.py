"""Bing images: ``/images/async?q=&first=&count=&async=1``; results are ``a.iusc`` with JSON in ``m``."""

from __future__ import annotations

import json
import re

from . import FidSpider

_SIZE = re.compile(r"(\d+)\s*[x×]\s*(\d+)")


class BingSpider(FidSpider):
    name = "bing"
    page_size = 35

    def __init__(self, *a, qft: str = "", **kw):
        super().__init__(*a, **kw)
        self.qft = qft

    def page(self, qi: int, first: int):
        params = {"q": self.queries[qi]["keyword"], "first": first, "count": self.page_size, "async": 1}
        if self.qft:
            params["qft"] = self.qft
        return self.request(self.url("/images/async", params), qi, self.parse, first=first)

    def first_requests(self, qi):
        yield self.page(qi, 1)

    def parse(self, response):
        qi, first = response.meta["qi"], response.meta["first"]
        if self.bad_status(response, qi):
            return
        self.page_seen(qi)
        anchors = response.css("a.iusc")
        n = 0
        for a in anchors:
            try:
                m = json.loads(a.attrib.get("m", ""))
            except ValueError:
                self.parse_error(response, qi, "an a.iusc without JSON in m")
                continue
            n += 1
            size = a.xpath("./ancestor::*[.//div[contains(@class,'img_info')]][1]"
                           "//div[contains(@class,'img_info')]//span[contains(@class,'nowrap')]/text()").get("")
            sm = _SIZE.search(size)
            item = self.emit(qi, m.get("murl"), page_url=m.get("purl") or "", title=m.get("t") or "",
                             width=int(sm.group(1)) if sm else None, height=int(sm.group(2)) if sm else None)
            if item is not None:
                yield item
        if not self.check_first_page(response, qi, n, first == 1):
            return
        if self.remaining(qi) > 0:
            yield self.page(qi, first + len(anchors))  # step by what the page held: no overlap
