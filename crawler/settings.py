"""Scrapy settings for fid crawls, the sources' base URLs and `--engine-url` parsing.

Every fid component reads its own settings in ``from_crawler``: ``FID_DB_URL``, ``FID_STORE``,
``FID_ENGINE_URLS`` ({engine: {role: base}} or a list of ``ENGINE=BASE`` / ``ENGINE.ROLE=BASE``
strings), ``FID_MIN_SIDE``, ``FID_MAX_SIDE``, ``FID_KEEP_ORIGINAL``, ``FID_WORKERS``,
``FID_BATCH_SIZE``, ``FID_RESPECT_NOAI``, ``FID_REFETCH``, ``FID_BACKOFF_*``.
"""

from __future__ import annotations

from dataset_db.errors import FidError

#: Scrapy extensions (under scrapy.extensions) that fid turns off: a telnet or HTTP remote console,
#: feed exports, the memory debugger and the on-disk spider state
UNUSED_EXTENSIONS = ("remote_control.RemoteControl", "telnet.TelnetConsole", "feedexport.FeedExporter",
                     "memdebug.MemoryDebugger", "spiderstate.SpiderState")


def scrapy_base_without(setting: str, dropped) -> dict:
    """Scrapy's default ``setting`` (a ``*_BASE`` component dict) without the components ``dropped``."""
    from scrapy.settings import default_settings

    return {k: v for k, v in getattr(default_settings, setting).items() if k not in dropped}


def log_shows(log_level, level: int) -> bool:
    """Whether a log at ``log_level`` (a level name or number) shows records of ``level``; a name
    logging does not know counts as showing everything."""
    import logging

    n = log_level if isinstance(log_level, int) else logging.getLevelName(str(log_level).upper())
    return not isinstance(n, int) or n <= level


SEARCH_ENGINES = ("bing", "duckduckgo", "google", "baidu")
COLLECTIONS = ("gbif", "idigbio", "wikimedia")
ENGINES = SEARCH_ENGINES + COLLECTIONS

#: Each source's hosts by role. `--engine-url ENGINE=BASE` replaces every role of ENGINE,
#: `--engine-url ENGINE.ROLE=BASE` one of them.
ENGINE_BASES: dict[str, dict[str, str]] = {
    "bing": {"search": "https://www.bing.com"},
    "duckduckgo": {"search": "https://duckduckgo.com"},
    "google": {"search": "https://www.google.com"},
    "baidu": {"search": "https://image.baidu.com"},
    "gbif": {"api": "https://api.gbif.org"},
    "idigbio": {"search": "https://search.idigbio.org", "media": "https://api.idigbio.org"},
    "wikimedia": {"api": "https://commons.wikimedia.org"},
}


class EngineUrlError(FidError):
    pass


class UnknownEngineError(FidError):
    def __init__(self, name: str, allowed=ENGINES):
        super().__init__(f"unknown engine {name!r}; choose from: {', '.join(allowed)}")


def check_engines(names) -> list[str]:
    out = []
    for n in names:
        n = n.strip().lower()
        if not n:
            continue
        if n not in ENGINES:
            raise UnknownEngineError(n)
        if n not in out:
            out.append(n)
    return out


def parse_engine_urls(values) -> dict[str, dict[str, str]]:
    """``["bing=http://127.0.0.1:8000", "idigbio.media=http://..."]`` (or a dict) -> {engine: {role: base}}."""
    if isinstance(values, dict):
        items = []
        for k, v in values.items():
            if isinstance(v, dict):
                items += [f"{k}.{r}={b}" for r, b in v.items()]
            else:
                items.append(f"{k}={v}")
        values = items
    out: dict[str, dict[str, str]] = {}
    for raw in values or ():
        key, sep, base = str(raw).partition("=")
        base = base.strip().rstrip("/")
        if not sep or not base or "://" not in base:
            raise EngineUrlError(f"bad --engine-url {raw!r}; expected ENGINE=BASE_URL or ENGINE.ROLE=BASE_URL, "
                                 "e.g. bing=http://127.0.0.1:8000")
        engine, _, role = key.strip().lower().partition(".")
        if engine not in ENGINE_BASES:
            raise UnknownEngineError(engine)
        roles = ENGINE_BASES[engine]
        if role and role not in roles:
            raise EngineUrlError(f"unknown role {role!r} for engine {engine!r}; choose from: {', '.join(roles)}")
        for r in ([role] if role else roles):
            out.setdefault(engine, {})[r] = base
    return out


def engine_bases(engine: str, overrides) -> dict[str, str]:
    bases = dict(ENGINE_BASES[engine])
    bases.update(parse_engine_urls(overrides).get(engine, {}))
    return bases


def _log_versions(log_level) -> list[str]:
    """Scrapy's LOG_VERSIONS when the log shows INFO, else none (they would not be shown)."""
    import logging

    from scrapy.settings import default_settings

    return list(default_settings.LOG_VERSIONS) if log_shows(log_level, logging.INFO) else []


