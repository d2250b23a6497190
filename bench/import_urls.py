"""Benchmark: `fid import urls --from-fid-lists` into a fresh SQLite catalog, against raw sqlite3.

    .venv/bin/python bench/import_urls.py [--lists DIR] [--runs 10]

Prints lines read, URLs and sightings added, seconds and rows/s for fid; then the floor: raw
``sqlite3`` executemany of the very rows fid wrote (read back from its catalog) into a second
fresh catalog with the same schema, indexes, pragmas and transaction size, and fid's ratio to it.
Then the p95 of ``fid status --json`` on the filled catalog (a subprocess, as a user runs it), of
``dataset_db.repo.status_summary`` in-process, and of the same SQL statements replayed through raw
``sqlite3``. Target (issue 2): the 536k-line folder in under 10 s on the 2-core reference machine;
``fid status`` p95 under 1 s.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dataset_db import importer  # noqa: E402
from dataset_db.bootstrap import open_or_create  # noqa: E402
from dataset_db.config import load_settings  # noqa: E402
from dataset_db.session import SQLITE_BUSY_TIMEOUT_MS  # noqa: E402

DEFAULT_LISTS = REPO.parent / "shared" / "data" / "fid-url-lists"


def p95(samples: list[float]) -> float:
    """Nearest-rank 95th percentile."""
    s = sorted(samples)
    return s[max(0, math.ceil(0.95 * len(s)) - 1)]


def new_catalog(folder: Path):
    settings = load_settings(db=f"sqlite:///{folder / 'catalog.sqlite'}", store=str(folder / "images"), cwd=folder)
    return open_or_create(settings), folder / "catalog.sqlite"


def raw_connect(path: Path) -> sqlite3.Connection:
    """The pragmas fid's engine sets (session._sqlite_pragmas) plus the importer's page cache."""
    c = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    for pragma in ("journal_mode=WAL", "foreign_keys=ON", f"busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
                   "synchronous=NORMAL", "cache_size=-65536"):
        c.execute(f"PRAGMA {pragma}")
    return c


def floor(fid_db: Path, folder: Path, batch: int) -> dict:
    """Raw sqlite3 executemany of fid's rows into a fresh catalog (same schema and indexes)."""
    cat, path = new_catalog(folder)
    cat.close()
    src = sqlite3.connect(fid_db)
    tables = {}
    for table in ("runs", "urls", "sightings"):
        cols = [r[1] for r in src.execute(f"PRAGMA table_info({table})")]
        rows = src.execute(f"SELECT {', '.join(cols)} FROM {table} ORDER BY id").fetchall()
        tables[table] = (cols, rows)
    src.close()
    dst = raw_connect(path)
    dst.execute("BEGIN")
    cols, rows = tables["runs"]
    dst.executemany(f"INSERT INTO runs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", rows)
    dst.execute("COMMIT")
    t0, c0 = time.perf_counter(), time.process_time()
    n = 0
    for table in ("urls", "sightings"):
        cols, rows = tables[table]
        sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
        for i in range(0, len(rows), batch):
            dst.execute("BEGIN")
            dst.executemany(sql, rows[i:i + batch])
            dst.execute("COMMIT")
        n += len(rows)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    dst.close()
    return {"seconds": seconds, "cpu": cpu, "rows": n}


