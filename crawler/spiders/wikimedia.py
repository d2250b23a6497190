"""Wikimedia Commons: ``/w/api.php`` generator=search over File: pages with imageinfo/extmetadata;
paging merges the ``continue`` object into the next request."""

from __future__ import annotations

from w3lib.html import remove_tags

from ..licenses import normalise_license
from . import FidSpider


def _meta(ext: dict, key: str) -> str:
    v = (ext.get(key) or {}).get("value")
    return remove_tags(str(v)).strip() if v else ""


class WikimediaSpider(FidSpider):
    name = "wikimedia"
    page_size = 50

    def params(self, qi, cont=None):
        p = {"action": "query", "format": "json", "formatversion": 2, "generator": "search",
             "gsrsearch": f"{self.queries[qi]['keyword']} filetype:bitmap", "gsrnamespace": 6,
             "gsrlimit": min(500, max(1, self.remaining(qi)), self.page_size), "prop": "imageinfo",
             "iiprop": "url|size|mime|extmetadata"}
        p.update(cont or {})
        return p

    def first_requests(self, qi):
        yield self.request(self.url("/w/api.php", self.params(qi)), qi, self.parse, first=True)

    def parse(self, response):
        qi = response.meta["qi"]
        data = self.json_page(response, qi)
        if data is None:
            return
        pages = ((data.get("query") or {}).get("pages")) or []
        if isinstance(pages, dict):  # formatversion=1
            pages = list(pages.values())
        pages = sorted(pages, key=lambda p: p.get("index", 0))
        for page in pages:
            for info in page.get("imageinfo") or []:
                ext = info.get("extmetadata") or {}
                lic = _meta(ext, "LicenseShortName") or _meta(ext, "LicenseUrl") or _meta(ext, "License")
                record = {"pageid": page.get("pageid"), "mime": info.get("mime"),
                          "description": _meta(ext, "ImageDescription"), "credit": _meta(ext, "Credit"),
                          "license_url": _meta(ext, "LicenseUrl"),
                          "attribution_required": _meta(ext, "AttributionRequired")}
                item = self.emit(qi, info.get("url"), page_url=info.get("descriptionurl") or "",
                                 title=page.get("title") or "", license=normalise_license(lic),
                                 rights_holder=_meta(ext, "Artist"), width=info.get("width"),
                                 height=info.get("height"), record=record)
                if item is not None:
                    yield item
        if not self.check_first_page(response, qi, len(pages), response.meta["first"]):
            return
        cont = data.get("continue")
        if cont and self.remaining(qi) > 0:
            yield self.request(self.url("/w/api.php", self.params(qi, cont)), qi, self.parse, first=False)