def crawl_settings(*, user_agent: str, db_url: str, store: str, engine_urls=None, run_id: int | None = None,
                   workers: int = 2, batch_size: int = 200, min_side: int = 64, max_side: int = 512,
                   keep_original: bool = False, respect_noai: bool = False, refetch: bool = False,
                   timeout: float = 30.0, max_bytes: int = 25 * 1024 * 1024, per_domain: int = 4,
                   engine_delay: float = 1.0, autothrottle: bool = True, log_level: str = "WARNING",
                   extra: dict | None = None) -> dict:
    """The Scrapy settings of a fid crawl (polite defaults; everything overridable with ``extra``)."""
    s = {
        "BOT_NAME": "fid",
        "USER_AGENT": user_agent,
        "ROBOTSTXT_OBEY": True,            # image hosts; search-result requests set dont_obey_robotstxt
        "ROBOTSTXT_USER_AGENT": "fid",
        "COOKIES_ENABLED": True,
        "TELNETCONSOLE_ENABLED": False,
        # extensions a fid crawl never uses are not even imported (RemoteControl alone pulls in
        # aiohttp's web server and builds an SSL context: ~0.3 s of every run's start-up). Scrapy
        # 2.19 imports every class named in EXTENSIONS, even those set to None, so they are left
        # out of EXTENSIONS_BASE instead; EXTENSIONS stays free for the user.
        "EXTENSIONS_BASE": scrapy_base_without("EXTENSIONS_BASE",
                                               {f"scrapy.extensions.{name}" for name in UNUSED_EXTENSIONS}),
        # Scrapy's own downloader/* byte and status counters (fid reports its fid/* counters):
        # per response they re-measure the request and headers, ~4% of the crawling process
        "DOWNLOADER_STATS": False,
        "LOG_LEVEL": log_level,
        # Scrapy logs its dependencies' versions at INFO; computing them runs `uname -p` in a
        # subprocess (a fork of the whole crawling process) and reads package metadata: ~50 ms of
        # every run's start-up, for a log line fid's default level (WARNING) never shows
        "LOG_VERSIONS": _log_versions(log_level),
        "LOG_FORMATTER": "crawler.middlewares.QuietLogFormatter",
        "CONCURRENT_REQUESTS": 32,
        "CONCURRENT_REQUESTS_PER_DOMAIN": per_domain,
        # Scrapy 2.19 + asyncio reactor overshoots per-slot concurrency; see SlotLimitedDownloader
        "DOWNLOADER": "crawler.pipelines.SlotLimitedDownloader",
        "DOWNLOAD_DELAY": 0,
        "AUTOTHROTTLE_ENABLED": autothrottle,
        "AUTOTHROTTLE_START_DELAY": 0.25,
        "AUTOTHROTTLE_MAX_DELAY": 30.0,
        "AUTOTHROTTLE_TARGET_CONCURRENCY": float(per_domain),
        "DOWNLOAD_TIMEOUT": timeout,
        "DOWNLOAD_MAXSIZE": max_bytes,
        "DOWNLOAD_WARNSIZE": 0,
        "REDIRECT_MAX_TIMES": 5,
        # our own backoff handles 429/503; the stock retry middleware only retries network errors
        "RETRY_ENABLED": True,
        "RETRY_TIMES": 1,
        "RETRY_HTTP_CODES": [500, 502, 504, 522, 524, 408],
        "HTTPERROR_ALLOW_ALL": True,
        "DOWNLOADER_MIDDLEWARES": {"scrapy.downloadermiddlewares.robotstxt.RobotsTxtMiddleware": None,
                                   "crawler.middlewares.RobotsTxtMiddleware": 100,
                                   "crawler.middlewares.BackoffMiddleware": 560},
        "ITEM_PIPELINES": {"crawler.pipelines.CatalogPipeline": 300},
        "CONCURRENT_ITEMS": 200,
        "DOWNLOAD_SLOTS": {f"engine:{e}": {"concurrency": 1, "delay": engine_delay} for e in SEARCH_ENGINES},
        "REQUEST_FINGERPRINTER_IMPLEMENTATION": "2.7",
        "FID_DB_URL": db_url,
        "FID_STORE": str(store),
        "FID_ENGINE_URLS": parse_engine_urls(engine_urls or []),
        "FID_RUN_ID": run_id,
        "FID_WORKERS": workers,
        "FID_BATCH_SIZE": batch_size,
        "FID_MAX_INFLIGHT": 0,           # URLs between download and commit; 0: max(32, batch size)
        "FID_MIN_SIDE": min_side,
        "FID_MAX_SIDE": max_side,
        "FID_KEEP_ORIGINAL": keep_original,
        "FID_RESPECT_NOAI": respect_noai,
        "FID_REFETCH": refetch,
        "FID_BACKOFF_BASE": 1.0,
        "FID_BACKOFF_MAX": 60.0,
        "FID_BACKOFF_TRIES": 4,
    }
    s.update(extra or {})
    return s
