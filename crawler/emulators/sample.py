"""The built-in offline sample source: `fid sample-source serve` and `make demo`.

One loopback :class:`~crawler.emulators.EmulatorSet` that answers as a search engine (Bing) and an
open collection (GBIF) for six clades of the taxonomy, drawn by :mod:`crawler.emulators.fossils`:

    Ammonoid (spiral shells)     Trilobite (segmented)        Shark teeth (triangular, with a root)
    Pteridophyte (fronds)        Belemnite (straight guards)  Starfish (five arms)

Every keyword the crawler sends for these clades (their English keywords for Bing, their taxon for
GBIF; see :func:`crawler.runner.keywords_for`) is mapped to its clade's drawing, so a crawl of the
six clades brings back learnable pictures, plus the work every later stage exists for:

- near-duplicates: some pictures are copies of a small pool of specimens per clade, cropped,
  rescaled and re-exposed, found by several keywords and by both sources; the plan also serves
  exact copies on other hosts (``dup``) and resized / recompressed / cropped encodings;
- cross-clade duplicates: the same picture under several clades (the plan's shared ``xdup`` pool),
  and engine results that show another clade's pool specimen (a wrong label);
- junk from the engine: pictures that are not fossils, and clean line drawings;
- broken files: truncated, HTML or SVG served as images, empty bodies, 1x1 pixels, 404s.

GBIF is the trusted collection: its pictures are always the right clade (what `fid review
auto-accept --source gbif` relies on). Everything is a function of the seed, so
:func:`truth` tells, for any URL the sample serves, what its picture shows, and
:func:`answer_key` writes the decisions a careful curator would make (rejects with reasons,
relabels, a few crops) as a CSV for ``python -m curation.review.client``.
"""

from __future__ import annotations

import csv
import math
import random
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from PIL import Image, ImageDraw, ImageEnhance

from .fossils import CLADE_DRAWERS, S, render_specimen
from .imagegen import abstract_content, add_noise, label_of, rng_for
from .plan import EmulatorError, label_for

ENGINES = ("bing", "gbif")
COLLECTION = "gbif"
CLADES = tuple(CLADE_DRAWERS)
CONTENT = "crawler.emulators.sample:sample_content"
SHARED_LABEL = "shared"  # the plan's cross-source pool (``xdup``): /img/ok/shared-<k>.jpg

#: engine results that are not fossils (abstract pictures) or line drawings
JUNK_RATE = 0.06
DRAWING_SHARE = 0.3
#: pictures that are a near-copy of one of POOL_SIZE specimens of their clade
POOL_RATE = 0.12
POOL_SIZE = 6
#: of an engine's pool copies, the share that shows another clade's specimen (a wrong label)
CROSS_RATE = 0.12

#: the plan's mix of bad and duplicate results: every TRICKY_EVERY-th result takes the next kind
TRICKY = ("dup", "truncated", "xdup", "html", "resized", "empty", "recompressed", "http_404", "cropped",
          "tiny", "dup", "svg", "http_403", "xdup")
TRICKY_EVERY = 6


@dataclass(frozen=True)
class Size:
    """How much the sample serves: results per clade (Bing's split over its keywords, GBIF's)."""

    bing_per_clade: int
    gbif_per_clade: int
    side: int = 192  # pictures are square: training squashes pictures to squares, circles stay round


SIZES = {
    "demo": Size(bing_per_clade=300, gbif_per_clade=100),
    "small": Size(bing_per_clade=48, gbif_per_clade=16, side=160),
    "tiny": Size(bing_per_clade=14, gbif_per_clade=6, side=128),
}


def check_size(name: str) -> Size:
    if name not in SIZES:
        raise EmulatorError(f"unknown sample size {name!r}; choose from: {', '.join(SIZES)}")
    return SIZES[name]


# ----------------------------------------------------------------------------- keywords -> clades


@lru_cache(maxsize=1)
def clade_queries() -> dict[str, dict[str, list[str]]]:
    """``{clade: {"bing": [keywords], "gbif": [taxon]}}``: what `fid crawl` asks each source."""
    from dataset_db.taxonomy import load_taxonomy

    from ..runner import keywords_for

    specs = {c.name: c for c in load_taxonomy().clades}
    missing = [c for c in CLADES if c not in specs]
    if missing:
        raise EmulatorError(f"the taxonomy has no clade {missing[0]!r}; the sample source draws: {', '.join(CLADES)}")
    out = {}
    for name in CLADES:
        c = specs[name]
        info = {"clade": c.name, "taxon": c.taxon, "keywords": c.keywords}
        out[name] = {eng: keywords_for(eng, info) for eng in ENGINES}
    return out


