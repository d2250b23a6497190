"""Google images (the most fragile source): ``/search?tbm=isch&ijn=&start=``; image URLs are pulled out
of the ``<script>`` blocks with a regex after unescaping ``\\u003d``-style sequences."""

from __future__ import annotations

import re

from . import FidSpider

_URL = re.compile(r"https?://[^\s\"'<>\\\]\[]+?\.(?:jpe?g|png|webp|gif)(?:\?[^\s\"'<>\\\]\[]*)?", re.I)
_ESC = re.compile(r"\\u([0-9a-fA-F]{4})")
_OWN_HOSTS = re.compile(r"^https?://[^/]*(?:google\.|gstatic\.com|googleusercontent\.com|ggpht\.com)", re.I)


_RESULT = re.compile(r'\[0,"[^"]*",\["(?:[^"\\]|\\.)*",\d+,\d+\],\["((?:[^"\\]|\\.)+)",(\d+),(\d+)\]')


def extract_results(html: str) -> list[tuple[str, int | None, int | None]]:
    """``(image URL, width, height)`` embedded in a Google result page, in order, without duplicates.

    First the result arrays ``[0,"docid",[thumb,h,w],[full,h,w],...]`` (any URL, with or without an
    extension); when a page has none, any ``http...(jpg|jpeg|png|webp|gif)`` in its scripts."""
    out: list[tuple[str, int | None, int | None]] = []
    seen = set()
    blocks = re.findall(r"<script[^>]*>(.*?)</script>", html, re.S | re.I) or [html]
    texts = [_ESC.sub(lambda m: chr(int(m.group(1), 16)), b).replace("\\/", "/") for b in blocks]
    for text in texts:
        for u, h, w in _RESULT.findall(text):
            if u not in seen and not _OWN_HOSTS.match(u):
                seen.add(u)
                out.append((u, int(w), int(h)))
    if out:
        return out
    for text in texts:
        for u in _URL.findall(text):
            if u not in seen and not _OWN_HOSTS.match(u) and "tbn:" not in u:
                seen.add(u)
                out.append((u, None, None))
    return out


def extract_image_urls(html: str) -> list[str]:
    return [u for u, _w, _h in extract_results(html)]


class GoogleSpider(FidSpider):
    name = "google"
    page_size = 100

    def __init__(self, *a, tbs: str = "", **kw):
        super().__init__(*a, **kw)
        self.tbs = tbs

    def page(self, qi: int, ijn: int):
        params = {"q": self.queries[qi]["keyword"], "tbm": "isch", "ijn": ijn, "start": ijn * self.page_size}
        if self.tbs:
            params["tbs"] = self.tbs
        return self.request(self.url("/search", params), qi, self.parse, ijn=ijn)

    def first_requests(self, qi):
        yield self.page(qi, 0)

    def parse(self, response):
        qi, ijn = response.meta["qi"], response.meta["ijn"]
        if self.bad_status(response, qi):
            return
        self.page_seen(qi)
        urls = extract_results(response.text)
        new = 0
        for u, w, h in urls:
            item = self.emit(qi, u, width=w, height=h)
            if item is not None:
                new += 1
                yield item
        if not self.check_first_page(response, qi, len(urls), ijn == 0):
            return
        if new and self.remaining(qi) > 0:
            yield self.page(qi, ijn + 1)
