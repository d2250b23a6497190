"""The content plan: which results each source returns per keyword, and how each URL must end.

Everything is a pure function of ``seed`` and the plan's settings, so a test can ask, before or
after a crawl, for the exact entries a correct spider yields (:meth:`Plan.entries`) and the status
each image URL must end in (:meth:`Plan.expected_status`, names from :mod:`dataset_db.status`).

Entry *kinds* map to image-host routes (one route per behaviour)::

    ok            /img/ok/<id>.<jpg|jpeg|png|webp|gif|>   stored
    cmyk png16 palette gif webp exif octet resized cropped recompressed
                  /img/<kind>/<id>.<ext>                  stored
    noai          /img/noai/<id>.jpg (X-Robots-Tag)       noai_denied with --respect-noai, else stored
    tiny small    /img/tiny/<id>.gif, /img/small/<id>.jpg too_small
    truncated html svg empty
                  /img/<kind>/<id>.<ext>                  not_image
    bomb          /img/bomb/<id>.png                      too_large
    http_<code>   /status/<code>/<id>.jpg                 http_<code> (429/503 carry Retry-After)
    flaky         /flaky/<n>/<id>.jpg: 429 n times, then the image   stored (after honouring Retry-After)
    redirect      /redirect/<id>.jpg -> /img/ok/<id>.jpg  stored
    redirect_loop /redirect-loop/<id>.jpg <-> ?hop=1      redirect_loop
    slow          /slow/<id>.jpg[?delay=s]                timeout (the response starts after the delay)
    drip          /drip/<id>.jpg[?delay=s]                timeout (headers at once, body over the delay)
    private       /private/<id>.jpg (robots.txt: Disallow: /private/)   robots_denied
    dup           the previous ok entry's path, on another host (same bytes, new URL)   duplicate
    xdup          /img/ok/shared-<k>.jpg, a small pool shared by every source and keyword
"""

from __future__ import annotations

import hashlib
import re
import threading
import uuid as uuidlib
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from dataset_db.errors import FidError

from .imagegen import IMAGE_KINDS, MIME, ImageGen, format_for


class EmulatorError(FidError):
    """Bad emulator configuration or a URL the emulators never served."""


ENGINES = ("bing", "duckduckgo", "google", "baidu")
COLLECTIONS = ("gbif", "idigbio", "wikimedia")
SOURCES = ENGINES + COLLECTIONS

#: the default cycle of non-plain kinds mixed into every result list (every ``tricky_every``-th entry)
DEFAULT_TRICKY = (
    "truncated", "cmyk", "html", "png16", "svg", "palette", "empty", "gif", "bomb", "webp", "exif",
    "tiny", "http_404", "small", "redirect", "http_403", "octet", "http_429", "noai", "http_500",
    "redirect_loop", "resized", "private", "dup", "flaky", "cropped", "http_503", "slow", "xdup",
    "recompressed", "drip",
)
#: kinds that take ``slow_delay`` seconds to answer; leave them out for fast crawls
SLOW_KINDS = ("slow", "drip")
#: extension cycle of plain ``ok`` entries ("" is a URL without extension)
OK_EXTS = ("jpg", "jpg", "png", "jpg", "webp", "jpeg", "", "jpg", "gif", "jpg")

_STATUS_BY_IMAGE_KIND = {
    "ok": "stored", "cmyk": "stored", "png16": "stored", "palette": "stored", "gif": "stored",
    "webp": "stored", "exif": "stored", "resized": "stored", "cropped": "stored",
    "recompressed": "stored", "thumb": "stored", "octet": "stored", "noai": "stored",
    "tiny": "too_small", "small": "too_small",
    "truncated": "not_image", "html": "not_image", "svg": "not_image", "empty": "not_image",
    "bomb": "too_large",
}
_FIXED_EXT = {
    "cmyk": "jpg", "png16": "png", "palette": "png", "gif": "gif", "webp": "webp", "exif": "jpg",
    "tiny": "gif", "small": "jpg", "truncated": "jpg", "html": "jpg", "svg": "svg", "empty": "jpg",
    "bomb": "png", "noai": "jpg", "octet": "", "resized": "jpg", "cropped": "jpg", "recompressed": "jpg",
}
#: every kind a plan accepts
KINDS = tuple(sorted(set(_FIXED_EXT) | {"ok", "dup", "xdup", "redirect", "redirect_loop", "slow", "drip",
                                        "private", "flaky"})) + ("http_<code>",)