@lru_cache(maxsize=1)
def label_table() -> dict[str, tuple[str, bool]]:
    """Content label (slug of a query's first word) -> (clade, from the trusted collection)."""
    seen: dict[str, set] = {}
    for clade, per_engine in clade_queries().items():
        for eng, queries in per_engine.items():
            for q in queries:
                seen.setdefault(label_for(q), set()).add((clade, eng == COLLECTION))
    # a label two clades share (none in the shipped taxonomy) draws junk rather than guessing
    return {lab: next(iter(v)) for lab, v in seen.items() if len({c for c, _ in v}) == 1}


# ----------------------------------------------------------------------------- what a picture shows


@dataclass(frozen=True)
class Pick:
    """What one picture shows: ``specimen`` / ``copy`` (of pool specimen ``k`` of ``clade``),
    ``junk`` (not a fossil) or ``drawing`` (a clean line drawing of ``clade``)."""

    kind: str
    clade: str | None
    k: int | None = None

    @property
    def is_fossil_photo(self) -> bool:
        return self.kind in ("specimen", "copy")


def pick(rng: random.Random, label: str | None) -> Pick:
    """Decide what the picture for ``label`` shows, drawing from ``rng`` (the same draws as the
    picture itself, so :func:`truth` can answer without drawing)."""
    if label == SHARED_LABEL:
        return Pick("specimen", CLADES[rng.randrange(len(CLADES))])
    hit = label_table().get(label or "")
    if hit is None:
        return Pick("junk", None)
    clade, trusted = hit
    u = rng.random()
    if not trusted and u < JUNK_RATE:
        return Pick("drawing" if rng.random() < DRAWING_SHARE else "junk", clade)
    if rng.random() < POOL_RATE:
        k = rng.randrange(POOL_SIZE)
        if not trusted and rng.random() < CROSS_RATE:
            others = [c for c in CLADES if c != clade]
            clade = others[rng.randrange(len(others))]
        return Pick("copy", clade, k)
    return Pick("specimen", clade)


@lru_cache(maxsize=64)
def _pool_specimen(clade: str, k: int) -> Image.Image:
    return render_specimen(rng_for("sample-pool", clade, k), CLADE_DRAWERS[clade], S, S)


def _near_copy(rng: random.Random, clade: str, k: int, w: int, h: int) -> Image.Image:
    """Pool specimen ``k`` of ``clade``, slightly cropped, rescaled to w x h and re-exposed."""
    base = _pool_specimen(clade, k)
    m = [rng.uniform(0.0, 0.06) * S for _ in range(4)]
    img = base.crop((int(m[0]), int(m[1]), int(S - m[2]), int(S - m[3]))).resize((w, h), Image.Resampling.BILINEAR)
    img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.9, 1.1))
    return add_noise(img, rng, rng.uniform(1, 4))


def _drawing(rng: random.Random, clade: str, w: int, h: int) -> Image.Image:
    """A clean line drawing on paper: the clade's outline, no photograph."""
    paper = (250, 250, 245)
    img = Image.new("RGB", (S, S), paper)
    CLADE_DRAWERS[clade](ImageDraw.Draw(img), rng, paper, (25, 25, 25))
    d = ImageDraw.Draw(img)
    d.rectangle((4, 4, S - 5, S - 5), outline=(25, 25, 25), width=2)
    img = img.rotate(rng.uniform(-20, 20), fillcolor=paper)
    return img.resize((w, h), Image.Resampling.BILINEAR)


def sample_content(rng: random.Random, label: str | None, w: int, h: int) -> Image.Image:
    """Content function of the sample source (see :class:`crawler.emulators.imagegen.ImageGen`)."""
    p = pick(rng, label)
    if p.kind == "junk":
        return abstract_content(rng, label, w, h)
    if p.kind == "drawing":
        return _drawing(rng, p.clade, w, h)
    if p.kind == "copy":
        return _near_copy(rng, p.clade, p.k, w, h)
    return render_specimen(rng, CLADE_DRAWERS[p.clade], w, h)


_IDENT = re.compile(r"^(?:[a-z0-9]+-[0-9a-f]{12}|shared-\d+)$")


def ident_of(url: str) -> str | None:
    """The picture identity behind an image URL the sample serves (None for other URLs)."""
    segs = [s for s in urlsplit(url).path.split("/") if s]
    if not segs:
        return None
    ident = segs[-1].partition(".")[0]
    return ident if _IDENT.match(ident) else None


def truth(url: str, seed: int = 0) -> Pick | None:
    """What the picture at ``url`` (served by the sample source with ``seed``) shows."""
    ident = ident_of(url)
    if ident is None:
        return None
    return pick(rng_for(seed, "content", ident), label_of(ident))


# ----------------------------------------------------------------------------- the emulator settings


