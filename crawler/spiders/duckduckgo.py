"""DuckDuckGo images: a ``vqd`` token from ``/?q=``, then ``/i.js?o=json&...`` pages with ``next``."""

from __future__ import annotations

import re
from urllib.parse import urlencode

from . import FidSpider

_VQD = re.compile(r"""vqd=["']?([\w-]+)["'&]?""")
RATE_LIMITED = (202, 403, 418, 429)


class DuckDuckGoSpider(FidSpider):
    name = "duckduckgo"
    page_size = 100

    def __init__(self, *a, filters: str = "", **kw):
        super().__init__(*a, **kw)
        self.filters = filters

    @property
    def headers(self):
        return {"Referer": self.base() + "/"}

    def first_requests(self, qi):
        yield self.request(self.url("/", {"q": self.queries[qi]["keyword"]}), qi, self.parse_token,
                           fid_backoff_statuses=RATE_LIMITED)

    def parse_token(self, response):
        qi = response.meta["qi"]
        if self.bad_status(response, qi):
            return
        m = _VQD.search(response.text)
        if not m:
            self.parse_error(response, qi, "no vqd token in the page")
            return
        params = {"o": "json", "q": self.queries[qi]["keyword"], "l": "us-en", "vqd": m.group(1), "p": 1}
        if self.filters:
            params["f"] = self.filters
        yield self.request(self.url("/i.js", params), qi, self.parse, vqd=m.group(1), first=True,
                           fid_backoff_statuses=RATE_LIMITED)

    def parse(self, response):
        qi, vqd = response.meta["qi"], response.meta["vqd"]
        data = self.json_page(response, qi)
        if data is None:
            return
        results = data.get("results") or []
        for r in results:
            item = self.emit(qi, r.get("image"), page_url=r.get("url") or "", title=r.get("title") or "",
                             width=r.get("width"), height=r.get("height"))
            if item is not None:
                yield item
        if not self.check_first_page(response, qi, len(results), response.meta["first"]):
            return
        nxt = data.get("next")
        if nxt and self.remaining(qi) > 0:
            url = self.base() + "/" + nxt.lstrip("/")
            if "vqd=" not in url:
                url += "&" + urlencode({"vqd": vqd})
            yield self.request(url, qi, self.parse, vqd=vqd, first=False, fid_backoff_statuses=RATE_LIMITED)
