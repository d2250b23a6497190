"""EmulatorSet: every source role and N image hosts on loopback, started and stopped from Python."""

from __future__ import annotations

import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from urllib.parse import urlsplit

from .hosts import ImageHost
from .imagegen import ContentFn, ImageGen
from .loopback import Request, serve
from .plan import SOURCES, EmulatorError, Entry, Plan
from .sources import SourceApp, gbif_taxon_key

#: search roles in a fixed order; each gets its own loopback address 127.0.1.<1+i>
ROLES = ("bing", "duckduckgo", "google", "baidu", "gbif", "idigbio.search", "idigbio.media", "wikimedia")
SOURCE_NET = "127.0.1."
IMAGE_NET = "127.0.0."


@dataclass(frozen=True)
class LoggedRequest:
    role: str  # a ROLES name or "images"
    base: str
    method: str
    path: str
    query: str
    status: int
    user_agent: str
    at: float  # time.monotonic()

    @property
    def url(self) -> str:
        return self.base + self.path + (f"?{self.query}" if self.query else "")


def bindable(address: str) -> bool:
    """True when ``address`` can be bound here (all of 127.0.0.0/8 on Linux; only 127.0.0.1 on macOS)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((address, 0))
        return True
    except OSError:
        return False
    finally:
        s.close()


def resolve_content(content) -> ContentFn | None:
    """A content function, or ``"module:function"`` imported (e.g. ``crawler.emulators.fossils:fossil_content``)."""
    if content is None or callable(content):
        return content
    import importlib

    mod, _, attr = str(content).partition(":")
    try:
        fn = getattr(importlib.import_module(mod), attr)
    except (ImportError, AttributeError, ValueError):
        raise EmulatorError(f"cannot import content function {content!r}; expected 'module:function'") from None
    if not callable(fn):
        raise EmulatorError(f"content {content!r} is not callable")
    return fn


class _App:
    """Wraps a role's app so every request is recorded in the set's log."""

    def __init__(self, inner, role: str, emu: "EmulatorSet"):
        self.inner, self.role, self.emu = inner, role, emu

    def __call__(self, req: Request):
        return self.inner(req)

    def log(self, req: Request, status: int):
        self.emu._log(LoggedRequest(self.role, req.base, req.method, req.path, req.raw_query, status,
                                    req.headers.get("user-agent", ""), time.monotonic()))


class EmulatorSet:
    """Loopback servers answering like each source, plus ``n_hosts`` image hosts.

    ``with EmulatorSet(seed=0, n_hosts=3) as emu: emu.base_urls`` gives
    ``{"bing": "http://127.0.1.1:PORT", ..., "idigbio.search": ..., "idigbio.media": ...,
    "wikimedia": ..., "images": ["http://127.0.0.2:PORT", ...]}``.

    Parameters (all optional):
      seed               everything (result lists, image bytes) is a function of it
      n_hosts            image hosts, on 127.0.0.2, 127.0.0.3, ... (one address per host)
      total_per_keyword  results each source has per keyword; ``totals`` overrides per
                         ``"keyword"`` or ``"source:keyword"``
      tricky_every, tricky, flaky_failures, shared_pool   the plan's mix (see plan.py)
      slow_delay         seconds /slow/ and /drip/ take (bounded by loopback.MAX_DELAY)
      retry_after        the Retry-After header (seconds) on 429/503
      rate_limit         {"wikimedia": 3}: every 3rd request to that role answers 429
      broken             keywords for which the engines answer in a changed layout (no results)
      require_contact_ua roles that answer 403 to a User-Agent without an e-mail or URL
      page_sizes         {"duckduckgo": 100, "google": 20}: fixed page sizes of those engines
      robots             per-role robots.txt text replacing the default
      content, size_range, cache_size   the image generator (imagegen.ImageGen)
      port               0: ephemeral ports; P: every server on port P of its own address
      in_process         False: serve from a child process (``python -m crawler.emulators``) so
                         image generation never competes with the caller for the GIL; the plan
                         (entries, expected_status) is rebuilt here from the same settings, but the
                         request log, ``hits`` and ``vqd`` are only kept in-process. ``content`` must
                         then be a ``"module:function"`` string.
    """

    def __init__(self, seed: int = 0, n_hosts: int = 3, *, total_per_keyword: int = 50,
                 totals: dict[str, int] | None = None, tricky_every: int = 3, tricky=None,
                 flaky_failures: int = 1, shared_pool: int = 8, slow_delay: float = 3.0,
                 retry_after: int = 1, rate_limit: dict[str, int] | None = None, broken=(),
                 require_contact_ua=("wikimedia",), page_sizes: dict[str, int] | None = None,
                 robots: dict[str, str] | None = None, content: ContentFn | None = None,
                 size_range: tuple[int, int] = (300, 512), cache_size: int = 512, port: int = 0,
                 log_size: int = 100_000, in_process: bool = True):
        if n_hosts < 1 or n_hosts > 250:
            raise EmulatorError(f"n_hosts={n_hosts}; allowed: 1 to 250")
        for role in rate_limit or {}:
            if role not in ROLES:
                raise EmulatorError(f"unknown role {role!r} in rate_limit; choose from: {', '.join(ROLES)}")
        self.seed = seed
        self.n_hosts = n_hosts
        self.port = port
        self.slow_delay = slow_delay
        self.retry_after = retry_after
        self.rate_limit = dict(rate_limit or {})
        self.broken = tuple(broken)
        self.require_contact_ua = set(require_contact_ua)
        self.page_sizes = page_sizes
        self.robots = dict(robots or {})
        self._plan_kw = dict(total_per_keyword=total_per_keyword, totals=totals, tricky_every=tricky_every,
                             tricky=tricky, flaky_failures=flaky_failures, shared_pool=shared_pool)
        if content is not None and not isinstance(content, str) and not in_process:
            raise EmulatorError("content must be a 'module:function' string when in_process=False")
        self.in_process = in_process
        self._config = dict(seed=seed, n_hosts=n_hosts, total_per_keyword=total_per_keyword, totals=totals,
                            tricky_every=tricky_every, tricky=list(tricky) if tricky is not None else None,
                            flaky_failures=flaky_failures, shared_pool=shared_pool, slow_delay=slow_delay,
                            retry_after=retry_after, rate_limit=rate_limit, broken=list(broken),
                            require_contact_ua=list(require_contact_ua), page_sizes=page_sizes, robots=robots,
                            content=content if isinstance(content, str) else None,
                            size_range=list(size_range), cache_size=cache_size, port=port)
        self._proc = None
        self.gen = ImageGen(seed=seed, content=resolve_content(content), size_range=size_range,
                            cache_size=cache_size)
        self.plan: Plan | None = None
        self.base_urls: dict = {}
        self.distinct_addresses = False
        self.requests: deque[LoggedRequest] = deque(maxlen=log_size)
        self._log_lock = threading.Lock()
        self._servers: list = []
        self._apps: dict = {}
        self._stop = threading.Event()
        # validate the plan settings now, so a bad configuration fails before anything binds
        Plan(["http://127.0.0.2"], seed=seed, gen=self.gen, **self._plan_kw)

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> "EmulatorSet":
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def start(self) -> "EmulatorSet":
        if self._servers or self._proc:
            return self
        if not self.in_process:
            return self._start_child()
        self._stop.clear()
        self.gen.warm()
        self.distinct_addresses = bindable(SOURCE_NET + "1") and bindable(IMAGE_NET + "2")
        try:
            image_servers = []
            image_host_apps = ImageHost(self.gen, slow_delay=self.slow_delay, retry_after=self.retry_after)
            self._apps["images"] = image_host_apps
            for i in range(self.n_hosts):
                addr = IMAGE_NET + str(2 + i) if self.distinct_addresses else "127.0.0.1"
                srv = self._bind(addr, "images", image_host_apps, len(ROLES) + i)
                image_servers.append(srv)
            hosts = [s.base for s in image_servers]
            role_addr = {r: (SOURCE_NET + str(1 + i) if self.distinct_addresses else "127.0.0.1")
                         for i, r in enumerate(ROLES)}
            # bind first (ports are needed by the plan), then attach apps
            role_servers = {r: self._bind(role_addr[r], r, None, i) for i, r in enumerate(ROLES)}
            media_base = role_servers["idigbio.media"].base
            self.plan = Plan(hosts, seed=self.seed, media_base=media_base, gen=self.gen, **self._plan_kw)
            for role, srv in role_servers.items():
                if role == "idigbio.media":
                    app = ImageHost(self.gen, slow_delay=self.slow_delay, retry_after=self.retry_after,
                                    plan=self.plan)
                else:
                    app = SourceApp(role, self.plan, self.gen, seed=self.seed, broken=self.broken,
                                    rate_limit_every=self.rate_limit.get(role, 0), retry_after=self.retry_after,
                                    require_contact_ua=role in self.require_contact_ua,
                                    page_sizes=self.page_sizes, robots=self.robots.get(role))
                self._apps[role] = app
                srv.app.inner = app
            self.base_urls = {r: role_servers[r].base for r in ROLES}
            self.base_urls["images"] = hosts
        except BaseException:
            self.stop()
            raise
        return self

    def _start_child(self) -> "EmulatorSet":
        import json
        import subprocess
        import sys

        cmd = [sys.executable, "-m", "crawler.emulators", "--config", json.dumps(self._config)]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self._proc.stdout.readline()
        try:
            bases = json.loads(line)
        except json.JSONDecodeError:
            err = self._proc.stderr.read() if self._proc.poll() is not None else ""
            self.stop()
            raise EmulatorError(f"the emulator process did not start: {(err or line).strip()[-300:]}") from None
        self.base_urls = bases
        self.distinct_addresses = urlsplit(bases["images"][0]).hostname != "127.0.0.1"
        self.plan = Plan(bases["images"], seed=self.seed, media_base=bases["idigbio.media"], gen=self.gen,
                         **self._plan_kw)
        return self

    def _bind(self, addr: str, role: str, app, index: int):
        port = self.port + (index if (self.port and not self.distinct_addresses) else 0) if self.port else 0
        wrapped = _App(app, role, self)
        try:
            srv, thread = serve(addr, port, role, wrapped, self._stop)
        except OSError as exc:
            raise EmulatorError(f"cannot bind {addr}:{port} for {role}: {exc.strerror or exc}; "
                                "choose another --port or 0 for ephemeral ports") from None
        self._servers.append((srv, thread))
        return srv

    def stop(self) -> None:
        if self._proc is not None:
            proc, self._proc = self._proc, None
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except Exception:  # noqa: BLE001 - never leave a child behind
                proc.kill()
                proc.wait()
            for stream in (proc.stdout, proc.stderr):
                if stream:
                    stream.close()
        self._stop.set()
        stoppers = [threading.Thread(target=srv.shutdown, daemon=True) for srv, _ in self._servers]
        for t in stoppers:  # in parallel: each shutdown waits up to one poll interval
            t.start()
        for t in stoppers:
            t.join(timeout=2)
        for srv, thread in self._servers:
            srv.server_close()
            thread.join(timeout=2)
        self._servers = []

    # ------------------------------------------------------------------ helpers
    def _log(self, rec: LoggedRequest) -> None:
        with self._log_lock:
            self.requests.append(rec)

    def _need_plan(self) -> Plan:
        if self.plan is None:
            raise EmulatorError("the emulators are not started; use `with EmulatorSet(...) as emu:`")
        return self.plan

    @property
    def hosts(self) -> list[str]:
        return list(self.base_urls.get("images", []))

    def engine_urls(self) -> list[str]:
        """``ENGINE=URL`` / ``ENGINE.ROLE=URL`` values for ``fid crawl --engine-url``."""
        return [f"{r}={u}" for r, u in self.base_urls.items() if r != "images"]

    def entries(self, source: str, keyword: str, offset: int = 0, limit: int | None = None) -> list[Entry]:
        """What a correct spider yields for ``keyword`` on ``source``, in order."""
        return self._need_plan().entries(source, keyword, offset, limit)

    def expected_status(self, url: str, respect_noai: bool = False) -> str:
        """The status a correct pipeline records for ``url`` (``stored``, ``not_image``, ``http_404`` ...)."""
        return self._need_plan().expected_status(url, respect_noai)

    def expected_summary(self, urls, respect_noai: bool = False):
        return self._need_plan().expected_summary(urls, respect_noai)

    def content_key(self, url: str) -> str | None:
        return self._need_plan().content_key(url)

    def image_urls(self, n: int, kind: str = "ok", ext: str = "jpg", label: str = "bench") -> list[str]:
        return self._need_plan().image_urls(n, kind, ext, label)

    def prerender(self, urls, workers: int = 4) -> int:
        """Render the image bytes behind ``urls`` into the cache now (benchmarks); returns how many."""
        from concurrent.futures import ThreadPoolExecutor

        jobs = []
        for url in urls:
            segs = [s for s in urlsplit(url).path.split("/") if s]
            if len(segs) == 3 and segs[0] == "img":
                kind = "ok" if segs[1] in ("noai", "octet") else segs[1]
                ident, _, ext = segs[2].partition(".")
                jobs.append((kind, ident, ext))
        if len(jobs) > self.gen.cache_size:
            self.gen.cache_size = len(jobs)
        with ThreadPoolExecutor(workers) as ex:
            list(ex.map(lambda j: self.gen.render(*j), jobs))
        return len(jobs)

    def gbif_taxon_key(self, name: str) -> int:
        return gbif_taxon_key(name)

    def vqd(self, keyword: str) -> str:
        """The DuckDuckGo token the emulator hands out for ``keyword``."""
        self._need_in_process("vqd")
        return self._apps["duckduckgo"].vqd(keyword)

    def _need_in_process(self, what: str) -> None:
        if not self.in_process:
            raise EmulatorError(f"{what} is only available with in_process=True")

    def requests_to(self, role: str) -> list[LoggedRequest]:
        self._need_in_process("the request log")
        with self._log_lock:
            return [r for r in self.requests if r.role == role]

    def hits(self, url: str) -> int:
        """How many requests reached ``url``'s host and path."""
        self._need_in_process("hits")
        p = urlsplit(url)
        base = f"{p.scheme}://{p.netloc}"
        with self._log_lock:
            return sum(1 for r in self.requests if r.base == base and r.path == p.path)

    @staticmethod
    def sources() -> tuple[str, ...]:
        return SOURCES
