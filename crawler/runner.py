"""Running crawls in-process (Scrapy's CrawlerProcess), `fid fetch`, and `fid doctor`.

Twisted's reactor cannot be restarted: :func:`run_crawl` and :func:`run_fetch` run once per process
(the CLI, or ``python -m crawler.runner`` in tests, start a fresh process each time).
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dataset_db.errors import FidError

from .settings import COLLECTIONS, check_engines, crawl_settings, parse_engine_urls

#: Per (clade, source) columns of the live display and the summary.
COLUMNS = ("pages", "items", "parse_errors", "skipped", "known", "stored", "duplicate", "failed")


@dataclass
class CrawlOptions:
    workers: int = max(1, min(4, (os.cpu_count() or 2)))
    batch_size: int = 200
    min_side: int = 64
    max_side: int = 512
    keep_original: bool = False
    respect_noai: bool = False
    refetch: bool = False
    timeout: float = 30.0
    max_bytes: int = 25 * 1024 * 1024
    per_domain: int = 4
    engine_delay: float = 1.0
    autothrottle: bool = True
    log_level: str = "WARNING"
    engine_urls: list[str] = field(default_factory=list)
    extra_settings: dict = field(default_factory=dict)


def keywords_for(engine: str, clade: dict) -> list[str]:
    """The queries a source runs for a clade: collections use the scientific name (GBIF, iDigBio)
    or English keywords (Commons); Baidu its Chinese keywords first."""
    kws = clade.get("keywords") or {}
    if engine in ("gbif", "idigbio"):
        return [clade["taxon"]] if clade["taxon"] else []  # no taxon (Trace fossil): nothing to ask
    langs = ["zh", "en"] if engine == "baidu" else ["en"]
    out: list[str] = []
    for lang in langs:
        for k in kws.get(lang, []):
            if k not in out:
                out.append(k)
    return out or [clade["clade"]]


def plan_queries(clades: list[dict], engine: str) -> list[dict]:
    return [{"clade": c["clade"], "taxon": c["taxon"], "keyword": kw}
            for c in clades for kw in keywords_for(engine, c)]


def _snapshot(crawlers) -> dict:
    """Counts per (clade, source) from the crawlers' stats (``fid/<kind>/<source>/<clade>``)."""
    rows: dict[tuple[str, str], dict] = {}
    for c in crawlers:
        for key, val in (c.stats.get_stats() or {}).items():
            if not key.startswith("fid/"):
                continue
            parts = key.split("/", 3)
            if len(parts) != 4:
                continue
            _, kind, source, clade = parts
            r = rows.setdefault((clade, source), {k: 0 for k in COLUMNS})
            if kind in r:
                r[kind] += val
            elif kind == "invalid_url":
                r["failed"] += val
    return {"rows": [{"clade": k[0], "source": k[1], **v} for k, v in sorted(rows.items())]}


def _totals(rows: list[dict]) -> dict:
    return {k: sum(r[k] for r in rows) for k in COLUMNS}


_NOT_STATUSES = ("pages", "items", "parse_errors", "skipped", "known", "failed")


def _status_counts(crawlers) -> dict:
    """How the URLs handled in this run ended, by status name."""
    out: dict[str, int] = {}
    for c in crawlers:
        for key, val in (c.stats.get_stats() or {}).items():
            parts = key.split("/", 3)
            if len(parts) == 4 and parts[0] == "fid" and parts[1] not in _NOT_STATUSES:
                out[parts[1]] = out.get(parts[1], 0) + val
    return dict(sorted(out.items()))


