"""iDigBio media search: ``/v2/search/media/?rq=<json>&limit=&offset=`` (record query, lower case).
Image bytes come from ``ac:accessURI``, else from the media API (role ``media``)."""

from __future__ import annotations

import json

from ..licenses import normalise_license
from . import FidSpider

WINDOW = 10_000  # offset + limit must stay within it


def rank_field(name: str) -> str:
    """The iDigBio record field a scientific name most likely fills, from its Latin ending."""
    n = name.lower()
    if n.endswith("idae"):
        return "family"
    if n.endswith(("ida", "iformes", "ales")):
        return "order"
    if " " in n:
        return "scientificname"
    if n.endswith(("a", "es", "i")):  # Trilobita, Bivalvia, Crinoidea, Chondrichthyes, Placodermi
        return "class"
    return "genus"


class IdigbioSpider(FidSpider):
    name = "idigbio"
    page_size = 100

    def __init__(self, *a, rank: str | None = None, **kw):
        super().__init__(*a, **kw)
        self.rank = rank  # the record field to match; guessed from the name when not given

    def rq(self, qi):
        q = self.queries[qi]
        name = (q.get("taxon") or q["clade"]).lower()
        return {"basisofrecord": "fossilspecimen", self.rank or rank_field(name): name}

    def page(self, qi, offset):
        limit = min(self.page_size, max(1, self.remaining(qi)), WINDOW - offset)
        params = {"rq": json.dumps(self.rq(qi), separators=(",", ":")), "limit": limit, "offset": offset}
        return self.request(self.url("/v2/search/media/", params, role="search"), qi, self.parse, offset=offset)

    def first_requests(self, qi):
        yield self.page(qi, 0)

    def parse(self, response):
        qi, offset = response.meta["qi"], response.meta["offset"]
        data = self.json_page(response, qi)
        if data is None:
            return
        items = data.get("items") or []
        for it in items:
            terms, raw, uuid = it.get("indexTerms") or {}, it.get("data") or {}, it.get("uuid")
            url = terms.get("accessuri") or raw.get("ac:accessURI")
            if not url and uuid:
                url = self.url(f"/v2/media/{uuid}", {"size": "webview"}, role="media")
            rights = terms.get("rights") or raw.get("dcterms:rights") or terms.get("webstatement") \
                or raw.get("xmpRights:WebStatement")
            record = {"uuid": uuid, "records": terms.get("records"), "format": terms.get("format"),
                      **{k: v for k, v in raw.items() if k.startswith(("dwc:", "dcterms:", "ac:"))}}
            page = raw.get("ac:associatedSpecimenReference") or \
                (f"https://portal.idigbio.org/portal/mediarecords/{uuid}" if uuid else "")
            item = self.emit(qi, url, page_url=page,
                             title=raw.get("dcterms:title") or raw.get("dcterms:description") or "",
                             license=normalise_license(rights),
                             rights_holder=raw.get("dcterms:rightsHolder") or raw.get("xmpRights:Owner")
                             or raw.get("ac:providerLiteral") or raw.get("dcterms:creator") or "",
                             width=terms.get("xpixels"), height=terms.get("ypixels"), record=record)
            if item is not None:
                yield item
        if not self.check_first_page(response, qi, len(items), offset == 0):
            return
        nxt = offset + len(items)
        total = data.get("itemCount") or 0
        if nxt < total and nxt < WINDOW and self.remaining(qi) > 0:
            yield self.page(qi, nxt)
