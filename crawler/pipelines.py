"""The image pipeline: item -> URL + sighting rows -> download (downloader middlewares apply:
robots.txt, redirects, backoff, size/time limits) -> decode/normalise/hash/store in a process pool
-> catalog rows in batches.

Order is what makes a crawl resumable: a file is written to the store (temp file + rename) before
the row that points at it is committed, and a URL's status changes only in that same batch
transaction. A SIGKILL loses at most the uncommitted batch: its URLs are still ``pending`` and the
next run downloads them again (their files are already there and are not rewritten); nothing
points at a missing file. `fid doctor` reports the orphan files such a kill may leave.

The CPU work never runs in the reactor: worker processes (:mod:`crawler.imageworkers`, fed
through one pipe each straight from the event loop) run :func:`curation.images.process_and_store`
(bytes go in, only a plain dict of metadata comes back), and catalog writes run on one database
thread, in order.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import logging
import os
from functools import partial

import scrapy
from scrapy.core.downloader import Downloader
from scrapy.exceptions import IgnoreRequest, NotConfigured

from dataset_db import repo_crawl
from dataset_db import status as st

from .imageworkers import ImageWorkers
from .spiders import stat_key

logger = logging.getLogger(__name__)

_SHARED: dict[str, object] = {}
#: meta of every image request (see fetch_one)
IMAGE_REQUEST_META = {"fid_image": True, "dont_retry": True, "dont_merge_cookies": True}
#: how often an idle pipeline asks the engine whether the spider is done (CatalogPipeline._poke_engine)
IDLE_POKE_SECONDS = 0.1


def shared_pool(workers: int) -> ImageWorkers:
    """One set of image worker processes per fid process, shared by every spider's pipeline. The
    runner creates it before the reactor starts, so the workers are forked from a single-threaded
    process; they import curation.images (and warm up) while the first pages load."""
    key = f"pool:{workers}"
    if key not in _SHARED:
        _SHARED[key] = ImageWorkers(workers, process_in_worker, warm_up=_warm_up)
    return _SHARED[key]


def _warm_up() -> None:
    """Runs once in each worker before its first task. One image is one process's work: numpy's
    BLAS gets one thread (its default, a thread per core, spun idle between the pHash's tiny
    matrix products). Then what the worker imported is frozen out of the garbage collector's
    sight, as the crawling process does before forking."""
    import gc

    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    import curation.images  # noqa: F401

    gc.freeze()


def process_in_worker(data: bytes, store: str, **options) -> dict:
    """Runs in a pool worker: :func:`curation.images.process_and_store` (imported there, so the
    crawling process never loads SciPy & co). Returns a plain dict -- ``{"status", "error_message"}``
    or ``{"status": "stored", "image": catalog row}`` -- so unpickling it in the crawling process
    imports nothing and costs little."""
    from curation.images import process_and_store

    res = process_and_store(data, store, **options)
    if not res.ok:
        return {"status": res.status, "error_message": res.error_message}
    return {"status": "stored", "image": res.catalog_row()}


def shared_db(db_url: str):
    """(engine, single-thread executor): catalog writes happen one at a time, off the reactor."""
    key = f"db:{db_url}"
    if key not in _SHARED:
        from dataset_db.session import make_engine

        _SHARED[key] = (make_engine(db_url), cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="fid-db"))
    return _SHARED[key]


def shutdown_shared() -> None:
    for key, obj in list(_SHARED.items()):
        if isinstance(obj, ImageWorkers):
            obj.shutdown()
        elif key.startswith("db:"):
            obj[1].shutdown(wait=True)
            obj[0].dispose()
        del _SHARED[key]


class SlotLimitedDownloader(Downloader):
    """Scrapy's downloader with per-slot concurrency that holds under the asyncio reactor.

    Scrapy 2.19's ``Downloader._process_queue`` pops queued requests while
    ``slot.free_transfer_slots() > 0`` and schedules each download as an asyncio task; the request
    joins ``slot.transferring`` only when that task first runs, on a later loop turn. So every
    request queued on a slot at that moment starts at once: with CONCURRENT_REQUESTS_PER_DOMAIN=2,
    8 queued image URLs of one host were all in flight together (tests/test_crawl_politeness.py;
    a plain Scrapy spider shows the same, the epoll reactor does not). Counting the request as
    transferring when its task is created (``_wait_for_download`` is called synchronously to build
    the coroutine) restores the limit; ``_download`` adds it again (a set) and removes it when done.
    """

    def _wait_for_download(self, slot, request, queue_dfd):
        slot.transferring.add(request)
        return super()._wait_for_download(slot, request, queue_dfd)


class Flow:
    """Items inside the catalog pipelines of this process, and how many of them wait on a batch.

    When every item in the pipeline waits on a batch, nothing will join a batch soon (more items
    need a download first), so the batches flush at once instead of on their timers: the end of a
    crawl, or a crawl that trickles, no longer waits out the 0.5 s timer, and the in-flight bound
    never idles the downloads while a half-full batch waits for company."""

    def __init__(self):
        self.active = 0
        self.waiting = 0
        self.batchers: list[Batcher] = []

    def check(self) -> None:
        if self.waiting and self.waiting >= self.active:
            for b in self.batchers:
                b.flush()


class Batcher:
    """Collects values; ``fn(list)`` runs on ``executor`` when ``size`` are waiting, ``wait``
    seconds after the first, or when every item of ``flow`` waits on a batch; each ``add``
    returns a future of that value's result."""

    def __init__(self, fn, size: int, wait: float, executor, flow: Flow | None = None):
        self.fn, self.size, self.wait, self.executor = fn, size, wait, executor
        self.values: list = []
        self.futures: list[asyncio.Future] = []
        self.timer = None
        self.running: set[asyncio.Future] = set()
        self.flow = flow
        if flow is not None:
            flow.batchers.append(self)

    def add(self, value) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self.values.append(value)
        self.futures.append(fut)
        if self.flow is not None:
            self.flow.waiting += 1
        if len(self.values) >= self.size:
            self.flush()
        elif self.flow is not None and self.flow.waiting >= self.flow.active:
            self.flow.check()
        elif self.timer is None:
            self.timer = loop.call_later(self.wait, self.flush)
        return fut

    def flush(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if not self.values:
            return
        values, futures = self.values, self.futures
        self.values, self.futures = [], []
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(loop.run_in_executor(self.executor, self.fn, values))
        self.running.add(task)

        def done(t):
            self.running.discard(t)
            if self.flow is not None:
                self.flow.waiting -= len(futures)
            exc = t.exception()
            results = None if exc else t.result()
            for i, f in enumerate(futures):
                if f.done():
                    continue
                if exc is not None:
                    f.set_exception(exc)
                else:
                    f.set_result(results[i] if results is not None else None)

        task.add_done_callback(done)

    async def close(self) -> None:
        self.flush()
        while self.running:
            await asyncio.gather(*list(self.running), return_exceptions=True)


def _failure_status(exc: BaseException) -> tuple[str, str]:
    """Map a download exception to a status name and a one-line message."""
    name = type(exc).__name__
    msg = (str(exc).strip().splitlines() or [name])[0][:300] or name
    if isinstance(exc, IgnoreRequest):
        low = msg.lower()
        if "robots" in low:
            return "robots_denied", msg
        if "redirect" in low:
            return "redirect_loop", msg
        return "error", f"ignored: {msg}"
    text = f"{type(exc).__module__}.{name}".lower()
    if "timeout" in text or "timedout" in text:
        return "timeout", f"{name}: {msg}"
    if "cancelled" in text or "maxsize" in msg.lower() or "max size" in msg.lower():
        return "too_large", f"download cancelled (size limit): {msg}"
    if "dnslookup" in text or "cannotresolve" in text:
        return "dns_error", f"{name}: {msg}"
    if "ssl" in text or "tls" in text or "certificate" in text:
        return "tls_error", f"{name}: {msg}"
    if "connection" in text or "refused" in text or "lost" in text or "neverreceived" in text \
            or "dataloss" in text:
        return "connection_error", f"{name}: {msg}"
    if isinstance(exc, (ValueError,)) and "url" in msg.lower():
        return "invalid_url", msg
    return "error", f"{name}: {msg}"


class CatalogPipeline:
    """Every item: sighting into the catalog, image downloaded and stored when it needs to be."""

    def __init__(self, crawler, db_url: str, store: str, workers: int, batch_size: int, options: dict,
                 respect_noai: bool, refetch: bool, max_bytes: int, max_inflight: int = 32):
        self.crawler = crawler
        self.db_url, self.store = db_url, store
        self.workers, self.batch_size = workers, batch_size
        self.options = options
        self.respect_noai, self.refetch, self.max_bytes = respect_noai, refetch, max_bytes
        self.inflight: set[int] = set()
        self.max_inflight = max(1, max_inflight)
        # Outcomes commit when half the in-flight bound waits on a commit (or batch_size, if
        # smaller): downloads go on with the other half while a group commits. Committing only
        # when the whole bound waited stopped every download for each commit (~0.2 s idle per
        # 500 images on the ingest benchmark) and a kill still costs at most max_inflight URLs.
        self.commit_size = max(1, min(batch_size, self.max_inflight // 2))

    @classmethod
    def from_crawler(cls, crawler):
        s = crawler.settings
        if not s.get("FID_DB_URL"):
            raise NotConfigured("FID_DB_URL is not set: the catalog pipeline has no catalog to write to")
        if not s.get("FID_STORE"):
            raise NotConfigured("FID_STORE is not set: the catalog pipeline has no image store")
        options = {"min_side": s.getint("FID_MIN_SIDE", 64), "max_side": s.getint("FID_MAX_SIDE", 512),
                   "keep_original": s.getbool("FID_KEEP_ORIGINAL", False)}
        return cls(crawler, s["FID_DB_URL"], s["FID_STORE"], max(1, s.getint("FID_WORKERS", 2)),
                   max(1, s.getint("FID_BATCH_SIZE", 200)), options, s.getbool("FID_RESPECT_NOAI", False),
                   s.getbool("FID_REFETCH", False), s.getint("DOWNLOAD_MAXSIZE", 0),
                   s.getint("FID_MAX_INFLIGHT", 0) or max(32, s.getint("FID_BATCH_SIZE", 200)))

    def open_spider(self, spider=None):
        engine, db_exec = shared_db(self.db_url)
        self.pool = shared_pool(self.workers)
        spider = spider or self.crawler.spider
        run_id = getattr(spider, "run_id", None)
        # shared by every spider of the process: one bound on work in flight, one outcome batch
        key = f"results:{self.db_url}"
        if key not in _SHARED:
            flow = Flow()
            _SHARED[key] = (asyncio.Semaphore(self.max_inflight),
                            Batcher(partial(self._record, engine), self.commit_size, 0.5, db_exec, flow), flow)
        self.slots, self.results, self.flow = _SHARED[key]
        self.sightings = Batcher(partial(self._upsert, engine, run_id), max(50, self.batch_size), 0.2, db_exec,
                                 self.flow)
        from twisted.internet import task

        self.poker = task.LoopingCall(self._poke_engine)
        self.poker.start(IDLE_POKE_SECONDS, now=False)

    def _poke_engine(self) -> None:
        """Let the engine notice sooner that the spider is done. Scrapy 2.19 checks for an idle
        spider when a download finishes and otherwise only on its 5-second heartbeat; items that
        ``start()`` yields (the catalog spider's) finish with no download of the engine's, so the
        last one was followed by up to 5 s of nothing. While no item is in the pipeline, ask for
        that check every IDLE_POKE_SECONDS (what the heartbeat does, sooner; a no-op otherwise)."""
        if self.flow.active:
            return
        nextcall = getattr(getattr(self.crawler.engine, "_slot", None), "nextcall", None)
        if nextcall is not None:
            nextcall.schedule()

    @staticmethod
    def _upsert(engine, run_id, items):
        info = repo_crawl.upsert_items(engine, run_id, items)
        return [info.get(it["image_url"]) for it in items]

    @staticmethod
    def _record(engine, rows):
        return repo_crawl.record_outcomes(engine, rows)

    async def close_spider(self, spider=None):
        if self.poker.running:
            self.poker.stop()
        await self.sightings.close()
        if self.sightings in self.flow.batchers:
            self.flow.batchers.remove(self.sightings)
        await self.results.close()

    # ---- per item -------------------------------------------------------------------------------
    def _inc(self, kind: str, item) -> None:
        stats = self.crawler.stats
        stats.inc_value(stat_key(kind, item["source"], item["clade"]))
        stats.inc_value(f"fid/{kind}")

    async def process_item(self, item, spider=None):
        self.flow.active += 1
        try:
            return await self._process_item(item)
        finally:
            self.flow.active -= 1
            self.flow.check()

    async def _process_item(self, item):
        if item.get("url_id") is None:
            info = await self.sightings.add(dict(item))
            if info is None:
                self._inc("invalid_url", item)
                return item
            if not repo_crawl.needs_download(info, self.refetch):
                self._inc("known", item)
                return item
            url_id, url = info["url_id"], info["url"]
        else:
            url_id, url = item["url_id"], item["image_url"]
        if url_id in self.inflight:
            self._inc("known", item)
            return item
        self.inflight.add(url_id)
        # Bounded work in flight, from download to commit: downloads never run far ahead of the
        # image workers and the catalog, so a kill loses (and the next run re-downloads) at most
        # FID_MAX_INFLIGHT URLs (default: the batch size, at least 32).
        async with self.slots:
            row = await self.fetch_one(url)
            row["url_id"] = url_id
            statuses = await self.results.add(row)
        self._inc(statuses if isinstance(statuses, str) else row["status"], item)
        if row["status"] not in ("stored", "duplicate"):
            self._inc("failed", item)
        return item

    async def fetch_one(self, url: str) -> dict:
        """Download and process one URL; the outcome row (status, http_status, error, image)."""
        try:
            # no handle_httpstatus_*: redirects must still be followed. dont_retry: a failed
            # download is recorded with a retryable status and retried by a later run instead.
            # dont_merge_cookies: image requests neither send nor keep cookies (nothing needs them;
            # the cookie jar was ~3% of the crawling process per image)
            request = scrapy.Request(url, dont_filter=True, meta=dict(IMAGE_REQUEST_META))
        except ValueError as exc:
            return {"status": "invalid_url", "error_message": str(exc)[:300], "http_status": None}
        try:
            response = await self.crawler.engine.download_async(request)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a status
            status, msg = _failure_status(exc)
            return {"status": status, "error_message": msg, "http_status": None}
        code = response.status
        if not 200 <= code < 300:
            if 300 <= code < 400 and response.meta.get("redirect_times", 0) >= \
                    self.crawler.settings.getint("REDIRECT_MAX_TIMES", 20):
                return {"status": "redirect_loop", "error_message": "too many redirects", "http_status": code}
            return {"status": st.http_status(code), "error_message": f"HTTP {code} from {response.url}",
                    "http_status": code}
        if self.respect_noai:
            tags = b",".join(response.headers.getlist(b"X-Robots-Tag")).decode("latin-1").lower()
            if "noai" in tags or "noimageai" in tags:
                return {"status": "noai_denied", "error_message": f"X-Robots-Tag: {tags}", "http_status": code}
        try:
            res = await self.pool.submit(response.body, self.store, max_bytes=self.max_bytes or None, **self.options)
        except Exception as exc:  # noqa: BLE001 - a crashed worker is an error for this URL only
            return {"status": "error", "error_message": f"image worker failed: {type(exc).__name__}: {exc}"[:300],
                    "http_status": code}
        if "image" not in res:
            return {"status": res["status"], "error_message": res["error_message"], "http_status": code}
        return {"status": "stored", "error_message": None, "http_status": code, "image": res["image"]}