def _run(catalog, settings, jobs: list[tuple[str, dict, int]], opts: CrawlOptions,
         on_tick: Callable[[dict], None] | None) -> dict:
    """Run ``jobs`` = [(spider name, spider kwargs, run_id)] in one CrawlerProcess."""
    from scrapy.crawler import CrawlerProcess

    from .pipelines import shared_pool, shutdown_shared
    from .spiders import spider_class

    s = crawl_settings(user_agent=settings.user_agent, db_url=catalog.url, store=str(settings.store),
                       engine_urls=opts.engine_urls, workers=opts.workers, batch_size=opts.batch_size,
                       min_side=opts.min_side, max_side=opts.max_side, keep_original=opts.keep_original,
                       respect_noai=opts.respect_noai, refetch=opts.refetch, timeout=opts.timeout,
                       max_bytes=opts.max_bytes, per_domain=opts.per_domain, engine_delay=opts.engine_delay,
                       autothrottle=opts.autothrottle, log_level=opts.log_level, extra=opts.extra_settings)
    t0 = time.monotonic()
    # Everything imported so far lives as long as the process: gc.freeze() moves it out of the
    # collector's sight, so neither this process's full collections nor the forked image workers'
    # walk (and, in the workers, copy-on-write copy) those objects again
    gc.freeze()
    shared_pool(opts.workers)  # image workers start now, before the reactor and any thread
    process = CrawlerProcess(s)
    crawlers = []
    for name, kwargs, run_id in jobs:
        crawler = process.create_crawler(spider_class(name))
        crawlers.append(crawler)
        process.crawl(crawler, run_id=run_id, **kwargs)
    loop_call = None
    if on_tick is not None:
        from twisted.internet import task

        def tick():
            snap = _snapshot(crawlers)
            snap["seconds"] = time.monotonic() - t0
            on_tick(snap)

        loop_call = task.LoopingCall(tick)
        loop_call.start(0.5, now=False)
    try:
        process.start(stop_after_crawl=True, install_signal_handlers=True)
    finally:
        if loop_call is not None and loop_call.running:
            loop_call.stop()
        shutdown_shared()
    seconds = time.monotonic() - t0
    snap = _snapshot(crawlers)
    totals = _totals(snap["rows"])
    per_run = {}
    for (name, _kw, run_id), c in zip(jobs, crawlers):
        sub = _snapshot([c])
        per_run[run_id] = {"source": name, **_totals(sub["rows"]), "statuses": _status_counts([c]),
                           "finish_reason": (c.stats.get_value("finish_reason") or "")}
    from dataset_db.repo import finish_run

    with catalog.session() as ses:
        for run_id, counts in per_run.items():
            finish_run(ses, run_id, counts, status="done" if counts["finish_reason"] == "finished" else "failed")
    stored = totals["stored"]
    return {"rows": snap["rows"], "totals": totals, "statuses": _status_counts(crawlers),
            "runs": list(per_run), "seconds": round(seconds, 3),
            "images_per_second": round(stored / seconds, 2) if seconds > 0 else 0.0}


def run_crawl(catalog, settings, *, clades: list[str] | None, engines: list[str] | None = None,
              max_per_keyword: int | None = None, options: CrawlOptions | None = None,
              on_tick: Callable[[dict], None] | None = None) -> dict:
    """Crawl ``clades`` (None: all) on ``engines`` (None: those enabled in fid.toml) into the catalog."""
    from dataset_db import repo_crawl
    from dataset_db.repo import start_run

    opts = options or CrawlOptions()
    parse_engine_urls(opts.engine_urls)  # bad --engine-url fails before anything starts
    engines = check_engines(engines or settings.sources)
    if not engines:
        raise FidError("no engines to crawl; pass --engines or set [crawl] sources in fid.toml")
    if max_per_keyword is not None and max_per_keyword < 1:
        raise FidError(f"--max-per-keyword must be at least 1; got {max_per_keyword}")
    with catalog.session() as s:
        info = repo_crawl.crawl_clades(s, clades)
        jobs = []
        for eng in engines:
            queries = plan_queries(info, eng)
            limit = max_per_keyword or settings.limits.get(eng, 200)
            run_id = start_run(s, "crawl", source=eng, clade=",".join(c["clade"] for c in info)[:128],
                               settings={"max_per_keyword": limit, "queries": len(queries),
                                         "engine_urls": parse_engine_urls(opts.engine_urls).get(eng, {})})
            jobs.append((eng, {"queries": queries, "max_per_keyword": limit}, run_id))
    res = _run(catalog, settings, jobs, opts, on_tick)
    res["engines"] = engines
    res["clades"] = [c["clade"] for c in info]
    return res


def run_fetch(catalog, settings, *, clade: str | None = None, limit: int | None = None,
              options: CrawlOptions | None = None, on_tick: Callable[[dict], None] | None = None) -> dict:
    """Download the catalog's pending and retryable URLs (optionally of one clade, at most ``limit``)."""
    from dataset_db import repo_crawl
    from dataset_db.repo import start_run

    opts = options or CrawlOptions()
    if limit is not None and limit < 1:
        raise FidError(f"--limit must be at least 1; got {limit}")
    with catalog.session() as s:
        urls = repo_crawl.pending_urls(s, clade=clade, limit=limit)
        run_id = start_run(s, "fetch", source="catalog", clade=clade or "",
                           settings={"limit": limit, "urls": len(urls)})
    res = _run(catalog, settings, [("catalog", {"urls": urls}, run_id)], opts, on_tick)
    res["urls"] = len(urls)
    return res


