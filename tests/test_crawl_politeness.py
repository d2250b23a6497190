"""Politeness, observed from the server side: one real `fid fetch` (a fresh process, Scrapy and the
image pipeline) against emulator image hosts on 127.0.0.2, 127.0.0.3, ... whose request log says
how many requests each host had in flight at once and when a rate-limited URL was asked again.

Only ordering and concurrency facts are asserted, never how fast anything was.

In-flight intervals: the emulator logs a request when its response is finished (``at``). The
``/slow/`` route sleeps ``delay`` seconds before answering, so a request to it was in flight at least
over ``[at - delay, at]`` (it also spent a few milliseconds reading the request and sending the
image, which only makes the true interval longer). Two requests that one client sends one after the
other on the same slot cannot overlap there: the second arrives after the first ended and then
sleeps ``delay`` itself. So an overlap of these intervals is a real concurrent pair.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from sqlalchemy import select

from crawler.emulators import EmulatorSet
from dataset_db import repo_crawl
from dataset_db.bootstrap import open_or_create
from dataset_db.config import load_settings
from dataset_db.models import Url

REPO = Path(__file__).resolve().parents[1]

PER_DOMAIN = 2       # --per-domain: the limit under test
SLOW_HOSTS = 3       # hosts that serve only slow URLs (the concurrency check)
SLOW_PER_HOST = 8    # 4 rounds of PER_DOMAIN per host
DELAY = 0.6          # seconds each /slow/ request takes
RETRY_AFTER = 2      # the emulator's Retry-After on 429/503 (seconds)
BACKOFF_BASE = 0.1   # fid's own exponential base: far below Retry-After, so honouring it shows
BACKOFF_TRIES = 2    # then fid gives up and records the status
EPS = 0.02           # clock slack: the server logs a response a moment after the client got it


def _env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("FID_")
           and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env["FID_CONTACT"] = "tests@example.org"
    env["PYTHONPATH"] = str(REPO)
    return env


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals that share one instant (touching ends do not overlap)."""
    events = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals], key=lambda e: (e[0], e[1]))
    cur = best = 0
    for _, step in events:
        cur += step
        best = max(best, cur)
    return best


def test_max_overlap_counts_shared_instants():
    assert max_overlap([(0, 1), (1, 2), (2, 3)]) == 1
    assert max_overlap([(0, 2), (1, 3), (1.5, 1.6), (4, 5)]) == 3
    assert max_overlap([]) == 0


@pytest.fixture(scope="module")
def fetched(tmp_path_factory):
    """One `fid fetch` over slow URLs on three hosts, and 429/503 URLs on a fourth."""
    tmp = tmp_path_factory.mktemp("polite")
    with EmulatorSet(seed=21, n_hosts=SLOW_HOSTS + 1, slow_delay=DELAY, retry_after=RETRY_AFTER) as emu:
        if not emu.distinct_addresses:
            pytest.skip("needs 127.0.0.2, 127.0.0.3, ... (one loopback address per host)")
        hosts = emu.hosts
        slow = [f"{hosts[h]}/slow/polite{h}x{i}.jpg?delay={DELAY}" for h in range(SLOW_HOSTS)
                for i in range(SLOW_PER_HOST)]
        limited = hosts[SLOW_HOSTS]
        flaky = f"{limited}/flaky/2/politeflaky.jpg"  # 429 twice, then the image
        always = f"{limited}/status/503"              # 503 every time
        # render the images now: the answers' own time is then the sleep alone
        emu.prerender([f"{hosts[h]}/img/ok/polite{h}x{i}.jpg" for h in range(SLOW_HOSTS)
                       for i in range(SLOW_PER_HOST)] + [f"{limited}/img/ok/politeflaky.jpg"])
        settings = load_settings(db=str(tmp / "cat.sqlite"), store=str(tmp / "store"), cwd=tmp)
        cat = open_or_create(settings)
        repo_crawl.upsert_items(cat.engine, None, [
            {"image_url": u, "source": "bench", "keyword": "", "clade": "unassigned"}
            for u in slow + [flaky, always]])
        cmd = [sys.executable, "-m", "crawler.runner", "--db", tmp / "cat.sqlite", "--store", tmp / "store",
               "fetch", "--json", "--workers", 1, "--per-domain", PER_DOMAIN, "--no-autothrottle",
               "--timeout", 20, "--set", "CONCURRENT_REQUESTS=32", "--set", f"FID_BACKOFF_BASE={BACKOFF_BASE}",
               "--set", f"FID_BACKOFF_TRIES={BACKOFF_TRIES}"]
        r = subprocess.run([str(c) for c in cmd], cwd=tmp, env=_env(), capture_output=True, text=True, timeout=90)
        assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-4000:])
        with cat.session() as s:
            statuses = dict(s.execute(select(Url.url, Url.status)).all())
        cat.close()
        log = list(emu.requests_to("images"))
    return {"slow": slow, "flaky": flaky, "always": always, "hosts": hosts, "log": log,
            "statuses": statuses, "summary": json.loads(r.stdout)}


def test_per_domain_concurrency_is_respected(fetched):
    log, hosts = fetched["log"], fetched["hosts"]
    assert all(fetched["statuses"][u] == "stored" for u in fetched["slow"])
    per_host: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for r in log:
        if r.path.startswith("/slow/"):
            per_host[r.base].append((r.at - DELAY + EPS, r.at))
    assert sorted(per_host) == sorted(hosts[:SLOW_HOSTS])
    assert all(len(v) == SLOW_PER_HOST for v in per_host.values())  # each URL downloaded once
    for base, spans in per_host.items():
        assert max_overlap(spans) <= PER_DOMAIN, base
    # the limit is per host, not global: the hosts were served at the same time
    everything = [span for spans in per_host.values() for span in spans]
    assert max_overlap(everything) > PER_DOMAIN


def test_429_and_503_back_off_for_retry_after(fetched):
    # the log's ``at`` is when each answer was sent; fid sleeps from when it read the 429, so the
    # gap between two logged answers is Retry-After plus the retry's own (tiny) answer time. fid's
    # own exponential base is 0.1 s: a gap of Retry-After shows the header was honoured.
    log, flaky, always = fetched["log"], fetched["flaky"], fetched["always"]
    path = flaky.split("/", 3)[3]
    tries = [r for r in log if "/" + path == r.path]
    # 429, (wait Retry-After) 429, (wait) 200: the image is stored
    assert [r.status for r in tries] == [429, 429, 200]
    for before, after in zip(tries, tries[1:]):
        assert after.at - before.at >= RETRY_AFTER - EPS, (before, after)
    assert fetched["statuses"][flaky] == "stored"

    # an endpoint that never recovers: 1 + FID_BACKOFF_TRIES requests, each Retry-After apart, then
    # fid gives up and records the status (retryable by a later run)
    tries = [r for r in log if r.path == "/status/503"]
    assert [r.status for r in tries] == [503] * (1 + BACKOFF_TRIES)
    for before, after in zip(tries, tries[1:]):
        assert after.at - before.at >= RETRY_AFTER - EPS, (before, after)
    assert fetched["statuses"][always] == "http_503"


def test_every_request_carries_an_honest_user_agent(fetched):
    agents = {r.user_agent for r in fetched["log"]}
    assert agents and all("tests@example.org" in a for a in agents), agents
