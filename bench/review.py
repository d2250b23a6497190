"""Benchmark: the review page's queue and decision latency on a large SQLite catalog.

Usage:  .venv/bin/python bench/review.py [--images 400000] [--pages 60] [--decisions-per-page 5]
                                        [--seed 0] [--keep DIR]

Builds a fresh SQLite catalog in a temporary folder (or ``--keep DIR``) with ``--images``
generated images and prints, beside the p95 of the equivalent hand-written SQL run through the
``sqlite3`` module in the same run (interleaved, so machine noise hits both alike), the p95 of:

queue page (clade)
    ``GET /api/queue/unreviewed?reviewer=R&clade=C&limit=100`` through Flask's test client:
    drop expired leases, select the page, lease it to R, load 100 thumbnails' metadata
    (sizes, proposed clades from every sighting, current review state), JSON.
queue page (all)
    the same without a clade (every unreviewed image).
repo: claim+summaries
    the repo functions that endpoint calls (``claim_queue`` + ``image_summaries``), no HTTP.
post decision
    ``POST /api/decisions`` with the session's CSRF token (accept / reject with a reason /
    relabel, as a curator mixes them): lease released, image locked, decision appended,
    current state written, one transaction.
queue_counts
    the index page's counts (unreviewed per clade, conflicts, second opinion, suspects) via
    ``GET /api/queues``; reported, not part of the target.

Target (issue 5): p95 under 50 ms for the queue page and the decision on SQLite.

Generated catalog (``--images`` N; ids in insertion order)
----------------------------------------------------------
* N images; all share a handful of real JPEG files in the store (their rows differ).
* one URL per image, 10 % of images a second URL from another source, N/20 URLs still pending;
  one sighting per URL over the 50 taxonomy clades (weighted as the paper's Table 1, 2 % ``unassigned``),
  4 % of URLs a second sighting naming another clade.
* N/130 duplicate groups of 2-4 images, a quarter of them label conflicts.
* a review history: the first 15 % of images (reviewed in queue order) and 3 % more at random,
  by four curators and one ``auto:`` rule; some images decided twice, some rejected or
  relabelled (so the second-opinion queue is not empty); the current-state table is computed
  from that history with ``repo_review.apply_decision``.
* N/800 model suspects.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import io
import itertools
import json
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert, select  # noqa: E402

from dataset_db import repo_review as rr  # noqa: E402
from dataset_db import status as st  # noqa: E402
from dataset_db.bootstrap import open_or_create  # noqa: E402
from dataset_db.config import Settings, sqlite_url  # noqa: E402
from dataset_db.models import (Clade, Decision, DupGroup, GroupMember, Image, ReviewState,  # noqa: E402
                               Sighting, Suspect, Url)

TARGET_MS = 50.0
PAGE = 100
BATCH = 20_000
CURATORS = ("ann", "bob", "cy", "dee")
SOURCES = ("gbif", "idigbio", "wikimedia", "bing", "duckduckgo")
LICENSES = ("cc-by", "cc0", "cc-by-nc", "unknown")
# images per clade in the paper's Table 1 (taxonomy order): the clade weights of the generated sightings
PAPER_TOTALS = (1928, 16097, 2571, 5074, 10121, 4914, 7888, 2166, 18727, 7270, 2849, 5701, 3685, 17029, 15371,
                9015, 3428, 6822, 11199, 9076, 8295, 2310, 5899, 9655, 15218, 8851, 4391, 1547, 4869, 3405, 13815,
                14083, 5632, 17246, 2029, 13476, 4591, 6467, 13463, 5709, 20730, 609, 3330, 9138, 2978, 4448,
                20629, 10060, 18725, 2810)


# ---------------------------------------------------------------------------------------------
# data

def _sha(prefix: str, i: int, n: int = 64) -> str:
    return hashlib.sha256(f"{prefix}{i}".encode()).hexdigest()[:n]


def _jpegs(store: Path, k: int = 6) -> list[tuple[str, int, int, int]]:
    """A few real JPEGs in the store: (relative path, width, height, bytes)."""
    from PIL import Image as PILImage, ImageDraw

    out = []
    for j in range(k):
        w, h = 320 + 40 * j, 240 + 30 * j
        im = PILImage.new("RGB", (w, h), (30 * j % 256, 120, 200 - 20 * j))
        ImageDraw.Draw(im).ellipse([w // 5, h // 5, 4 * w // 5, 4 * h // 5], fill=(200, 180 - 10 * j, 90))
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=85)
        rel = f"shared/bench-{j}.jpg"
        (store / rel).parent.mkdir(parents=True, exist_ok=True)
        (store / rel).write_bytes(buf.getvalue())
        out.append((rel, w, h, len(buf.getvalue())))
    return out


def _insert(conn, table, rows):
    for i in range(0, len(rows), BATCH):
        with conn.begin():
            conn.execute(insert(table), rows[i:i + BATCH])


def build_catalog(folder: Path, n: int, seed: int = 0, log=print):
    """A fresh catalog with ``n`` generated images; returns (catalog, store, facts)."""
    rng = random.Random(seed)
    settings = Settings(db_url=sqlite_url(folder / "catalog.sqlite"), store=folder / "images", project_dir=folder)
    settings.store.mkdir(parents=True, exist_ok=True)
    cat = open_or_create(settings)
    with cat.session() as s:
        clades = list(s.scalars(select(Clade.name).order_by(Clade.order_index)))
    files = _jpegs(settings.store)
    now = dt.datetime(2026, 1, 1)
    t0 = time.perf_counter()
    cum = list(itertools.accumulate(PAPER_TOTALS[k % len(PAPER_TOTALS)] for k in range(len(clades))))
    eng = cat.engine
    with eng.connect() as conn:
        rows = []
        for i in range(1, n + 1):
            rel, w, h, size = files[i % len(files)]
            rows.append({"id": i, "sha256": _sha("img", i), "width": w, "height": h, "store_path": rel,
                         "orig_sha256": _sha("orig", i), "orig_width": w * 2, "orig_height": h * 2,
                         "orig_format": "JPEG", "orig_size": size, "orig_path": None, "phash": None,
                         "dhash": None, "hash_version": None, "created_at": now})
        _insert(conn, Image.__table__, rows)
        log(f"  images     {n:>9,}  {time.perf_counter() - t0:6.1f} s")

        urls, sightings, clade_of = [], [], {}
        url_id = 0

        def add_url(image_id, clade_choices):
            nonlocal url_id
            url_id += 1
            u = f"https://img{url_id % 97}.example.org/fossils/{url_id}.jpg"
            urls.append({"id": url_id, "url_hash": hashlib.sha1(u.encode()).hexdigest(), "url": u,
                         "status": "stored" if image_id else "pending", "http_status": 200 if image_id else None,
                         "error_message": None, "attempts": 1 if image_id else 0, "image_id": image_id,
                         "first_seen_at": now, "last_attempt_at": None, "updated_at": now})
            for c in clade_choices:
                src = rng.choice(SOURCES)
                sightings.append({"sighting_key": hashlib.sha1(f"{u}|{c}|{src}".encode()).hexdigest(),
                                  "url_id": url_id, "run_id": None, "source": src, "keyword": f"{c} fossil",
                                  "clade": c, "page_url": f"https://example.org/page/{url_id}",
                                  "title": f"specimen {url_id}", "license": rng.choice(LICENSES),
                                  "rights_holder": "", "extra": None, "seen_at": now})

        for i in range(1, n + 1):
            c = "unassigned" if rng.random() < 0.02 else rng.choices(clades, cum_weights=cum)[0]
            clade_of[i] = c
            extra = [rng.choice(clades)] if rng.random() < 0.04 else []
            add_url(i, [c, *[e for e in extra if e != c]])
            if rng.random() < 0.10:
                add_url(i, [c])
        for _ in range(n // 20):
            add_url(None, [rng.choices(clades, cum_weights=cum)[0]])
        _insert(conn, Url.__table__, urls)
        _insert(conn, Sighting.__table__, sightings)
        log(f"  urls       {len(urls):>9,}  sightings {len(sightings):,}  {time.perf_counter() - t0:6.1f} s")

        # duplicate groups: distinct members, a quarter label conflicts
        pool = rng.sample(range(1, n + 1), min(n, (n // 130) * 4))
        groups, members, gid, k = [], [], 0, 0
        while k + 4 <= len(pool):
            size = rng.randint(2, 4)
            ids = pool[k:k + size]
            k += size
            gid += 1
            conflict = rng.random() < 0.25
            names = sorted({clade_of[i] for i in ids} | ({rng.choice(clades)} if conflict else set()))
            groups.append({"id": gid, "representative_id": ids[0], "method": "phash", "threshold": 6,
                           "hash_version": 1, "size": size, "conflict": conflict and len(names) > 1,
                           "clades": names, "created_at": now})
            members += [{"image_id": i, "group_id": gid, "distance": 0 if j == 0 else rng.randint(1, 6)}
                        for j, i in enumerate(ids)]
        _insert(conn, DupGroup.__table__, groups)
        _insert(conn, GroupMember.__table__, members)

        # review history and the state it implies
        reviewed = list(range(1, int(n * 0.15) + 1)) + rng.sample(range(int(n * 0.15) + 1, n + 1), int(n * 0.03))
        decisions, states, did = [], {}, 0
        for i in reviewed:
            for _ in range(2 if rng.random() < 0.1 else 1):
                did += 1
                r = rng.random()
                who = "auto:source=gbif" if rng.random() < 0.2 else rng.choice(CURATORS)
                d = {"id": did, "image_id": i, "reviewer": who, "decision": "accept", "reason": None,
                     "clade": None, "crop_x0": None, "crop_y0": None, "crop_x1": None, "crop_y1": None,
                     "note": None, "undoes_id": None, "created_at": now}
                if r < 0.15:
                    d.update(decision="reject", reason=rng.choice(st.REJECT_REASONS))
                elif r < 0.22:
                    d.update(decision="relabel", clade=rng.choice(clades))
                decisions.append(d)
                states[i] = rr.apply_decision(states.get(i), d)
        state_rows = [{"image_id": i, **{k: v[k] for k in rr.STATE_FIELDS}, "updated_at": now}
                      for i, v in states.items()]
        _insert(conn, Decision.__table__, decisions)
        _insert(conn, ReviewState.__table__, state_rows)
        sus = [{"image_id": i, "training_run_id": None, "given_clade": clade_of[i],
                "predicted_clade": rng.choice(clades), "score": rng.random(), "created_at": now + dt.timedelta(days=1)}
               for i in rng.sample(range(1, n + 1), max(1, n // 800))]
        _insert(conn, Suspect.__table__, sus)
    with eng.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.commit()
    log(f"  groups {len(groups):,} ({sum(g['conflict'] for g in groups):,} conflicts), decisions "
        f"{len(decisions):,}, reviewed {len(states):,}, suspects {len(sus):,}  {time.perf_counter() - t0:6.1f} s")
    return cat, settings.store, {"clades": clades}


# ---------------------------------------------------------------------------------------------
# the equivalent hand-written SQL (sqlite3 module)

def _ts(d: dt.datetime) -> str:
    return d.strftime("%Y-%m-%d %H:%M:%S.%f")  # how SQLAlchemy stores DateTime on SQLite


class RawSQL:
    """The queue page and the decision as hand-written SQL on one ``sqlite3`` connection."""

    # the best plan found for SQLite: a reviewed image is rejected by one primary-key probe
    # before anything else; a clade's ids come from index sightings(clade, url_id)
    NOT_REVIEWED = "NOT EXISTS (SELECT 1 FROM review_state rs WHERE rs.image_id = i.id AND rs.status != 'unreviewed')"
    NOT_LEASED = ("NOT EXISTS (SELECT 1 FROM review_leases l WHERE l.image_id = i.id AND l.expires_at > ? "
                  "AND l.reviewer != ?)")
    QUEUE_CLADE = (f"SELECT i.id FROM images i WHERE i.id IN (SELECT u.image_id FROM urls u JOIN sightings s "
                   f"ON s.url_id = u.id WHERE s.clade = ?) AND {NOT_REVIEWED} AND {NOT_LEASED} ORDER BY i.id LIMIT ?")
    QUEUE_ALL = (f"SELECT i.id FROM images i WHERE {NOT_REVIEWED} AND EXISTS (SELECT 1 FROM urls u JOIN sightings s "
                 f"ON s.url_id = u.id WHERE u.image_id = i.id) AND {NOT_LEASED} ORDER BY i.id LIMIT ?")

    @classmethod
    def queue_sql(cls, clade: str | None, now: dt.datetime, reviewer: str, limit: int) -> tuple[str, tuple]:
        if clade:
            return cls.QUEUE_CLADE, (clade, _ts(now), reviewer, limit)
        return cls.QUEUE_ALL, (_ts(now), reviewer, limit)

    def __init__(self, path: Path):
        self.db = sqlite3.connect(path, isolation_level=None, timeout=30)
        for p in ("journal_mode=WAL", "foreign_keys=ON", "busy_timeout=30000", "synchronous=NORMAL"):
            self.db.execute(f"PRAGMA {p}")

    def queue_page(self, reviewer: str, clade: str | None, limit: int = PAGE, seconds: int = 300) -> list[dict]:
        db, now = self.db, dt.datetime.utcnow()
        db.execute("BEGIN IMMEDIATE")
        db.execute("DELETE FROM review_leases WHERE expires_at <= ?", (_ts(now),))
        ids = [r[0] for r in db.execute(*self.queue_sql(clade, now, reviewer, limit))]
        exp = _ts(now + dt.timedelta(seconds=seconds))
        db.executemany("INSERT INTO review_leases (image_id, reviewer, expires_at) VALUES (?, ?, ?) "
                       "ON CONFLICT (image_id) DO UPDATE SET expires_at = excluded.expires_at "
                       "WHERE reviewer = excluded.reviewer", [(i, reviewer, exp) for i in ids])
        db.execute("COMMIT")
        marks = ",".join("?" * len(ids))
        imgs = {r[0]: r for r in db.execute(
            f"SELECT id, sha256, width, height, orig_width, orig_height FROM images WHERE id IN ({marks})", ids)}
        clades: dict[int, set] = {}
        for i, c in db.execute(f"SELECT DISTINCT u.image_id, s.clade FROM urls u JOIN sightings s ON s.url_id = u.id "
                               f"WHERE u.image_id IN ({marks})", ids):
            clades.setdefault(i, set()).add(c or "unassigned")
        states = {r[0]: r for r in db.execute(
            f"SELECT image_id, status, clade, reason, reviewer, last_decision_id, crop_x0, crop_y0, crop_x1, crop_y1 "
            f"FROM review_state WHERE image_id IN ({marks})", ids)}
        out = []
        for i in ids:
            im, sr = imgs[i], states.get(i)
            out.append({"id": i, "sha256": im[1], "width": im[2], "height": im[3], "orig_width": im[4],
                        "orig_height": im[5], "clades": sorted(clades.get(i, ())),
                        "state": None if sr is None else {"status": sr[1], "clade": sr[2], "reason": sr[3],
                                                          "reviewer": sr[4], "last_decision_id": sr[5],
                                                          "crop": None if sr[6] is None else list(sr[6:10])},
                        "thumb": f"/thumb/{i}", "image": f"/img/{i}"})
        json.dumps({"items": out})
        return out

    def decide(self, image_id: int, reviewer: str, decision: str, reason: str | None, clade: str | None) -> dict:
        db, now = self.db, _ts(dt.datetime.utcnow())
        db.execute("BEGIN IMMEDIATE")
        db.execute("DELETE FROM review_leases WHERE image_id = ? AND reviewer = ?", (image_id, reviewer))
        if db.execute("SELECT orig_width, orig_height FROM images WHERE id = ?", (image_id,)).fetchone() is None:
            db.execute("ROLLBACK")
            raise LookupError(image_id)
        old = db.execute("SELECT status, clade FROM review_state WHERE image_id = ?", (image_id,)).fetchone()
        cur = db.execute("INSERT INTO decisions (image_id, reviewer, decision, reason, clade, created_at) "
                         "VALUES (?, ?, ?, ?, ?, ?)", (image_id, reviewer, decision, reason, clade, now))
        did = cur.lastrowid
        status = "rejected" if decision == "reject" else "accepted"
        new_clade = clade if decision == "relabel" else (old[1] if old else None)
        db.execute("INSERT INTO review_state (image_id, status, clade, reason, reviewer, last_decision_id, updated_at) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (image_id) DO UPDATE SET status = excluded.status, "
                   "clade = excluded.clade, reason = excluded.reason, reviewer = excluded.reviewer, "
                   "last_decision_id = excluded.last_decision_id, updated_at = excluded.updated_at",
                   (image_id, status, new_clade, reason, reviewer, did, now))
        db.execute("COMMIT")
        return {"id": did, "status": status}

    def release(self, reviewer: str) -> None:
        self.db.execute("DELETE FROM review_leases WHERE reviewer = ?", (reviewer,))

    def queue_counts(self, reviewer: str) -> dict:
        db = self.db
        unrev = self.NOT_REVIEWED
        per = {c or "unassigned": k for c, k in db.execute(
            "SELECT s.clade, count(DISTINCT u.image_id) FROM sightings s JOIN urls u ON u.id = s.url_id "
            f"WHERE u.image_id IS NOT NULL AND {unrev.replace('i.id', 'u.image_id')} GROUP BY s.clade")}
        total = db.execute(
            f"SELECT count(*) FROM images i WHERE {unrev} "
            "AND EXISTS (SELECT 1 FROM urls u JOIN sightings s ON s.url_id = u.id WHERE u.image_id = i.id)").fetchone()[0]
        conflicts = db.execute(
            "SELECT count(DISTINCT gm.image_id) FROM group_members gm JOIN dup_groups g ON g.id = gm.group_id "
            f"WHERE g.conflict = 1 AND {unrev.replace('i.id', 'gm.image_id')}").fetchone()[0]
        second = db.execute(
            "SELECT count(*) FROM review_state rs WHERE (rs.status = 'rejected' OR rs.clade IS NOT NULL) "
            "AND rs.reviewer != ? AND NOT EXISTS (SELECT 1 FROM decisions d WHERE d.image_id = rs.image_id "
            "AND d.reviewer = ?)", (reviewer, reviewer)).fetchone()[0]
        suspects = db.execute(
            "SELECT count(*) FROM (SELECT image_id, max(created_at) AS at FROM suspects GROUP BY image_id) x "
            "WHERE NOT EXISTS (SELECT 1 FROM decisions d WHERE d.image_id = x.image_id AND d.created_at >= x.at)"
        ).fetchone()[0]
        return {"unreviewed": {"total": total, "clades": per}, "conflicts": conflicts, "second": second,
                "suspects": suspects}


# ---------------------------------------------------------------------------------------------
# timing

def _timed(samples: dict, key: tuple, fn, *args, **kwargs):
    """Run fn, recording wall and CPU milliseconds (everything, SQLite included, runs in this
    process, so CPU time is the work done, whatever else the machine is busy with)."""
    t, c = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    samples.setdefault(key, []).append(((time.perf_counter() - t) * 1000, (time.process_time() - c) * 1000))
    return out


def run_bench(cat, store: Path, clades: list[str], pages: int, per_page: int, seed: int, log=print) -> dict:
    from curation.review.app import create_app

    rng = random.Random(seed + 7)
    app = create_app(cat, store, thumbs=store.parent / "thumbs")
    app.testing = True
    client = app.test_client()
    token = client.get("/api/session").get_json()["csrf"]
    raw = RawSQL(Path(cat.url[len("sqlite:///"):]))
    samples: dict[str, list[float]] = {}
    check = {"api_items": 0, "raw_items": 0}

    def api_decide(image_id, reviewer, kind, reason, clade):
        body = {"image_id": image_id, "reviewer": reviewer, "decision": kind}
        if reason:
            body["reason"] = reason
        if clade:
            body["clade"] = clade
        r = client.post("/api/decisions", data=json.dumps(body), content_type="application/json",
                        headers={"X-CSRF-Token": token})
        if r.status_code != 201:
            raise RuntimeError(f"POST /api/decisions answered {r.status_code}: {r.get_data(as_text=True)}")

    def api_queue(reviewer, clade):
        q = f"/api/queue/unreviewed?reviewer={reviewer}&limit={PAGE}" + (f"&clade={clade}" if clade else "")
        r = client.get(q)
        if r.status_code != 200:
            raise RuntimeError(f"GET {q} answered {r.status_code}: {r.get_data(as_text=True)}")
        return r.get_json()["items"]

    def repo_page(reviewer, clade):
        ids = rr.run_in_transaction(cat, rr.claim_queue, "unreviewed", reviewer, clade=clade, limit=PAGE)
        with cat.session() as s:
            return rr.image_summaries(s, ids)

    def decisions_for(items):
        out = []
        for it in rng.sample(items, min(per_page, len(items))):
            r = rng.random()
            if r < 0.6:
                out.append((it["id"], "accept", None, None))
            elif r < 0.85:
                out.append((it["id"], "reject", rng.choice(st.REJECT_REASONS), None))
            else:
                out.append((it["id"], "relabel", None, rng.choice(clades)))
        return out

    # the hand-written queue SQL must select what the repo selects (checked before any lease exists)
    for c in (clades[0], clades[-1], None):
        want = [r[0] for r in raw.db.execute(*RawSQL.queue_sql(c, dt.datetime.utcnow(), "check", PAGE))]
        with cat.session() as s:
            got = rr.queue_ids(s, "unreviewed", "check", clade=c, limit=PAGE)
        if got != want:
            raise RuntimeError(f"raw SQL and repo disagree on the queue for clade {c!r}: {got[:5]} vs {want[:5]}")
    # warm-up (caches, compiled statements), not timed
    api_queue("warm", clades[0])
    raw.queue_page("raw-warm", clades[0])
    repo_page("repo-warm", clades[0])

    for p in range(pages):
        k = p % len(CURATORS)
        api_r, raw_r, repo_r = CURATORS[k], f"raw-{CURATORS[k]}", f"repo-{CURATORS[k]}"
        clade = None if p % 4 == 3 else rng.choice(clades)
        key = "queue page (all)" if clade is None else "queue page (clade)"
        # the reviewer leaves the previous page: release their leases (not timed)
        client.post("/api/leases/release", data=json.dumps({"reviewer": api_r}), content_type="application/json",
                    headers={"X-CSRF-Token": token})
        raw.release(raw_r)
        rr.run_in_transaction(cat, rr.release_leases, repo_r)
        order = [0, 1, 2]
        rng.shuffle(order)
        for which in order:
            if which == 0:
                items = _timed(samples, (key, "api"), api_queue, api_r, clade)
                check["api_items"] += len(items)
            elif which == 1:
                raw_items = _timed(samples, (key, "raw"), raw.queue_page, raw_r, clade)
                check["raw_items"] += len(raw_items)
            else:
                _timed(samples, ("repo: claim+summaries", "api"), repo_page, repo_r, clade)
        for (a, r) in zip(decisions_for(items), decisions_for(raw_items)):
            if rng.random() < 0.5:
                _timed(samples, ("post decision", "api"), api_decide, a[0], api_r, *a[1:])
                _timed(samples, ("post decision", "raw"), raw.decide, r[0], raw_r, *r[1:])
            else:
                _timed(samples, ("post decision", "raw"), raw.decide, r[0], raw_r, *r[1:])
                _timed(samples, ("post decision", "api"), api_decide, a[0], api_r, *a[1:])
        if (p + 1) % 10 == 0:
            log(f"  {p + 1}/{pages} pages")

    for k in range(max(5, pages // 6)):
        def counts():
            r = client.get(f"/api/queues?reviewer={CURATORS[k % 4]}")
            if r.status_code != 200:
                raise RuntimeError(f"GET /api/queues answered {r.status_code}")
            return r.get_json()
        api_counts = _timed(samples, ("queue_counts", "api"), counts)
        raw_counts = _timed(samples, ("queue_counts", "raw"), raw.queue_counts, CURATORS[k % 4])
    if api_counts != raw_counts:
        log(f"  WARNING: queue_counts differ: api {api_counts} raw {raw_counts}")
    raw.db.close()
    check["counts"] = api_counts
    return {"samples": samples, "check": check}


def _p(values, q: float, col: int) -> float:
    return float(np.percentile([v[col] for v in values], q))


def report(samples: dict, n_images: int) -> list[dict]:
    rows = []
    both = samples.get(("queue page (clade)", "raw"), []) + samples.get(("queue page (all)", "raw"), [])
    for name in ("queue page (clade)", "queue page (all)", "repo: claim+summaries", "post decision", "queue_counts"):
        api = samples.get((name, "api"))
        if not api:
            continue
        raw = both if name == "repo: claim+summaries" else samples[(name, "raw")]
        p95, r95 = _p(api, 95, 0), _p(raw, 95, 0)
        rows.append({"what": name, "n": len(api), "p50": _p(api, 50, 0), "p95": p95, "cpu_p95": _p(api, 95, 1),
                     "raw_p95": r95, "raw_cpu_p95": _p(raw, 95, 1), "ratio": p95 / r95 if r95 else float("nan"),
                     "target": name != "queue_counts"})
    print()
    print(f"review benchmark, SQLite, {n_images:,} images, page of {PAGE}; milliseconds, wall clock unless "
          "'cpu' (this process's CPU time); ratio = p95 / raw SQL p95")
    hdr = (f"{'':22} {'n':>4} {'p50':>7} {'p95':>7} {'cpu p95':>8} {'raw p95':>8} {'raw cpu':>8} {'ratio':>6}  "
           f"p95 < {TARGET_MS:.0f} ms")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        verdict = ("ok" if r["p95"] < TARGET_MS else "MISSED") if r["target"] else "(no target)"
        print(f"{r['what']:22} {r['n']:>4} {r['p50']:7.1f} {r['p95']:7.1f} {r['cpu_p95']:8.1f} {r['raw_p95']:8.1f} "
              f"{r['raw_cpu_p95']:8.1f} {r['ratio']:6.2f}  {verdict}")
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=400_000)
    ap.add_argument("--pages", type=int, default=60, help="queue pages loaded by each of API, repo and raw SQL")
    ap.add_argument("--decisions-per-page", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", type=Path, help="build the catalog in this (new or empty) folder and keep it")
    a = ap.parse_args(argv)
    if a.images < 1000:
        ap.error(f"--images {a.images} is too small; expected at least 1000")
    tmp = None
    if a.keep:
        folder = a.keep
        folder.mkdir(parents=True, exist_ok=True)
        if any(folder.iterdir()):
            ap.error(f"--keep {folder} is not empty")
    else:
        tmp = tempfile.TemporaryDirectory(prefix="fid-bench-review-")
        folder = Path(tmp.name)
    try:
        print(f"building a catalog with {a.images:,} images in {folder}")
        cat, store, facts = build_catalog(folder, a.images, a.seed)
        print(f"timing {a.pages} queue pages and {a.pages * a.decisions_per_page} decisions (API and raw SQL)")
        res = run_bench(cat, store, facts["clades"], a.pages, a.decisions_per_page, a.seed)
        rows = report(res["samples"], a.images)
        cat.close()
        ok = all(r["p95"] < TARGET_MS for r in rows if r["target"])
        print(f"\ntarget p95 < {TARGET_MS:.0f} ms for queue page and decision: {'met' if ok else 'NOT met'}")
        return 0 if ok else 1
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