def sample_source(settings, *, engines: list[str], keyword: str, clade: str = "unassigned",
                  taxon: str | None = None, max_per_keyword: int = 20, options: CrawlOptions | None = None) -> dict:
    """Run spiders for one keyword without a catalog or downloads: the items each source yields and
    its page/parse counts (to check a source still parses after it changed its pages)."""
    from scrapy import signals
    from scrapy.crawler import CrawlerProcess

    from .spiders import spider_class

    opts = options or CrawlOptions()
    engines = check_engines(engines)
    s = crawl_settings(user_agent=settings.user_agent, db_url="", store="", engine_urls=opts.engine_urls,
                       timeout=opts.timeout, engine_delay=opts.engine_delay, log_level=opts.log_level,
                       extra={"ITEM_PIPELINES": {}, **opts.extra_settings})
    process = CrawlerProcess(s)
    items: list[dict] = []
    crawlers = []

    def collect(item, **_):
        items.append(dict(item))

    for eng in engines:
        crawler = process.create_crawler(spider_class(eng))
        crawler.signals.connect(collect, signal=signals.item_scraped)  # weak ref: `collect` outlives it
        crawlers.append(crawler)
        query = {"clade": clade, "taxon": taxon or keyword, "keyword": keyword}
        process.crawl(crawler, queries=[query], max_per_keyword=max_per_keyword)
    process.start(stop_after_crawl=True)
    snap = _snapshot(crawlers)
    return {"items": items, "rows": snap["rows"], "totals": _totals(snap["rows"])}


# ---- doctor ---------------------------------------------------------------------------------------

def doctor(catalog, store_root: str | os.PathLike, fix: bool = False) -> dict:
    """Check the image store against the catalog.

    Reports orphan files (in the store, not in the catalog: a crawl killed between writing a file
    and committing its batch), missing files (rows whose file is gone), temp files left by a killed
    writer and URLs marked downloaded without an image. ``fix`` deletes orphans and temp files and
    sends the URLs of missing images back to ``pending``. Do not ``--fix`` while a crawl is running.
    """
    from curation.store import STORE_MARKER, TMP_PREFIX, ImageStore

    from dataset_db import repo_crawl

    store = ImageStore(store_root)
    root = Path(store_root)
    files: set[str] = set()
    if root.exists():
        for dirpath, _dirs, names in os.walk(root):
            for n in names:
                if not n.startswith(TMP_PREFIX) and not (n == STORE_MARKER and dirpath == str(root)):
                    files.add(Path(dirpath, n).relative_to(root).as_posix())
    temps = [str(p) for p in store.temp_files()]
    with catalog.session() as s:
        paths = repo_crawl.image_paths(s)
        dangling = repo_crawl.dangling_urls(s)
    orphans = sorted(files - set(paths))
    missing_paths = sorted(set(paths) - files)
    missing_ids = sorted({paths[p] for p in missing_paths})
    result = {"store": str(root), "files": len(files), "images": len(set(paths.values())),
              "orphans": len(orphans), "missing": len(missing_ids), "temp_files": len(temps),
              "dangling_urls": dangling, "orphan_examples": orphans[:10], "missing_examples": missing_paths[:10],
              "fixed": {}}
    if fix:
        for rel in orphans:
            try:
                (root / rel).unlink()
            except FileNotFoundError:
                pass
        for t in temps:
            try:
                os.unlink(t)
            except FileNotFoundError:
                pass
        with catalog.session() as s:
            repaired = repo_crawl.forget_images(s, missing_ids)
        result["fixed"] = {"orphans_deleted": len(orphans), "temp_files_deleted": len(temps), **repaired}
    result["ok"] = not (orphans or missing_ids or temps or dangling)
    return result


def _main(argv=None) -> int:
    """``python -m crawler.runner ARGS``: the `fid` CLI in a fresh process (tests use it)."""
    from dataset_db.cli import main

    return main(args=argv, prog_name="fid", standalone_mode=True)


if __name__ == "__main__":  # pragma: no cover
    import sys

    sys.exit(_main(sys.argv[1:]))


__all__ = ["COLLECTIONS", "CrawlOptions", "doctor", "plan_queries", "run_crawl", "run_fetch", "sample_source"]