# (raw value the source shows, the normalised licence id a correct normaliser returns)
GBIF_RECORD_LICENCES = (
    ("http://creativecommons.org/licenses/by/4.0/legalcode", "CC-BY-4.0"),
    ("http://creativecommons.org/publicdomain/zero/1.0/legalcode", "CC0-1.0"),
    ("http://creativecommons.org/licenses/by-nc/4.0/legalcode", "CC-BY-NC-4.0"),
)
GBIF_MEDIA_LICENCES = (
    (None, None),  # missing: fall back to the record's licence
    ("http://creativecommons.org/licenses/by/4.0/", "CC-BY-4.0"),
    ("https://creativecommons.org/licenses/by-nc/4.0/", "CC-BY-NC-4.0"),
    ("http://creativecommons.org/publicdomain/mark/1.0/", "PDM"),
    ("http://creativecommons.org/licenses/by-sa/4.0/", "CC-BY-SA-4.0"),
    ("http://creativecommons.org/publicdomain/zero/1.0/", "CC0-1.0"),
)
IDIGBIO_RIGHTS = (  # (dcterms:rights text, xmpRights:WebStatement, id)
    ("CC0", "http://creativecommons.org/publicdomain/zero/1.0/", "CC0-1.0"),
    ("Attribution 4.0 International (CC BY 4.0)", "https://creativecommons.org/licenses/by/4.0/", "CC-BY-4.0"),
    ("CC BY-NC 4.0", "https://creativecommons.org/licenses/by-nc/4.0/", "CC-BY-NC-4.0"),
    ("Public Domain", "http://creativecommons.org/publicdomain/mark/1.0/", "PDM"),
    ("All rights reserved", None, "unknown"),
)
WIKIMEDIA_LICENCES = (  # (LicenseShortName, LicenseUrl, License, id)
    ("CC BY-SA 4.0", "https://creativecommons.org/licenses/by-sa/4.0", "cc-by-sa-4.0", "CC-BY-SA-4.0"),
    ("CC BY 4.0", "https://creativecommons.org/licenses/by/4.0", "cc-by-4.0", "CC-BY-4.0"),
    ("CC0", "http://creativecommons.org/publicdomain/zero/1.0/deed.en", "cc0", "CC0-1.0"),
    ("Public domain", None, "pd", "PDM"),
    ("CC BY-SA 3.0", "https://creativecommons.org/licenses/by-sa/3.0", "cc-by-sa-3.0", "CC-BY-SA-3.0"),
)
INSTITUTIONS = (
    ("NHMUK", "PV", "Natural History Museum, London", "GB"),
    ("YPM", "IP", "Yale Peabody Museum", "US"),
    ("MCZ", "IP", "Museum of Comparative Zoology, Harvard University", "US"),
    ("UF", "IP", "Florida Museum of Natural History", "US"),
    ("FMNH", "PE", "Field Museum of Natural History", "US"),
    ("SMF", "XI", "Senckenberg Naturmuseum Frankfurt", "DE"),
)
PERIODS = ("Cambrian", "Ordovician", "Silurian", "Devonian", "Carboniferous", "Permian", "Triassic",
           "Jurassic", "Cretaceous", "Paleogene", "Neogene")
LOCALITIES = ("Wheeler Shale, House Range, Utah", "Lyme Regis, Dorset", "Solnhofen, Bavaria",
              "Burgess Shale, British Columbia", "Holzmaden, Baden-Wuerttemberg", "Mazon Creek, Illinois",
              "Green River Formation, Wyoming", "Kem Kem beds, Morocco")