def status_timings(db_path: Path, runs: int) -> dict:
    url = f"sqlite:///{db_path}"
    env = dict(os.environ, FID_DB=url)
    env.pop("FID_STORE", None)
    fid = Path(sys.executable).with_name("fid")
    cmd = [str(fid)] if fid.exists() else [sys.executable, "-m", "dataset_db.cli"]
    cli = []
    for _ in range(runs):
        t = time.perf_counter()
        out = subprocess.run(cmd + ["status", "--json"], env=env, cwd=db_path.parent, capture_output=True, text=True)
        cli.append(time.perf_counter() - t)
        if out.returncode != 0:
            raise SystemExit(f"fid status failed: {out.stderr.strip()}")
    totals = json.loads(out.stdout)["totals"]

    from sqlalchemy import event

    from dataset_db.repo import status_summary
    from dataset_db.session import open_catalog

    cat = open_catalog(url)
    statements: list[tuple[str, object]] = []

    def capture(_conn, _cursor, statement, parameters, _context, _many):
        statements.append((statement, parameters))

    inproc = []
    for i in range(runs):
        if i == 0:
            event.listen(cat.engine, "before_cursor_execute", capture)
        t = time.perf_counter()
        with cat.session() as s:
            status_summary(s)
        inproc.append(time.perf_counter() - t)
        if i == 0:
            event.remove(cat.engine, "before_cursor_execute", capture)
    cat.close()

    c = raw_connect(db_path)
    raw = []
    for _ in range(runs):
        t = time.perf_counter()
        for sql, params in statements:
            c.execute(sql, params).fetchall()
        raw.append(time.perf_counter() - t)
    slowest = []
    for sql, params in statements:
        t = time.perf_counter()
        c.execute(sql, params).fetchall()
        slowest.append((time.perf_counter() - t, " ".join(sql.split())))
    c.close()
    slowest.sort(reverse=True)
    return {"cli": cli, "inproc": inproc, "raw": raw, "statements": len(statements), "slowest": slowest[0],
            "totals": totals}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lists", type=Path, default=DEFAULT_LISTS, help=f"the paper's folder [{DEFAULT_LISTS}]")
    ap.add_argument("--runs", type=int, default=10, help="fid status runs for the p95 [10]")
    ap.add_argument("--batch", type=int, default=importer.BATCH_SIZE, help="rows per transaction")
    ap.add_argument("--keep", action="store_true", help="keep the temporary catalogs")
    args = ap.parse_args()
    if not args.lists.is_dir():
        raise SystemExit(f"no folder {args.lists}; give --lists DIR (the paper's fid-url-lists/)")

    tmp = Path(tempfile.mkdtemp(prefix="fid-bench-"))
    (tmp / "fid").mkdir()
    (tmp / "raw").mkdir()
    cat, fid_db = new_catalog(tmp / "fid")
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    print(f"cpus {os.cpu_count()}, sqlite {sqlite3.sqlite_version}, batch {args.batch:,} rows per transaction{load}")

    t0, c0 = time.perf_counter(), time.process_time()
    parsed = importer.parse_fid_lists(args.lists)
    t1 = time.perf_counter()
    res = importer.write_import(cat, parsed, batch_size=args.batch)
    t2, fid_cpu = time.perf_counter(), time.process_time() - c0
    cat.close()
    fid_s = t2 - t0
    rows = res["urls_added"] + res["sightings_added"]
    print(f"fid import:  {res['files']} files, {res['lines_read']:,} lines read, {res['urls_added']:,} URLs and "
          f"{res['sightings_added']:,} sightings added, {res['rejected_total']:,} rejected "
          f"{dict(res['rejected'])}")
    print(f"             {fid_s:.2f} s (read+parse {t1 - t0:.2f} s, write {t2 - t1:.2f} s), "
          f"{res['lines_read'] / fid_s:,.0f} lines/s, {rows / fid_s:,.0f} rows/s, CPU {fid_cpu:.2f} s  "
          f"[target: < 10 s on the 2-core reference machine]")
    unmapped = f"; unmapped: {res['unmapped']}" if res["unmapped"] else ""
    print(f"             {len(res['encodings'])} files with non-UTF-8 lines{unmapped}")

    fl = floor(fid_db, tmp / "raw", args.batch)
    print(f"raw sqlite3: {fl['rows']:,} rows (same URLs + sightings, same schema and indexes) in {fl['seconds']:.2f} s, "
          f"{fl['rows'] / fl['seconds']:,.0f} rows/s, CPU {fl['cpu']:.2f} s")
    print(f"ratio:       fid / raw = {fid_s / fl['seconds']:.2f} (write only: {(t2 - t1) / fl['seconds']:.2f}; "
          f"CPU: {fid_cpu / fl['cpu']:.2f})")

    st = status_timings(fid_db, args.runs)
    print(f"fid status --json ({args.runs} runs, subprocess): p95 {p95(st['cli']):.3f} s, "
          f"median {sorted(st['cli'])[len(st['cli']) // 2]:.3f} s  [target: p95 < 1 s]")
    print(f"status_summary in-process: p95 {p95(st['inproc']):.3f} s; the same {st['statements']} SQL statements "
          f"through raw sqlite3: p95 {p95(st['raw']):.3f} s")
    print(f"slowest statement ({st['slowest'][0]:.3f} s): {st['slowest'][1][:300]}")
    print(f"status totals: {st['totals']}")
    if args.keep:
        print(f"catalogs kept in {tmp}")
    else:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
