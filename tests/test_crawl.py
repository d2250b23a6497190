"""The image pipeline end to end: real Scrapy crawls (`fid crawl` / `fid fetch` in fresh processes)
against the emulators on 127.0.0.x, every bad case's status, robots per host, doctor, and a crawl
killed with SIGKILL then resumed. Plus the crawler's SQL on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from crawler.emulators import EmulatorSet
from dataset_db import repo_crawl
from dataset_db.bootstrap import open_or_create
from dataset_db.config import load_settings
from dataset_db.models import Image, Run, Sighting, Url
from dataset_db.session import open_catalog

REPO = Path(__file__).resolve().parents[1]


def fid_cmd(*args):
    return [sys.executable, "-m", "crawler.runner", *map(str, args)]


def fid_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("FID_")}
    env["FID_CONTACT"] = "tests@example.org"
    env["PYTHONPATH"] = str(REPO)
    return env


def fid(*args, cwd, timeout=120, ok=True):
    r = subprocess.run(fid_cmd(*args), cwd=cwd, env=fid_env(), capture_output=True, text=True, timeout=timeout)
    if ok:
        assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-4000:])
    return r


def urls_args(emu):
    out = []
    for u in emu.engine_urls():
        out += ["--engine-url", u]
    return out


TRILOBITE_EN = ("trilobite fossil", "trilobite", "real trilobite")  # the default taxonomy's keywords


def prerender(emu, pairs):
    """Render the images the crawl will fetch now, so the emulator (threads in this process) answers
    fast on a loaded machine and only the deliberately slow routes time out."""
    emu.prerender([e.url for source, kw in pairs for e in emu.entries(source, kw)])


FAST = ["--workers", 2, "--set", "FID_BACKOFF_TRIES=1", "--set", "DOWNLOAD_SLOTS={}", "--no-autothrottle"]


def make_catalog(tmp_path):
    settings = load_settings(db=str(tmp_path / "cat.sqlite"), store=str(tmp_path / "store"), cwd=tmp_path)
    return open_or_create(settings), settings


def url_rows(cat):
    with cat.session() as s:
        return {u: (st, img, err) for u, st, img, err in s.execute(select(Url.url, Url.status, Url.image_id,
                                                                           Url.error_message))}


def check_store_consistent(cat, store: Path):
    """No row points at a missing file; every complete file is exactly the bytes its name says."""
    with cat.session() as s:
        paths = list(s.scalars(select(Image.store_path)))
        dangling = s.scalar(select(func.count()).select_from(Url).where(
            Url.status.in_(["stored", "duplicate"]), Url.image_id.is_(None)))
    assert dangling == 0
    for p in paths:
        assert (store / p).is_file(), p
    for f in store.rglob("*.jpg"):
        if not f.name.startswith(".tmp-") and "originals" not in f.parts:
            assert hashlib.sha256(f.read_bytes()).hexdigest() == f.stem, f


# ---- every bad case ---------------------------------------------------------------------------------

def test_every_url_ends_with_its_expected_status_and_robots_are_per_host(tmp_path):
    with EmulatorSet(seed=5, n_hosts=2, total_per_keyword=31, tricky_every=1, slow_delay=4.0,
                     retry_after=1) as emu:
        entries = emu.entries("bing", "trilobita") + emu.entries("bing", "ammonoidea")
        emu.prerender([e.url for e in entries])
        cat, _ = make_catalog(tmp_path)
        repo_crawl.upsert_items(cat.engine, None, [
            {"image_url": e.url, "source": "bing", "keyword": e.keyword, "clade": "Trilobite"} for e in entries])
        r = fid("--db", tmp_path / "cat.sqlite", "--store", tmp_path / "store", "fetch", "--json",
                "--timeout", 2, "--respect-noai", *FAST, cwd=tmp_path)
        res = json.loads(r.stdout)
        rows = url_rows(cat)
        assert res["urls"] == len(rows) == len({e.url for e in entries})
        for url, (status, image_id, err) in rows.items():
            want = emu.expected_status(url, respect_noai=True)
            if want == "stored":
                assert status in ("stored", "duplicate") and image_id is not None, (url, status, err)
            else:
                assert status == want, (url, status, err)
                assert image_id is None and err, (url, err)
        got = Counter(st for st, _i, _e in rows.values())
        want = emu.expected_summary(list(rows), respect_noai=True)
        assert got["stored"] == want["stored"] and got["duplicate"] == want["duplicate"]
        # robots.txt: read on every image host downloaded from; disallowed paths never requested
        hosts = {u.split("/")[2] for u in rows}
        robots = {r.base.split("/")[2] for r in emu.requests_to("images") if r.path == "/robots.txt"}
        assert hosts <= robots
        private = [u for u in rows if "/private/" in u]
        assert private and all(emu.hits(u) == 0 for u in private)
        check_store_consistent(cat, tmp_path / "store")
        cat.close()


# ---- crawl, rerun, doctor ---------------------------------------------------------------------------

def test_crawl_then_rerun_then_doctor(tmp_path, cli, fid_env):
    db, store = tmp_path / "cat.sqlite", tmp_path / "store"
    with EmulatorSet(seed=9, n_hosts=2, total_per_keyword=6, tricky_every=0) as emu:
        prerender(emu, [("gbif", "trilobita")] + [(s, k) for s in ("bing", "wikimedia") for k in TRILOBITE_EN])
        args = ["--db", db, "--store", store, "crawl", "--clade", "Trilobite", "--engines", "gbif,wikimedia,bing",
                "--max-per-keyword", 4, "--json", *FAST, *urls_args(emu)]
        res = json.loads(fid(*args, cwd=tmp_path).stdout)
        # gbif: 1 query (the taxon), wikimedia and bing: 3 English keywords each
        assert res["totals"]["items"] == 4 + 3 * 4 + 3 * 4
        assert res["totals"]["stored"] + res["totals"]["duplicate"] == res["totals"]["items"] - res["totals"]["known"]
        assert res["totals"]["failed"] == 0 and res["totals"]["parse_errors"] == 0
        cat = open_catalog(f"sqlite:///{db}")
        with cat.session() as s:
            runs = s.execute(select(Run.kind, Run.source, Run.status)).all()
            lic = dict(s.execute(select(Sighting.source, func.count()).where(Sighting.license != "unknown")
                                 .group_by(Sighting.source)).all())
            n_urls = s.scalar(select(func.count()).select_from(Url))
        assert sorted(runs) == [("crawl", e, "done") for e in ("bing", "gbif", "wikimedia")]
        assert lic.get("gbif") and lic.get("wikimedia") and not lic.get("bing")
        hits = len(emu.requests_to("images"))

        # a second run sees everything again but downloads nothing already stored
        res2 = json.loads(fid(*args, cwd=tmp_path).stdout)
        assert res2["totals"]["stored"] == 0 and res2["totals"]["known"] == res["totals"]["items"]
        assert len([r for r in emu.requests_to("images") if r.path != "/robots.txt"]) == \
            len([r for r in list(emu.requests_to("images"))[:hits] if r.path != "/robots.txt"])
        with cat.session() as s:
            assert s.scalar(select(func.count()).select_from(Url)) == n_urls

        # doctor: clean, then an orphan, a missing file and a temp file
        def doctor(*extra):  # in-process: doctor never starts a reactor
            return cli("--db", db, "--store", store, "doctor", "--json", *extra)

        assert json.loads(doctor().output)["ok"]
        files = sorted(p for p in store.rglob("*.jpg"))
        files[0].unlink()
        orphan = store / "ff" / "ff" / ("ff" * 32 + ".jpg")
        orphan.parent.mkdir(parents=True, exist_ok=True)
        orphan.write_bytes(b"x")
        (files[1].parent / ".tmp-abc").write_bytes(b"partial")
        r = fid("--db", db, "--store", store, "doctor", "--json", cwd=tmp_path, ok=False)
        rep = json.loads(r.stdout)
        assert r.returncode == 1 and (rep["orphans"], rep["missing"], rep["temp_files"]) == (1, 1, 1)
        rep = json.loads(fid("--db", db, "--store", store, "doctor", "--fix", "--json", cwd=tmp_path).stdout)
        assert rep["fixed"]["orphans_deleted"] == 1 and rep["fixed"]["urls_reset"] >= 1
        def doctor(*extra):  # in-process: doctor never starts a reactor
            return cli("--db", db, "--store", store, "doctor", "--json", *extra)

        assert json.loads(doctor().output)["ok"]
        # the URL whose file went missing is pending again; fetch brings it back
        res3 = json.loads(fid("--db", db, "--store", store, "fetch", "--json", *FAST, cwd=tmp_path).stdout)
        assert res3["urls"] >= 1 and res3["totals"]["failed"] == 0
        check_store_consistent(cat, store)
        cat.close()


def test_bad_arguments_are_one_line_errors(tmp_path):
    r = fid("--db", tmp_path / "c.sqlite", "crawl", "--clade", "Trilobite", "--engines", "bign", cwd=tmp_path,
            ok=False)
    assert r.returncode != 0 and "unknown engine 'bign'; choose from: bing, duckduckgo" in r.stderr
    r = fid("--db", tmp_path / "c.sqlite", "crawl", "--clade", "Nope", "--engines", "bing", cwd=tmp_path, ok=False)
    assert r.returncode != 0 and "unknown clade 'Nope'" in r.stderr
    r = fid("--db", tmp_path / "c.sqlite", "crawl", "--clade", "Trilobite", "--engine-url", "bing", cwd=tmp_path,
            ok=False)
    assert r.returncode != 0 and "expected ENGINE=BASE_URL" in r.stderr


# ---- SIGKILL and resume ----------------------------------------------------------------------------

@pytest.mark.slow
def test_sigkill_mid_crawl_then_resume(tmp_path):
    db, store = tmp_path / "cat.sqlite", tmp_path / "store"
    with EmulatorSet(seed=13, n_hosts=3, total_per_keyword=40, tricky_every=0) as emu:
        prerender(emu, [(s, k) for s in ("bing", "duckduckgo") for k in TRILOBITE_EN])
        args = ["--db", db, "--store", store, "crawl", "--clade", "Trilobite", "--engines", "bing,duckduckgo",
                "--max-per-keyword", 40, "--batch-size", 10, "--json", *FAST, *urls_args(emu)]
        proc = subprocess.Popen(fid_cmd(*args), cwd=tmp_path, env=fid_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            stored = 0
            while time.monotonic() < deadline and stored < 25:
                time.sleep(0.2)
                if db.exists():
                    try:
                        cat = open_catalog(f"sqlite:///{db}")
                        with cat.session() as s:
                            stored = s.scalar(select(func.count()).select_from(Url).where(Url.status == "stored"))
                        cat.close()
                    except Exception:  # noqa: BLE001 - the catalog may be mid-creation
                        stored = 0
            assert proc.poll() is None, "the crawl finished before it could be killed; make it bigger"
        finally:
            os.killpg(proc.pid, signal.SIGKILL)  # the crawl and its image workers, all started here
            proc.wait()
        cat = open_catalog(f"sqlite:///{db}")
        check_store_consistent(cat, store)
        before = url_rows(cat)
        assert 0 < sum(1 for st, _i, _e in before.values() if st == "stored") < len(before) or len(before) < 240
        first_hits = Counter(r.path for r in emu.requests_to("images") if r.path != "/robots.txt")

        res = json.loads(fid(*args, cwd=tmp_path, timeout=180).stdout)
        rows = url_rows(cat)
        assert len(rows) == 2 * 3 * 40  # 2 engines x 3 keywords x 40
        assert all(st in ("stored", "duplicate") for st, _i, _e in rows.values())
        want = emu.expected_summary(list(rows))
        got = Counter(st for st, _i, _e in rows.values())
        assert got["stored"] == want["stored"]
        # the resumed run downloaded only what the killed one had not committed
        all_hits = Counter(r.path for r in emu.requests_to("images") if r.path != "/robots.txt")
        twice = sum(1 for p, n in all_hits.items() if n > 1 and first_hits.get(p))
        committed = sum(1 for st, _i, _e in before.values() if st in ("stored", "duplicate"))
        assert res["totals"]["stored"] + res["totals"]["duplicate"] <= len(rows) - committed + twice
        assert twice <= 32  # at most the URLs between download and commit (FID_MAX_INFLIGHT: max(32, batch))
        rep = json.loads(fid("--db", db, "--store", store, "doctor", "--fix", "--json", cwd=tmp_path).stdout)
        assert rep["missing"] == 0 and rep["orphans"] == 0
        check_store_consistent(cat, store)
        cat.close()


# ---- the crawler's SQL on both backends --------------------------------------------------------------

def test_repo_crawl_batches(catalog):
    items = [{"image_url": f"http://127.0.0.2/img/{i}.jpg", "source": "bing", "keyword": "k", "clade": "Trilobite",
              "license": "CC0-1.0", "record": {"n": i}} for i in range(5)]
    items.append({"image_url": "not a url", "source": "bing", "keyword": "k", "clade": "Trilobite"})
    info = repo_crawl.upsert_items(catalog.engine, None, items + items[:2])
    assert len(info) == 5 and all(v["status"] == "pending" for v in info.values())
    with catalog.session() as s:
        assert len(repo_crawl.pending_urls(s, clade="trilobite")) == 5
    img = {"sha256": "a" * 64, "width": 10, "height": 10, "store_path": "aa/aa/" + "a" * 64 + ".jpg",
           "orig_sha256": "b" * 64, "orig_width": 10, "orig_height": 10, "orig_format": "JPEG", "orig_size": 5,
           "orig_path": None, "phash": 2**64 - 1, "dhash": 1, "hash_version": 1}
    ids = [info[it["image_url"]]["url_id"] for it in items[:5]]
    finals = repo_crawl.record_outcomes(catalog.engine, [
        {"url_id": ids[0], "status": "stored", "image": img, "http_status": 200},
        {"url_id": ids[1], "status": "stored", "image": img, "http_status": 200},
        {"url_id": ids[2], "status": "http_429", "error_message": "HTTP 429", "http_status": 429},
        {"url_id": ids[3], "status": "not_image", "error_message": "html", "http_status": 200},
    ])
    assert finals == ["stored", "duplicate", "http_429", "not_image"]
    with catalog.session() as s:
        pend = {p["url_id"] for p in repo_crawl.pending_urls(s)}
        assert pend == {ids[2], ids[4]}  # retryable 429 and the untouched one; not_image is final
        image_id = s.scalar(select(Image.id))
        assert repo_crawl.image_paths(s) == {img["store_path"]: image_id}
        fixed = repo_crawl.forget_images(s, [image_id])
    assert fixed == {"urls_reset": 2, "images_deleted": 1, "images_kept": 0}
    with catalog.session() as s:
        assert len(repo_crawl.pending_urls(s)) == 4 and repo_crawl.dangling_urls(s) == 0


# ---- the crawl's log ----------------------------------------------------------------------------

@pytest.mark.parametrize("level,logged", [("DEBUG", True), ("INFO", False), ("WARNING", False)])
def test_per_response_debug_messages_are_built_only_when_the_level_shows_them(level, logged):
    from scrapy import Request
    from scrapy.http import Response
    from scrapy.utils.test import get_crawler

    from crawler.settings import crawl_settings

    s = crawl_settings(user_agent="fid-test", db_url="sqlite://", store="/nonexistent", log_level=level)
    crawler = get_crawler(settings_dict={k: s[k] for k in ("LOG_LEVEL", "LOG_FORMATTER")})
    from scrapy.utils.misc import build_from_crawler, load_object

    fmt = build_from_crawler(load_object(crawler.settings["LOG_FORMATTER"]), crawler)
    req = Request("http://127.0.0.2/a.jpg")
    resp = Response(req.url, status=200, request=req)
    crawled, scraped = fmt.crawled(req, resp, None), fmt.scraped({"image_url": req.url}, resp, None)
    if logged:
        assert crawled["msg"].startswith("Crawled") and scraped["msg"].startswith("Scraped")
    else:
        assert crawled is None and scraped is None


def test_dependency_versions_are_logged_only_when_the_level_shows_them(caplog):
    """Scrapy computes them (a `uname -p` subprocess, package metadata) for an INFO line."""
    import logging

    from scrapy.settings import Settings, default_settings
    from scrapy.utils.log import log_scrapy_info

    from crawler.settings import crawl_settings

    for level, shown in (("DEBUG", True), ("INFO", True), ("WARNING", False), ("ERROR", False)):
        s = crawl_settings(user_agent="fid-test", db_url="sqlite://", store="/nonexistent", log_level=level)
        assert s["LOG_VERSIONS"] == (list(default_settings.LOG_VERSIONS) if shown else [])
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="scrapy.utils.log"):
            log_scrapy_info(Settings(s))
        assert any(r.getMessage().startswith("Versions:") for r in caplog.records) is shown