PEOPLE = ("A. Anning", "C. D. Walcott", "M. Leakey", "R. Owen", "T. Edinger", "W. Buckland", "E. Benton")


def norm_keyword(keyword: str) -> str:
    """Keywords are matched case-insensitively with whitespace collapsed."""
    return " ".join(str(keyword).split()).lower()


def label_for(keyword: str) -> str:
    """The content label of a keyword: a slug of its first word (``Trilobita fossil`` -> ``trilobita``)."""
    words = norm_keyword(keyword).split()
    slug = re.sub(r"[^a-z0-9]", "", words[0]) if words else ""
    return slug[:24] or "x"


def _h(*parts) -> str:
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()


@dataclass(frozen=True)
class Entry:
    """One result a source returns, i.e. one image URL a correct spider yields."""

    source: str
    keyword: str  # normalised
    index: int  # 0-based position in the source's result list for this keyword
    kind: str
    ident: str
    path: str  # path (and query) on an image host
    url: str  # absolute image URL
    host: int  # index into the plan's image hosts
    page_url: str
    thumb_url: str
    title: str
    width: int  # display size the source reports
    height: int
    mime: str
    expected_status: str  # without duplicate accounting; see Plan.expected_summary
    licence: str | None = None  # normalised id a correct normaliser returns (collections only)
    licence_raw: str | None = None  # what the source shows
    rights_holder: str | None = None
    uuid: str | None = None  # iDigBio media uuid
    media_url: str | None = None  # iDigBio media API URL for the same image
    record: dict = field(default_factory=dict, compare=False, hash=False)


