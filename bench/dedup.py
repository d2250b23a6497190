"""Benchmark `fid dedup`'s two hot paths against the naive ways, in one run, as ratios.

Usage:  .venv/bin/python bench/dedup.py [--files 2000] [--repeat 3] [--processes N] [--dir DIR]
                                        [--n 415000] [--threshold 8] [--data random,clustered]
                                        [--brute-sample 40000] [--skip-search] [--skip-hashing]

Hashing (img/s on the same files, best of ``--repeat`` passes, page cache warm)
    ``--files`` generated stored copies: photo-like pictures (gradient, shapes, sensor noise from
    crawler.emulators.imagegen) of 480-720 px put through the real ingest normalisation
    (curation.images.process_image_bytes: longer side 512, JPEG q90 4:2:0), i.e. exactly the
    files `fid dedup` hashes. Kept in ``--dir`` (reused when already there) or a temp folder.
    Rows: the naive loop ``imagehash.phash(Image.open(p))`` (one core, pHash only); bare draft-mode
    decoding (the floor for fid's path); fid's ``hash_files`` with one process and with the
    process pool (``--processes``, default all cores), both computing pHash *and* dHash. Also
    prints how far fid's pHash is from imagehash's on these files (mean, p99 and max bits).

Search (all pairs within ``--threshold`` among ``--n`` hashes)
    Runs :func:`bench.dedup_search.run` (its data generators, planted pairs and measurement) for
    each data set: numpy brute force on a ``--brute-sample`` subset, its time extrapolated by
    (n / sample)^2 (marked ``~``), and fid's backend (``curation.search.default_index``, multi-index
    hashing) on all n, with recall on the planted pairs and exactness on the sample.

The machine is shared and noisy: compare the ratios (same run, same files), not absolute seconds.
Exit status 1 when fid's search misses a planted pair or differs from brute force on the sample.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import dedup_search  # noqa: E402
from curation.hashing import DRAFT_SIDE, hash_files, process_pool  # noqa: E402
from curation.search import default_index, popcount64  # noqa: E402

# ---------------------------------------------------------------------------------------------
# files


def _make_file(job: tuple[int, int, str]) -> str:
    from crawler.emulators.imagegen import ImageGen
    from curation.images import process_image_bytes

    i, seed, dest = job
    if not os.path.exists(dest):
        body = ImageGen(seed, size_range=(480, 720), cache_size=0).render("ok", f"bench-{i}", "jpg").body
        p = process_image_bytes(body)
        tmp = dest + ".tmp"
        with open(tmp, "wb") as fh:
            fh.write(p.data)
        os.replace(tmp, dest)
    return dest


def make_files(folder: Path, n: int, seed: int = 0, processes: int | None = None) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(i, seed, str(folder / f"bench-{seed}-{i:06d}.jpg")) for i in range(n)]
    todo = [j for j in jobs if not os.path.exists(j[2])]
    if todo:
        t0 = time.perf_counter()
        with process_pool(processes, preload=(__name__,)) as pool:
            list(pool.map(_make_file, todo, chunksize=16))
        print(f"generated {len(todo):,} files in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return [j[2] for j in jobs]


# ---------------------------------------------------------------------------------------------
# hashing


def naive_phash(paths) -> list[int]:
    import imagehash
    from PIL import Image

    return [int(str(imagehash.phash(Image.open(p))), 16) for p in paths]


def draft_decode(paths) -> int:
    from PIL import Image

    n = 0
    for p in paths:
        with Image.open(p) as img:
            img.draft("L", (DRAFT_SIDE, DRAFT_SIDE))
            img.load()
            n += img.size[0]
    return n


def bench_hashing(paths: list[str], repeat: int, processes: int) -> tuple[list[dict], dict]:
    for p in paths:  # warm the page cache
        Path(p).read_bytes()
    cases = [
        ("imagehash.phash(Image.open(p)) loop", 1, "pHash", lambda: naive_phash(paths)),
        ("draft-mode decode only (floor)", 1, "-", lambda: draft_decode(paths)),
        ("fid hash_files, 1 process", 1, "pHash+dHash", lambda: hash_files(paths, processes=1)),
        (f"fid hash_files, pool of {processes}", processes, "pHash+dHash",
         lambda: hash_files(paths, processes=processes)),
    ]
    best = {name: math.inf for name, *_ in cases}
    outputs = {}
    for _ in range(max(1, repeat)):  # interleaved passes: load changes hit every case alike
        for name, _procs, _what, fn in cases:
            t0 = time.perf_counter()
            outputs[name] = fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    naive_s = best[cases[0][0]]
    rows = [dict(case=name, processes=procs, computes=what, seconds=best[name], rate=len(paths) / best[name],
                 ratio=naive_s / best[name]) for name, procs, what, _ in cases]
    ref = np.array(outputs[cases[0][0]], dtype=np.uint64)
    fid = np.array([h[0] if h else 0 for h in outputs[cases[2][0]]], dtype=np.uint64)
    d = popcount64(ref ^ fid).astype(np.float64)
    agree = dict(mean=float(d.mean()), p99=float(np.percentile(d, 99)), max=int(d.max()),
                 same_as_pool=outputs[cases[2][0]] == outputs[cases[3][0]])
    return rows, agree


# ---------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=2000, help="generated 512-px JPEG files to hash")
    ap.add_argument("--repeat", type=int, default=3, help="timed passes over the files (best kept)")
    ap.add_argument("--processes", type=int, default=os.cpu_count() or 1, help="fid's pool size")
    ap.add_argument("--dir", type=Path, default=None, help="keep the generated files here (reused)")
    ap.add_argument("--n", type=int, default=415_000, help="hashes for the search benchmark")
    ap.add_argument("--threshold", type=int, default=8)
    ap.add_argument("--data", default="random,clustered", help="search data sets: random, clustered")
    ap.add_argument("--brute-sample", type=int, default=40_000)
    ap.add_argument("--bases", type=int, default=3000, help="generated images behind the clustered set")
    ap.add_argument("--planted", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-hashing", action="store_true")
    ap.add_argument("--skip-search", action="store_true")
    a = ap.parse_args(argv)
    sets = [d.strip() for d in a.data.split(",") if d.strip()]
    for d in sets:
        if d not in ("random", "clustered"):
            ap.error(f"unknown data set {d!r}; choose from: random, clustered")
    if a.files < 1:
        ap.error(f"--files must be at least 1; got {a.files}")
    ok = True

    print(f"machine: {os.cpu_count()} cores; the load of other users shows in seconds, less in ratios")
    if not a.skip_hashing:
        with tempfile.TemporaryDirectory(prefix="fid-bench-dedup-") as tmp:
            folder = a.dir or Path(tmp)
            paths = make_files(folder, a.files, a.seed, a.processes)
            rows, agree = bench_hashing(paths, a.repeat, a.processes)
        print(f"\nHashing {len(paths):,} stored-copy JPEGs (longer side 512 px), best of {a.repeat}:")
        hdr = f"{'case':<42} {'procs':>5} {'computes':>12} {'seconds':>8} {'img/s':>8} {'vs naive':>9}"
        print(hdr)
        print("-" * len(hdr))
        for r in rows:
            print(f"{r['case']:<42} {r['processes']:>5} {r['computes']:>12} {r['seconds']:>8.2f} "
                  f"{r['rate']:>8.0f} {r['ratio']:>8.2f}x")
        print(f"fid pHash vs imagehash.phash on these files: mean {agree['mean']:.3f} bits, "
              f"p99 {agree['p99']:.0f}, max {agree['max']}; pool == 1 process: {agree['same_as_pool']}")

    if not a.skip_search:
        backend = default_index()
        print(f"\nSearch: all pairs within {a.threshold} bits among {a.n:,} hashes; fid's backend: {backend.name}")
        rows = []
        for data in sets:
            rows += dedup_search.run(data, a.n, a.threshold, a.brute_sample, False, a.seed, a.bases, a.planted)
        dedup_search.print_rows(rows, a.brute_sample, a.n)
        ok = ok and dedup_search.rows_ok(rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
