"""Search sources answering in each real service's format (see shared/reference/sources.md).

One app per role; every result list comes from :class:`crawler.emulators.plan.Plan`, so image URLs
point at the image hosts and paging is deterministic per (keyword, offset) until the plan's total
for that keyword is exhausted.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import threading
import uuid as uuidlib
from urllib.parse import quote, quote_plus

from .imagegen import ImageGen
from .loopback import Request, Response
from .plan import Entry, Plan, norm_keyword

# ----------------------------------------------------------------------------- Baidu objURL

_BAIDU_FROM = "wkv1ju2it3hs4g5rq6fp7eo8dn9cm0bla"
_BAIDU_TO = "abcdefghijklmnopqrstuvw1234567890"
_BAIDU_TOKENS = (("_z2C$q", ":"), ("_z&e3B", "."), ("AzdH3F", "/"))
_DECODE = str.maketrans(_BAIDU_FROM, _BAIDU_TO)
_ENCODE = str.maketrans(_BAIDU_TO, _BAIDU_FROM)


def baidu_decode(s: str) -> str:
    """Baidu's objURL de-obfuscation (tokens first, then the character map)."""
    for tok, ch in _BAIDU_TOKENS:
        s = s.replace(tok, ch)
    return s.translate(_DECODE)


def baidu_encode(url: str) -> str:
    """The inverse of :func:`baidu_decode` (what Baidu's servers do to ``objURL``)."""
    s = url.translate(_ENCODE)
    for tok, ch in _BAIDU_TOKENS:
        s = s.replace(ch, tok)
    return s


def gbif_taxon_key(name: str) -> int:
    """The usageKey the GBIF emulator gives a name (stable, depends on the name only)."""
    return 1000 + int(hashlib.sha256(norm_keyword(name).encode()).hexdigest()[:8], 16) % 9_000_000


def _rank_of(name: str) -> str:
    n = name.lower()
    if n.endswith("idae"):
        return "FAMILY"
    if n.endswith("oidea"):
        return "SUPERFAMILY"
    if n.endswith(("ida", "iformes")):
        return "ORDER"
    if n.endswith(("ea", "ata", "ita", "opsida", "phyta", "oda", "ozoa", "ia")):
        return "CLASS"
    return "GENUS"


_ROBOTS = {
    "bing": "User-agent: *\nDisallow: /images/\nDisallow: /search\nDisallow: /th\n",
    "duckduckgo": "User-agent: *\nDisallow: /i.js\nDisallow: /*?\n",
    "google": "User-agent: *\nDisallow: /search\nDisallow: /images\n",
    "baidu": "User-agent: *\nDisallow: /\n",
    "gbif": "User-agent: *\nAllow: /\n",
    "idigbio.search": "User-agent: *\nAllow: /\n",
    "wikimedia": "User-agent: *\nDisallow: /w/\nDisallow: /api/\n",
}

DEFAULT_PAGE_SIZES = {"duckduckgo": 100, "google": 20}