def emulator_kwargs(size: str = "demo", seed: int = 0) -> dict:
    """Keyword arguments of :class:`~crawler.emulators.EmulatorSet` for the sample source."""
    sz = check_size(size)
    totals: dict[str, int] = {}
    for clade, per_engine in clade_queries().items():
        gbif = per_engine["gbif"]
        bing_total = sz.bing_per_clade + (0 if gbif else sz.gbif_per_clade)  # no taxon: Bing makes up
        for q in gbif:
            totals[f"gbif:{q}"] = math.ceil(sz.gbif_per_clade / len(gbif))
        kws = per_engine["bing"]
        for q in kws:
            totals[f"bing:{q}"] = math.ceil(bing_total / len(kws))
    return dict(seed=seed, n_hosts=3, total_per_keyword=12, totals=totals, tricky=list(TRICKY),
                tricky_every=TRICKY_EVERY, shared_pool=6, content=CONTENT, size_range=(sz.side, sz.side),
                require_contact_ua=(), cache_size=64, slow_delay=1.0)


def max_per_keyword(size: str = "demo") -> int:
    """A `fid crawl --max-per-keyword` large enough to take everything the sample has."""
    sz = check_size(size)
    return sz.bing_per_clade + sz.gbif_per_clade


def engine_url_args(base_urls: dict) -> list[str]:
    """``ENGINE=URL`` values of `fid crawl --engine-url` for the sample's two sources."""
    return [f"{e}={base_urls[e]}" for e in ENGINES]


class SampleSource:
    """The sample source on loopback: ``with SampleSource("small") as src: src.engine_urls``."""

    def __init__(self, size: str = "demo", seed: int = 0, port: int = 0):
        from .emulator import EmulatorSet

        self.size, self.seed = size, seed
        self.emu = EmulatorSet(port=port, **emulator_kwargs(size, seed))

    def start(self) -> "SampleSource":
        self.emu.start()
        return self

    def stop(self) -> None:
        self.emu.stop()

    def __enter__(self) -> "SampleSource":
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def base_urls(self) -> dict:
        return {e: self.emu.base_urls[e] for e in ENGINES}

    @property
    def engine_urls(self) -> list[str]:
        return engine_url_args(self.emu.base_urls)

    def info(self) -> dict:
        return {"size": self.size, "seed": self.seed, "engines": list(ENGINES), "clades": list(CLADES),
                "base_urls": self.base_urls, "engine_urls": self.engine_urls,
                "max_per_keyword": max_per_keyword(self.size)}

    def entries(self):
        """Every result the sample lists for the six clades: (clade, source, plan entry)."""
        for clade, per_engine in clade_queries().items():
            for eng in ENGINES:
                for q in per_engine[eng]:
                    for e in self.emu.entries(eng, q):
                        yield clade, eng, e


ANSWER_FIELDS = ("url", "decision", "reason", "clade", "crop", "note")


def answer_key(source: SampleSource, crops_per_clade: int = 1) -> list[dict]:
    """The decisions a careful curator makes on the engine's results (the collection is trusted):
    reject pictures that are not fossils (``not_fossil``) and line drawings
    (``drawing_or_reconstruction``), relabel pictures of another clade, and crop a few specimens to
    their central part. One row per image URL, in the sample's order."""
    rows: list[dict] = []
    seen: set[str] = set()
    crops: dict[str, int] = {}
    for clade, eng, e in source.entries():
        if eng == COLLECTION or e.expected_status != "stored" or e.url in seen:
            continue
        p = truth(e.url, source.seed)
        if p is None or label_of(ident_of(e.url) or "") == SHARED_LABEL:
            continue  # the shared pool is sighted under several clades: left to the conflicts queue
        seen.add(e.url)
        if p.kind == "junk":
            rows.append(dict(url=e.url, decision="reject", reason="not_fossil", note="not a fossil"))
        elif p.kind == "drawing":
            rows.append(dict(url=e.url, decision="reject", reason="drawing_or_reconstruction",
                             note="line drawing"))
        elif p.clade != clade:
            rows.append(dict(url=e.url, decision="relabel", clade=p.clade, note=f"shows a {p.clade} specimen"))
        elif (e.kind == "ok" and p.kind == "specimen" and e.url.endswith(".jpg")
              and crops.get(clade, 0) < crops_per_clade):
            crops[clade] = crops.get(clade, 0) + 1
            w, h = e.width, e.height
            box = (round(w * 0.06), round(h * 0.06), round(w * 0.94), round(h * 0.94))
            rows.append(dict(url=e.url, decision="crop", crop=",".join(map(str, box)), note="trim the margin"))
    return [{k: r.get(k, "") for k in ANSWER_FIELDS} for r in rows]


def write_answer_key(source: SampleSource, path: str | Path) -> int:
    rows = answer_key(source)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=ANSWER_FIELDS)
        w.writeheader()
        w.writerows(rows)
    tmp.replace(path)
    return len(rows)
