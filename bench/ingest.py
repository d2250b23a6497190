"""Ingest benchmark: `fid fetch` vs img2dataset on the same URL list from the same local server.

    .venv/bin/python bench/ingest.py [--n 5000] [--workers P] [--hosts 4] [--img2dataset PATH]

Serves N generated JPEGs (300-512 px) from the emulator's image hosts (pre-rendered, so the server
is not what is measured), imports their URLs into a fresh SQLite catalog and times `fid fetch`
end to end (download, validate, normalise, hash, store, catalog) with P worker processes. Then,
when an img2dataset executable is available (it pins old dependencies, so it lives in its own
virtual environment: ``python -m venv bench/.venv-img2dataset && bench/.venv-img2dataset/bin/pip
install img2dataset``), times it on the same list with processes_count=P, output_format files,
resize_mode no and re-encoding disabled. Prints images/s for both and the ratio (target >= 1.0).
Profile the fid side with ``py-spy record -o fid.svg --subprocesses -- <the printed command>``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--hosts", type=int, default=4)
    ap.add_argument("--per-domain", type=int, default=16)
    ap.add_argument("--img2dataset", default=str(REPO / "bench" / ".venv-img2dataset" / "bin" / "img2dataset"))
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args(argv)

    from crawler.emulators import EmulatorSet
    from dataset_db import repo_crawl
    from dataset_db.bootstrap import open_or_create
    from dataset_db.config import load_settings

    work = Path(tempfile.mkdtemp(prefix="fid-bench-ingest-"))
    results = {"n": args.n, "workers": args.workers}
    with EmulatorSet(seed=1, n_hosts=args.hosts, cache_size=args.n + 16) as emu:
        urls = emu.image_urls(args.n, kind="ok", ext="jpg", label="bench")
        t = time.perf_counter()
        emu.prerender(urls, workers=args.workers)
        print(f"pre-rendered {len(urls):,} JPEGs in {time.perf_counter() - t:.1f}s")
        (work / "urls.txt").write_text("\n".join(urls) + "\n")

        settings = load_settings(db=str(work / "cat.sqlite"), store=str(work / "store"), cwd=work)
        cat = open_or_create(settings)
        repo_crawl.upsert_items(cat.engine, None, [
            {"image_url": u, "source": "bench", "keyword": "", "clade": "unassigned"} for u in urls])
        cat.close()

        cmd = [sys.executable, "-m", "crawler.runner", "--db", str(work / "cat.sqlite"), "--store",
               str(work / "store"), "fetch", "--json", "--workers", str(args.workers), "--per-domain",
               str(args.per_domain), "--no-autothrottle", "--batch-size", "500",
               "--set", f"CONCURRENT_REQUESTS={args.per_domain * args.hosts}", "--set", "ROBOTSTXT_OBEY=false"]
        print("fid:", " ".join(cmd))
        t = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=work, env={**os.environ, "PYTHONPATH": str(REPO)})
        fid_s = time.perf_counter() - t
        if r.returncode != 0:
            print(r.stderr[-3000:])
            return 1
        res = json.loads(r.stdout)
        ok = res["totals"]["stored"] + res["totals"]["duplicate"]
        results["fid"] = {"seconds": round(fid_s, 2), "images": ok, "images_per_s": round(ok / fid_s, 1),
                          "statuses": res["statuses"]}
        print(f"fid fetch: {ok:,} images in {fid_s:.1f}s = {ok / fid_s:.1f} images/s")

        if Path(args.img2dataset).exists():
            out = work / "img2dataset"
            cmd = [args.img2dataset, "--url_list", str(work / "urls.txt"), "--input_format", "txt",
                   "--output_folder", str(out), "--output_format", "files", "--processes_count",
                   str(args.workers), "--thread_count", str(args.per_domain * args.hosts), "--resize_mode", "no",
                   "--disable_all_reencoding", "True", "--timeout", "30", "--retries", "0",
                   "--enable_wandb", "False"]
            t = time.perf_counter()
            r = subprocess.run(cmd, capture_output=True, text=True, cwd=work)
            i2d_s = time.perf_counter() - t
            got = len(list(out.rglob("*.jpg"))) if out.exists() else 0
            results["img2dataset"] = {"seconds": round(i2d_s, 2), "images": got,
                                      "images_per_s": round(got / i2d_s, 1) if i2d_s else 0.0}
            print(f"img2dataset: {got:,} images in {i2d_s:.1f}s = {got / i2d_s:.1f} images/s")
            if got:
                ratio = (ok / fid_s) / (got / i2d_s)
                results["ratio"] = round(ratio, 2)
                print(f"ratio fid/img2dataset: {ratio:.2f} (target >= 1.0)")
        else:
            print(f"img2dataset not found at {args.img2dataset}; create its venv (see the docstring) to compare")
    print(json.dumps(results))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