class Plan:
    """Deterministic result lists per (source, keyword) and expected URL outcomes.

    ``hosts`` are the image hosts' base URLs; ``media_base`` the iDigBio media role's base URL.
    ``totals`` overrides ``total_per_keyword`` per ``"keyword"`` or ``"source:keyword"``.
    ``tricky_every``: every n-th entry (n-1, 2n-1, ...) takes the next kind of ``tricky``; 0 disables.
    """

    def __init__(self, hosts: list[str], *, seed: int = 0, total_per_keyword: int = 50,
                 totals: dict[str, int] | None = None, tricky_every: int = 3,
                 tricky: tuple[str, ...] | list[str] | None = None, flaky_failures: int = 1,
                 shared_pool: int = 8, media_base: str | None = None, gen: ImageGen | None = None):
        if not hosts:
            raise EmulatorError("a plan needs at least one image host; got none")
        if total_per_keyword < 0 or tricky_every < 0:
            raise EmulatorError(f"total_per_keyword={total_per_keyword}, tricky_every={tricky_every}; "
                                "allowed: integers >= 0")
        self.hosts = [h.rstrip("/") for h in hosts]
        self.seed = seed
        self.total_per_keyword = total_per_keyword
        self.totals = {norm_keyword(k) if ":" not in k else k.split(":", 1)[0] + ":" + norm_keyword(k.split(":", 1)[1]): v
                       for k, v in (totals or {}).items()}
        self.tricky_every = tricky_every
        self.tricky = tuple(DEFAULT_TRICKY if tricky is None else tricky)
        for k in self.tricky:
            if k not in KINDS and not re.fullmatch(r"http_\d{3}", k):
                raise EmulatorError(f"unknown entry kind {k!r}; choose from: {', '.join(KINDS)}")
        self.flaky_failures = flaky_failures
        self.shared_pool = max(1, shared_pool)
        self.media_base = media_base.rstrip("/") if media_base else None
        self.gen = gen or ImageGen(seed=seed)
        self._cache: dict = {}
        self._uuids: dict[str, Entry] = {}
        self._lock = threading.Lock()

    # ----------------------------------------------------------------- result lists
    def total(self, source: str, keyword: str) -> int:
        kw = norm_keyword(keyword)
        return self.totals.get(f"{source}:{kw}", self.totals.get(kw, self.total_per_keyword))

    def entries(self, source: str, keyword: str, offset: int = 0, limit: int | None = None) -> list[Entry]:
        """The entries ``offset .. offset+limit`` (all by default) for ``keyword`` on ``source``."""
        if source not in SOURCES:
            raise EmulatorError(f"unknown source {source!r}; choose from: {', '.join(SOURCES)}")
        n = self.total(source, keyword)
        stop = n if limit is None else min(n, offset + max(0, limit))
        return [self.entry(source, keyword, i) for i in range(max(0, offset), stop)]

    def entry(self, source: str, keyword: str, index: int) -> Entry:
        kw = norm_keyword(keyword)
        key = (source, kw, index)
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None:
            return hit
        e = self._make(source, kw, index)
        with self._lock:
            if len(self._cache) > 200_000:
                self._cache.clear()
            self._cache[key] = e
            if e.uuid:
                self._uuids[e.uuid] = e
        return e

    def kind_at(self, source: str, keyword: str, index: int) -> str:
        k = self.tricky_every
        if not k or not self.tricky or index % k != k - 1:
            return "ok"
        start = int(_h(self.seed, "start", source, norm_keyword(keyword)), 16) % len(self.tricky)
        return self.tricky[(start + index // k) % len(self.tricky)]

    def _ident(self, source: str, kw: str, index: int) -> str:
        return f"{label_for(kw)}-{_h(self.seed, source, kw, index)[:12]}"

    def _host_of(self, ident: str) -> int:
        return int(_h(self.seed, "host", ident), 16) % len(self.hosts)

    def _make(self, source: str, kw: str, index: int) -> Entry:
        kind = self.kind_at(source, kw, index)
        ident = self._ident(source, kw, index)
        host = self._host_of(ident)
        size_ident = ident
        if kind == "ok":
            ext = OK_EXTS[index % len(OK_EXTS)]
            path = f"/img/ok/{ident}" + (f".{ext}" if ext else "")
        elif kind == "dup":
            prev = index - 1
            if prev >= 0 and self.kind_at(source, kw, prev) == "ok":
                size_ident = self._ident(source, kw, prev)
                ext = OK_EXTS[prev % len(OK_EXTS)]
                path = f"/img/ok/{size_ident}" + (f".{ext}" if ext else "") + f"?copy={index}"
                host = (self._host_of(size_ident) + 1) % len(self.hosts)
            else:
                ext, path = "jpg", f"/img/ok/{ident}.jpg"
        elif kind == "xdup":
            k = int(_h(self.seed, "xdup", source, kw, index), 16) % self.shared_pool
            size_ident = f"shared-{k}"
            ext, path = "jpg", f"/img/ok/shared-{k}.jpg"
        elif kind in _FIXED_EXT:
            ext = _FIXED_EXT[kind]
            path = f"/img/{kind}/{ident}" + (f".{ext}" if ext else "")
        elif kind.startswith("http_"):
            ext, path = "jpg", f"/status/{kind[5:]}/{ident}.jpg"
        elif kind == "flaky":
            ext, path = "jpg", f"/flaky/{self.flaky_failures}/{ident}.jpg"
        elif kind == "redirect_loop":
            ext, path = "jpg", f"/redirect-loop/{ident}.jpg"
        else:  # redirect, slow, drip, private
            ext, path = "jpg", f"/{kind}/{ident}.jpg"
        base = self.hosts[host]
        w, h = self.gen.size(size_ident)
        page_host = self.hosts[self._host_of(ident)]
        fmt = format_for(ext)
        mime = "image/svg+xml" if ext == "svg" else MIME.get(fmt, "image/jpeg")
        title = f"{kw} specimen {ident[-6:]}"
        rng = int(_h(self.seed, "meta", source, ident), 16)
        extra: dict = {}
        record = {}
        if source in COLLECTIONS:
            inst = INSTITUTIONS[rng % len(INSTITUTIONS)]
            record = {
                "catalog_number": f"{inst[0]}-{inst[1]}-{(rng >> 8) % 90000 + 10000}",
                "institution_code": inst[0], "collection_code": inst[1], "institution": inst[2],
                "country_code": inst[3],
                "locality": LOCALITIES[(rng >> 24) % len(LOCALITIES)],
                "age": PERIODS[(rng >> 32) % len(PERIODS)],
                "scientific_name": f"{kw.split()[0].capitalize() if kw else 'Incertae'} sp. {(rng >> 40) % 50 + 1}",
                "recorded_by": PEOPLE[(rng >> 48) % len(PEOPLE)],
                "year": 1850 + (rng >> 56) % 170,
            }
        if source == "gbif":
            rec_raw, rec_id = GBIF_RECORD_LICENCES[rng % len(GBIF_RECORD_LICENCES)]
            med_raw, med_id = GBIF_MEDIA_LICENCES[(rng >> 4) % len(GBIF_MEDIA_LICENCES)]
            record.update(record_licence=rec_raw, media_licence=med_raw, gbif_key=1_000_000_000 + rng % 900_000_000)
            extra = dict(licence=med_id or rec_id, licence_raw=med_raw or rec_raw,
                         rights_holder=record["institution"])
        elif source == "idigbio":
            text, webst, lid = IDIGBIO_RIGHTS[rng % len(IDIGBIO_RIGHTS)]
            u = str(uuidlib.UUID(_h(self.seed, "uuid", source, kw, index)[:32]))
            record.update(rights=text, webstatement=webst,
                          record_uuid=str(uuidlib.UUID(_h(self.seed, "rec", u)[:32])))
            extra = dict(licence=lid, licence_raw=text, rights_holder=record["institution"], uuid=u,
                         media_url=f"{self.media_base}/v2/media/{u}?size=webview" if self.media_base else None)
        elif source == "wikimedia":
            short, lurl, lic, lid = WIKIMEDIA_LICENCES[rng % len(WIKIMEDIA_LICENCES)]
            artist = PEOPLE[(rng >> 8) % len(PEOPLE)]
            record.update(licence_short=short, licence_url=lurl, licence_code=lic, artist=artist,
                          artist_html=(f'<a href="//commons.wikimedia.org/wiki/User:{artist.replace(" ", "_")}" '
                                       f'title="User:{artist}">{artist}</a>') if rng % 2 else artist,
                          file_title=f"File:{kw.split()[0].capitalize() if kw else 'Fossil'} {ident[-12:]}."
                                     f"{ext or 'jpg'}")
            extra = dict(licence=lid, licence_raw=short, rights_holder=artist)
        return Entry(
            source=source, keyword=kw, index=index, kind=kind, ident=ident, path=path, url=base + path,
            host=host, page_url=f"{page_host}/page/{ident}.html", thumb_url=f"{page_host}/thumb/{ident}.jpg",
            title=title, width=w, height=h, mime=mime, expected_status=self._status_of_kind(kind),
            record=record, **extra,
        )

    @staticmethod
    def _status_of_kind(kind: str, respect_noai: bool = False) -> str:
        if kind in ("ok", "dup", "xdup", "redirect", "flaky"):
            return "stored"
        if kind == "noai":
            return "noai_denied" if respect_noai else "stored"
        if kind in _STATUS_BY_IMAGE_KIND:
            return _STATUS_BY_IMAGE_KIND[kind]
        if kind.startswith("http_"):
            return kind
        return {"redirect_loop": "redirect_loop", "slow": "timeout", "drip": "timeout",
                "private": "robots_denied"}[kind]

    def by_uuid(self, uuid: str) -> Entry | None:
        """The iDigBio entry behind a media uuid (only uuids already served in a search)."""
        with self._lock:
            return self._uuids.get(uuid)

    # ----------------------------------------------------------------- outcomes
    def _classify(self, url: str) -> tuple[str, str | None]:
        """(status without duplicate accounting, byte identity or None) for a URL the hosts serve."""
        parts = urlsplit(url)
        path, query = parts.path, parse_qs(parts.query)
        segs = [s for s in path.split("/") if s]
        m = re.fullmatch(r"/v2/media/([0-9a-f-]{36})", path)
        if m:
            e = self.by_uuid(m.group(1))
            if e is None:
                return "http_404", None
            if e.kind == "private":  # the media API is not behind the image hosts' robots.txt
                return "stored", f"ok/{e.ident}/JPEG"
            return self._classify(e.url)
        if len(segs) >= 3 and segs[0] == "img":
            kind, name = segs[1], segs[2]
            ident, _, ext = name.partition(".")
            if kind not in _STATUS_BY_IMAGE_KIND:
                return "http_404", None
            status = _STATUS_BY_IMAGE_KIND[kind]
            if status != "stored":
                return status, None
            render_kind = "ok" if kind in ("noai", "octet") else kind
            fmt = format_for(ext) if render_kind in ("ok", "thumb") else ""
            width = query.get("w", [""])[0]
            return "stored", f"{render_kind}/{ident}/{fmt}/{width}"
        if len(segs) >= 2 and segs[0] == "status" and segs[1].isdigit():
            return f"http_{int(segs[1])}", None
        if len(segs) == 2 and segs[0] in ("redirect", "slow", "drip", "private", "redirect-loop"):
            ident = segs[1].partition(".")[0]
            st = {"redirect": "stored", "slow": "timeout", "drip": "timeout", "private": "robots_denied",
                  "redirect-loop": "redirect_loop"}[segs[0]]
            return st, (f"ok/{ident}/JPEG/" if st == "stored" else None)
        if len(segs) == 3 and segs[0] == "flaky":
            return "stored", f"ok/{segs[2].partition('.')[0]}/JPEG/"
        if len(segs) == 2 and segs[0] == "thumb":
            return "stored", f"thumb/{segs[1].partition('.')[0]}/JPEG/{query.get('w', [''])[0]}"
        if len(segs) == 2 and segs[0] == "page":
            return "not_image", None
        raise EmulatorError(f"URL {url!r} is not one the emulators serve; expected an image-host path "
                            "such as /img/<kind>/<id>.jpg, /status/<code>, /redirect/..., /v2/media/<uuid>")

    def expected_status(self, url: str, respect_noai: bool = False) -> str:
        """The status a correct pipeline records for ``url``, ignoring duplicates (see expected_summary)."""
        status, _ = self._classify(url)
        if respect_noai and status == "stored" and "/img/noai/" in urlsplit(url).path:
            return "noai_denied"
        return status

    def content_key(self, url: str) -> str | None:
        """Equal for two URLs exactly when they serve the same image bytes (None for failures)."""
        return self._classify(url)[1]

    def expected_summary(self, urls, respect_noai: bool = False) -> Counter:
        """Counts per status for a set of URLs, one ``stored`` per distinct content, the rest ``duplicate``."""
        out: Counter = Counter()
        seen: set = set()
        for url in dict.fromkeys(urls):
            st = self.expected_status(url, respect_noai)
            if st == "stored":
                key = self.content_key(url)
                if key in seen:
                    st = "duplicate"
                seen.add(key)
            out[st] += 1
        return out

    def image_urls(self, n: int, kind: str = "ok", ext: str = "jpg", label: str = "bench") -> list[str]:
        """``n`` distinct URLs of one image kind spread over the hosts (URL lists, benchmarks)."""
        if kind not in IMAGE_KINDS and kind not in ("noai", "octet"):
            raise EmulatorError(f"unknown image kind {kind!r}; choose from: {', '.join(IMAGE_KINDS)}")
        out = []
        for i in range(n):
            ident = f"{label}-{_h(self.seed, 'list', kind, label, i)[:12]}"
            suffix = f".{ext}" if ext else ""
            out.append(f"{self.hosts[i % len(self.hosts)]}/img/{kind}/{ident}{suffix}")
        return out