class SourceApp:
    """One search role: bing, duckduckgo, google, baidu, gbif, idigbio.search or wikimedia."""

    def __init__(self, role: str, plan: Plan, gen: ImageGen, *, seed: int = 0, broken=(),
                 rate_limit_every: int = 0, retry_after: int = 1, require_contact_ua: bool = False,
                 page_sizes: dict | None = None, robots: str | None = None, media_base: str | None = None):
        self.role = role
        self.plan = plan
        self.gen = gen
        self.seed = seed
        self.broken = {norm_keyword(k) for k in broken}
        self.rate_limit_every = rate_limit_every
        self.retry_after = retry_after
        self.require_contact_ua = require_contact_ua
        self.page_sizes = {**DEFAULT_PAGE_SIZES, **(page_sizes or {})}
        self.robots = robots if robots is not None else _ROBOTS.get(role, "User-agent: *\nAllow: /\n")
        self.media_base = media_base
        self._count = 0
        self._lock = threading.Lock()
        self.taxa: dict[int, str] = {}  # GBIF usageKey -> name, filled by species/match

    # ------------------------------------------------------------------ dispatch
    def __call__(self, req: Request) -> Response:
        if req.path == "/robots.txt":
            return Response.text(self.robots)
        if req.path in ("/th", "/images") or req.path.startswith("/it/"):
            return self._thumb(req)
        if self.require_contact_ua:
            ua = req.headers.get("user-agent", "")
            if not re.search(r"@|https?://", ua):
                return Response.text("Please set a user-agent and respect our robot policy https://w.wiki/4wJS. "
                                     "See also https://phabricator.wikimedia.org/T400119.\n", 403)
        if self.rate_limit_every:
            with self._lock:
                self._count += 1
                n = self._count
            if n % self.rate_limit_every == 0:
                return Response.html("<html><body>Too Many Requests</body></html>", 429,
                                     headers=[("Retry-After", str(self.retry_after))])
        handler = getattr(self, "_" + self.role.replace(".", "_"))
        return handler(req)

    def _thumb(self, req: Request) -> Response:
        m = re.search(r"(?:OIP\.|tbn:|u=)([a-z0-9_]+-[0-9a-f]{12}|shared-\d+)", req.path + "?" + req.raw_query)
        if not m:
            return Response.text("not found\n", 404)
        r = self.gen.render("thumb", m.group(1), "jpg")
        return Response(200, r.body, r.content_type)

    def _page(self, kw: str, offset: int, limit: int) -> list[Entry]:
        return self.plan.entries(self.role.split(".")[0], kw, offset, limit)

    def _total(self, kw: str) -> int:
        return self.plan.total(self.role.split(".")[0], kw)

    # ------------------------------------------------------------------ Bing
    def _bing(self, req: Request) -> Response:
        if req.path not in ("/images/async", "/images/search"):
            return Response.html("<html><body>Bing emulator</body></html>", 404)
        q = req.arg("q")
        if not q:
            return Response.html("<html><body><form action='/images/search'></form></body></html>")
        first = max(1, req.int_arg("first", 1))
        count = min(max(1, req.int_arg("count", 35)), 150)
        kw = norm_keyword(q)
        if kw in self.broken:
            return Response.html('<!DOCTYPE html><html><body><div class="imgres_v2"><div class="tile">'
                                 "new layout</div></div></body></html>")
        items = []
        for e in self._page(kw, first - 1, count):
            m = {"sid": "", "cturl": "", "cid": e.ident[-8:], "purl": e.page_url, "murl": e.url,
                 "turl": f"{req.base}/th?id=OIP.{e.ident}&pid=Api", "md5": e.ident[-12:], "shkey": "",
                 "t": e.title, "mid": e.ident[-10:].upper(), "desc": ""}
            ext = e.mime.split("/")[-1].replace("svg+xml", "svg")
            items.append(
                f'<li data-idx="{e.index + 1}"><div class="iuscp isv"><div class="imgpt">'
                f'<a class="iusc" style="height:180px;width:240px" m="{html.escape(json.dumps(m, separators=(",", ":")))}" '
                f'mad="{{&quot;turl&quot;:&quot;{html.escape(m["turl"])}&quot;}}" '
                f'href="/images/search?view=detailV2&amp;q={quote_plus(q)}&amp;id={e.ident}">'
                f'<div class="img_cont hoff"><img class="mimg" src="{html.escape(m["turl"])}" '
                f'alt="{html.escape(e.title)}"/></div></a>'
                f'<div class="img_info hon"><span class="nowrap">{e.width} \u00d7 {e.height} \u00b7 {ext}</span>'
                f'<div class="lnkw"><a title="{html.escape(e.page_url)}" href="{html.escape(e.page_url)}">'
                f"{html.escape(e.page_url.split('/')[2])}</a></div></div></div></div></li>"
            )
        body = ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>'
                f"{html.escape(q)} - Bing images</title></head><body>"
                f'<div id="mmComponent_images_2"><ul class="dgControl_list">{"".join(items)}</ul></div>'
                "</body></html>")
        return Response.html(body)

    # ------------------------------------------------------------------ DuckDuckGo
    def vqd(self, keyword: str) -> str:
        h = hashlib.sha256(f"{self.seed}|vqd|{norm_keyword(keyword)}".encode()).hexdigest()
        return f"4-{int(h[:24], 16)}"

    def _duckduckgo(self, req: Request) -> Response:
        if req.path == "/" and req.arg("q"):
            q = req.arg("q")
            tok = self.vqd(q)
            return Response.html(
                f'<!DOCTYPE html><html><head><title>{html.escape(q)} at DuckDuckGo</title></head><body>'
                f'<script>DDG.deep.initialize(\'/d.js?q={quote_plus(q)}&l=us-en&s=0&dl=en&ct=US&vqd={tok}&p_ent=\');'
                f'</script><input type="hidden" name="vqd" value="{tok}">'
                f'<script>vqd="{tok}";</script></body></html>'
            )
        if req.path != "/i.js":
            return Response.html("<html><body>DuckDuckGo emulator</body></html>", 404 if req.path != "/" else 200)
        q = req.arg("q") or ""
        if not req.arg("vqd") or req.arg("vqd") != self.vqd(q):
            return Response.text("If this error persists, please let us know: ops@duckduckgo.com\n", 403)
        ref = req.headers.get("referer", "")
        if not ref:
            return Response.text("If this error persists, please let us know: ops@duckduckgo.com\n", 403)
        kw = norm_keyword(q)
        if kw in self.broken:
            return Response.json({"ads": None, "response_type": "images", "results_v2": {"items": []}})
        size = self.page_sizes["duckduckgo"]
        s = max(0, req.int_arg("s", 0))
        results = [
            {"height": e.height, "width": e.width, "image": e.url,
             "thumbnail": f"{req.base}/th?id=OIP.{e.ident}&pid=Api", "url": e.page_url, "title": e.title,
             "source": "Bing", "image_token": e.ident[-12:]}
            for e in self._page(kw, s, size)
        ]
        out = {"ads": None, "query": q, "queryEncoded": quote_plus(q), "response_type": "images",
               "results": results, "vqd": {q: self.vqd(q)}}
        if s + size < self._total(kw):
            f = req.arg("f", ",,,,,") or ""
            out["next"] = (f"i.js?q={quote_plus(q)}&o=json&p={req.arg('p', '1')}&s={s + size}&u=bing"
                           f"&f={quote(f, safe=',:')}&l={req.arg('l', 'us-en')}&vqd={self.vqd(q)}")
        return Response.json(out)

    # ------------------------------------------------------------------ Google
    @staticmethod
    def _gstr(s: str) -> str:
        return json.dumps(s).replace("=", "\\u003d").replace("&", "\\u0026")

    def _google(self, req: Request) -> Response:
        if req.path != "/search":
            return Response.html("<html><body>Google emulator</body></html>", 404)
        q = req.arg("q") or ""
        kw = norm_keyword(q)
        if req.arg("tbm") != "isch":
            return Response.html(f"<html><body><div id='search'>web results for {html.escape(q)}</div></body></html>")
        if kw in self.broken:
            return Response.html("<!doctype html><html><body><div jsname='dTDiAc'>new layout</div></body></html>")
        size = self.page_sizes["google"]
        start = req.int_arg("start", -1)
        offset = start if start >= 0 else max(0, req.int_arg("ijn", 0)) * size
        rows = []
        for e in self._page(kw, offset, size):
            docid = e.ident[-12:]
            thumb = f"{req.base}/images?q=tbn:{e.ident}&usqp=CAU"
            tw, th = (120, max(1, 120 * e.height // e.width))
            rows.append(
                f'[1,[0,"{docid}",[{self._gstr(thumb)},{th},{tw}],[{self._gstr(e.url)},{e.height},{e.width}],'
                f'null,0,"rgb(120,110,96)",null,0,{{"2003":[null,"{docid}",{self._gstr(e.page_url)},'
                f'{self._gstr(e.title)},null,null,null,null,null,null,null,{self._gstr(e.page_url.split("/")[2])}]}}]]'
            )
        data = "[null,[" + ",".join(rows) + "]]"
        body = (f"<!doctype html><html itemscope><head><title>{html.escape(q)} - Google Search</title>"
                "<script nonce=\"emu\">(function(){window.google={kEI:'emu'};})();</script></head><body>"
                '<div id="islrg"><div class="islrc"></div></div>'
                f"<script nonce=\"emu\">AF_initDataCallback({{key: 'ds:1', hash: '2', data:{data}, "
                "sideChannel: {}});</script></body></html>")
        return Response.html(body)

    # ------------------------------------------------------------------ Baidu
    def _baidu(self, req: Request) -> Response:
        if req.path != "/search/acjson":
            return Response.html("<html><body>Baidu emulator</body></html>", 404)
        word = req.arg("word") or req.arg("queryWord")
        if not word or req.arg("tn") != "resultjson_com":
            return Response.json({"antiFlag": 1, "message": "Forbid spider access", "bfe_log_id": "1"})
        kw = norm_keyword(word)
        if kw in self.broken:
            return Response.json({"antiFlag": 1, "message": "Forbid spider access", "bfe_log_id": "2"})
        pn = max(0, req.int_arg("pn", 0))
        rn = min(max(1, req.int_arg("rn", 30)), 60)
        total = self._total(kw)
        data = []
        for e in self._page(kw, pn, rn):
            thumb = f"{req.base}/it/u={e.ident}?fm=253&fmt=auto"
            item = {
                "adType": "0", "hasAspData": "0", "thumbURL": thumb, "middleURL": thumb,
                "largeTNImageUrl": "", "hasLarge": 0, "hoverURL": thumb, "pageNum": e.index,
                "objURL": baidu_encode(e.url), "fromURL": baidu_encode(e.page_url),
                "fromURLHost": e.page_url.rsplit("/", 2)[0], "currentIndex": "", "width": e.width,
                "height": e.height, "type": e.mime.split("/")[-1].replace("svg+xml", "svg"), "is_gif": 0,
                "isCopyright": 0, "fromPageTitle": f"<strong>{html.escape(e.title)}</strong>",
                "fromPageTitleEnc": e.title, "bdSrcType": "0", "di": e.ident[-10:], "os": "", "cs": "",
            }
            if e.index % 20 == 9:  # objURL missing: the fallback (hoverURL/thumbURL) is the image
                del item["objURL"]
                item["hoverURL"] = item["thumbURL"] = e.url
            elif e.index % 20 == 19:  # objURL does not decode to a URL
                item["objURL"] = "qwe$r_broken"
                item["hoverURL"] = item["thumbURL"] = e.url
            data.append(item)
        data.append({})
        return Response.json({
            "queryEnc": quote(word), "queryExt": word, "listNum": total, "displayNum": total,
            "gsm": format(pn + len(data) - 1, "x"), "bdFmtDispNum": f"\u7ea6{total}", "bdSearchTime": "",
            "isNeedAsyncRequest": 0, "bdIsClustered": "1", "data": data,
        })

    # ------------------------------------------------------------------ GBIF
    def _gbif(self, req: Request) -> Response:
        if req.path in ("/v1/species/match", "/v1/species/match/"):
            return self._gbif_match(req)
        if req.path not in ("/v1/occurrence/search", "/v1/occurrence/search/"):
            return Response.json({"error": "not found"}, 404)
        limit = min(max(0, req.int_arg("limit", 20)), 300)
        offset = max(0, req.int_arg("offset", 0))
        if offset > 100_000:
            return Response.text(f"Max offset of 100000 exceeded: {offset} + {limit}\n", 400)
        kw = None
        if req.arg("taxonKey"):
            try:
                kw = self.taxa.get(int(req.arg("taxonKey")))
            except ValueError:
                return Response.text(f"Invalid integer value: {req.arg('taxonKey')}\n", 400)
        elif req.arg("q"):
            kw = req.arg("q")
        bor = req.arg("basisOfRecord")
        if (bor and bor != "FOSSIL_SPECIMEN") or (req.arg("mediaType") not in (None, "StillImage")):
            kw = None
        total = self._total(kw) if kw is not None else 0
        results = [self._gbif_record(e) for e in self._page(kw, offset, limit)] if kw is not None else []
        return Response.json({"offset": offset, "limit": limit, "endOfRecords": offset + limit >= total,
                              "count": total, "results": results, "facets": []})

    def _gbif_match(self, req: Request) -> Response:
        name = (req.arg("name") or req.arg("scientificName") or "").strip()
        if not name or any(ch.isdigit() for ch in name) or norm_keyword(name) in self.broken:
            return Response.json({"confidence": 100, "matchType": "NONE", "synonym": False})
        key = gbif_taxon_key(name)
        self.taxa[key] = norm_keyword(name)
        canon = name[:1].upper() + name[1:].lower()
        return Response.json({"usageKey": key, "scientificName": canon, "canonicalName": canon,
                              "rank": _rank_of(name), "status": "ACCEPTED", "confidence": 97,
                              "matchType": "EXACT", "kingdom": "Animalia", "kingdomKey": 1, "synonym": False})

    def _gbif_record(self, e: Entry) -> dict:
        r = e.record
        dataset = str(uuidlib.UUID(hashlib.md5(r["institution_code"].encode()).hexdigest()))
        media = {"type": "StillImage", "format": e.mime, "identifier": e.url, "references": e.page_url,
                 "title": e.title, "creator": r["recorded_by"], "publisher": r["institution"],
                 "rightsHolder": r["institution"], "created": f"{2005 + e.index % 18}-03-1{e.index % 10}T00:00:00"}
        if r["media_licence"]:
            media["license"] = r["media_licence"]
        media_list = [media]
        if e.index % 6 == 5:
            media_list.append({"type": "Sound", "format": "audio/mpeg",
                               "identifier": e.page_url.replace("/page/", "/sound/").replace(".html", ".mp3")})
        return {
            "key": r["gbif_key"], "gbifID": str(r["gbif_key"]), "datasetKey": dataset,
            "publishingOrgKey": dataset, "protocol": "DWC_ARCHIVE", "basisOfRecord": "FOSSIL_SPECIMEN",
            "occurrenceStatus": "PRESENT", "taxonKey": gbif_taxon_key(e.keyword), "kingdom": "Animalia",
            "kingdomKey": 1, "scientificName": r["scientific_name"], "taxonRank": "SPECIES",
            "license": r["record_licence"], "references": e.page_url,
            "occurrenceID": f"urn:catalog:{r['institution_code']}:{r['collection_code']}:{r['catalog_number']}",
            "catalogNumber": r["catalog_number"], "institutionCode": r["institution_code"],
            "collectionCode": r["collection_code"], "countryCode": r["country_code"],
            "locality": r["locality"], "earliestPeriodOrLowestSystem": r["age"],
            "latestPeriodOrHighestSystem": r["age"], "year": r["year"], "recordedBy": r["recorded_by"],
            "media": media_list, "issues": [], "extensions": {},
        }

    # ------------------------------------------------------------------ iDigBio
    _RQ_TAXON_FIELDS = ("scientificname", "genus", "family", "order", "class", "phylum", "kingdom")

    def _idigbio_search(self, req: Request) -> Response:
        if req.path.rstrip("/") != "/v2/search/media":
            return Response.json({"error": "Not Found"}, 404)
        limit = max(0, req.int_arg("limit", 100))
        offset = max(0, req.int_arg("offset", 0))
        if limit > 5000:
            return Response.json({"error": f"limit {limit} exceeds the maximum of 5000"}, 400)
        if offset + limit > 10000:
            return Response.json({"error": "Result window is too large, offset + limit must be <= 10000"}, 400)
        try:
            rq = json.loads(req.arg("rq") or "{}")
        except json.JSONDecodeError as exc:
            return Response.json({"error": f"Unable to parse rq: {exc}"}, 400)
        if not isinstance(rq, dict):
            return Response.json({"error": "rq must be a JSON object"}, 400)
        kw = None
        for f in self._RQ_TAXON_FIELDS:
            v = rq.get(f)
            if isinstance(v, list):
                v = v[0] if v else None
            if isinstance(v, str):
                kw = v
                break
        bor = rq.get("basisofrecord")
        if bor is not None and str(bor).lower() != "fossilspecimen":
            kw = None
        if kw is None:
            return Response.json({"itemCount": 0, "lastModified": "2026-01-01T00:00:00", "items": [],
                                  "attribution": []})
        items = []
        for e in self._page(kw, offset, limit):
            r = e.record
            idx = {"accessuri": e.url, "rights": r["rights"], "format": e.mime, "xpixels": e.width,
                   "ypixels": e.height, "records": [r["record_uuid"]], "mediatype": "images",
                   "hasspecimen": True, "flags": [], "uuid": e.uuid,
                   "recordset": str(uuidlib.UUID(hashlib.md5(r["institution_code"].encode()).hexdigest()))}
            data = {"ac:accessURI": e.url, "dcterms:rights": r["rights"], "dcterms:format": e.mime,
                    "dcterms:title": e.title, "ac:associatedSpecimenReference": e.page_url,
                    "dcterms:identifier": e.url, "ac:providerLiteral": r["institution"]}
            if r["webstatement"]:
                idx["webstatement"] = r["webstatement"]
                data["xmpRights:WebStatement"] = r["webstatement"]
            items.append({"uuid": e.uuid, "type": "mediarecords", "etag": e.ident[-12:] * 3,
                          "data": data, "indexTerms": idx})
        return Response.json({"itemCount": self._total(kw), "lastModified": "2026-01-01T00:00:00",
                              "items": items, "attribution": []})

    # ------------------------------------------------------------------ Wikimedia Commons
    @staticmethod
    def _mw_error(code: str, info: str) -> Response:
        return Response.json({"error": {"code": code, "info": info, "docref": "See /w/api.php for API usage."},
                              "servedby": "mw-emulator"}, headers=[("MediaWiki-API-Error", code)])

    def _wikimedia(self, req: Request) -> Response:
        if req.path.startswith("/wiki/"):
            title = html.escape(req.path[len("/wiki/"):])
            return Response.html(f"<!DOCTYPE html><html><head><title>{title} - Wikimedia Commons</title></head>"
                                 f"<body><h1>{title}</h1></body></html>")
        if req.path != "/w/api.php":
            return Response.html("<html><body>Not found</body></html>", 404)
        if req.arg("action") != "query":
            return self._mw_error("badvalue", f"Unrecognized value for parameter \"action\": {req.arg('action')}.")
        if req.arg("generator") != "search":
            return self._mw_error("badvalue", "this emulator answers generator=search only")
        search = req.arg("gsrsearch")
        if not search:
            return self._mw_error("missingparam", 'The "gsrsearch" parameter must be set.')
        lim = req.arg("gsrlimit", "10")
        limit = 500 if lim == "max" else min(max(1, int(lim)) if lim.isdigit() else 10, 500)
        offset = max(0, req.int_arg("gsroffset", 0))
        kw = " ".join(t for t in search.split() if not re.fullmatch(r"-?\w+:\S*", t))
        props = set((req.arg("prop") or "").split("|"))
        iiprop = set((req.arg("iiprop") or "timestamp|user").split("|"))
        thumbw = req.int_arg("iiurlwidth", 0)
        entries = self._page(kw, offset, limit)
        pages = []
        for e in entries:
            r = e.record
            pageid = 10_000_000 + int(e.ident[-8:], 16) % 90_000_000
            page = {"pageid": pageid, "ns": 6, "title": r["file_title"], "index": e.index + 1}
            if "imageinfo" in props:
                ii: dict = {}
                if "size" in iiprop:
                    ii.update(size=e.width * e.height // 4, width=e.width, height=e.height)
                if "url" in iiprop:
                    ii["url"] = e.url
                    ii["descriptionurl"] = f"{req.base}/wiki/{quote(r['file_title'].replace(' ', '_'))}"
                    ii["descriptionshorturl"] = f"{req.base}/w/index.php?curid={pageid}"
                    if thumbw:
                        tw = min(thumbw, e.width)
                        ii.update(thumburl=f"{e.thumb_url}?w={tw}", thumbwidth=tw,
                                  thumbheight=max(1, round(e.height * tw / e.width)))
                if "mime" in iiprop:
                    ii["mime"] = e.mime
                if "extmetadata" in iiprop:
                    ii["extmetadata"] = self._extmetadata(e)
                page["imageinfo"] = [ii]
            pages.append(page)
        pages.sort(key=lambda p: p["pageid"])  # the real API returns generator pages by id, not rank
        out: dict = {"batchcomplete": True} if req.arg("formatversion") == "2" else {"batchcomplete": ""}
        if offset + limit < self._total(kw):
            out = {"continue": {"gsroffset": offset + limit, "continue": "gsroffset||"}}
        if req.arg("formatversion") == "2":
            out["query"] = {"pages": pages}
        else:
            out["query"] = {"pages": {str(p["pageid"]): p for p in pages}}
        return Response.json(out)

    @staticmethod
    def _extmetadata(e: Entry) -> dict:
        r = e.record

        def v(value, source="commons-desc-page", hidden=False):
            d = {"value": value, "source": source}
            if hidden:
                d["hidden"] = ""
            return d

        md = {
            "DateTime": v(f"{2010 + e.index % 15}-05-0{1 + e.index % 9} 10:00:00", "mediawiki-metadata", True),
            "ObjectName": v(r["file_title"][5:].rsplit(".", 1)[0]),
            "CommonsMetadataExtension": v(1.2, "extension", True),
            "Categories": v(f"Fossils of {r['locality'].split(',')[-1].strip()}|{r['age']} fossils", hidden=True),
            "ImageDescription": v(f"<i>{html.escape(r['scientific_name'])}</i>, {html.escape(r['locality'])}; "
                                  f"{html.escape(r['institution'])} {html.escape(r['catalog_number'])}"),
            "Credit": v('<span class="int-own-work" lang="en">Own work</span>'),
            "Artist": v(r["artist_html"]),
            "LicenseShortName": v(r["licence_short"]),
            "UsageTerms": v("Public domain" if r["licence_code"] == "pd" else
                            f"Creative Commons {r['licence_short'][3:] if r['licence_short'].startswith('CC ') else r['licence_short']}"),
            "AttributionRequired": v("false" if r["licence_code"] in ("pd", "cc0") else "true"),
            "Copyrighted": v("False" if r["licence_code"] == "pd" else "True"),
            "Restrictions": v("", hidden=True),
            "License": v(r["licence_code"]),
        }
        if r["licence_url"]:
            md["LicenseUrl"] = v(r["licence_url"])
        return md
