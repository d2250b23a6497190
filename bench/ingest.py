"""Ingest benchmark: `fid fetch` vs img2dataset on the same URL list from the same local server.

    .venv/bin/python bench/ingest.py [--n 5000] [--processes P] [--hosts 4] [--repeat 2]
                                     [--no-img2dataset] [--py-spy fid.svg] [--work DIR]

Serves N generated JPEGs (300-512 px, JPEG quality 78-93 per image, with noise) from the emulator's image
hosts on 127.0.0.2, 127.0.0.3, ... in a child process (``EmulatorSet(in_process=False)``: the
server never competes with the measured processes for a GIL). Every URL is requested once before
timing, which renders it into the server's cache, so the server is not what is measured.

fid: imports the URLs into a fresh SQLite catalog and times ``fid fetch`` end to end (process
start, download, validate, EXIF orientation, RGB, downscale to <= 512 px, JPEG re-encode, sha256 of
original and stored copy, perceptual hashes, content-addressed store, catalog rows) with P image
worker processes. The benchmark's JPEGs (RGB, 300-512 px, no EXIF) are what normalisation would
produce, so every one takes curation.images' fast path: validated and hashed by one reduced decode
and stored byte-identical, with no re-encode. Web images larger than 512 px, PNGs, CMYK or
EXIF-rotated JPEGs are decoded and re-encoded (about 1.5 ms more worker CPU each on the 2-core
machine).

img2dataset: created on demand in its own virtual environment (it pins old dependencies):
``bench/.venv-img2dataset`` (``python -m venv`` + ``pip install img2dataset`` from PyPI). Timed
end to end on the same list from the same server with processes_count=P, output_format files,
resize_mode no, disable_all_reencoding True (no decode at all: bytes are written as received),
its default sha256 and EXIF extraction, retries 0.

Fairness, what each side skips (both read every byte from the same server, over HTTP/1.1):
  fid          ROBOTSTXT_OBEY=false (img2dataset never reads robots.txt), --no-autothrottle,
               DOWNLOAD_DELAY 0, --per-domain C concurrent requests per host (C x hosts in all);
               --respect-noai is off by default. The 429/503 backoff stays on (never triggered).
  img2dataset  --disallowed_header_directives '[]' (its default skips X-Robots-Tag noai/noindex
               images, like fid's opt-in --respect-noai); thread_count = ceil(C x hosts / P) per
               process, so both have the same number of requests in flight; one shard per process.

Prints images/s for both and the ratio fid/img2dataset (target >= 1.0), per repeat (the order of
the two alternates between repeats), the CPU time (user + system of the whole process tree, the
server excluded) per image, which is steadier than wall time on a shared machine, and a JSON line
with everything.
Start-up: each tool is also timed on the first ``--small`` URLs (default 16), once per run, so
the output separates the fixed cost of a run (processes, imports, catalog) from the per-image
rate: ``steady images/s = (N - small) / (seconds for N - seconds for small)``, and the ratio of
those rates. img2dataset's fixed cost is the larger (several seconds of its 2+1 processes
importing pandas/pyarrow), so the end-to-end ratio at N=5,000 is higher than the steady one and
grows as N shrinks; ``--small 0`` skips this.
Where the files go: ``--work DIR`` (default: a new folder under $TMPDIR) holds both tools'
outputs, kept until the end of the run (deleting one run's 15,000 files before the next made the
next run's file creation slower: on ext4 without a journal, as on the development VM, the inode
allocator steps over every inode freed in the last 12 hours, which perf showed as ~14% of the
machine's CPU in ``recently_deleted``; img2dataset writes two files per image, fid one).
``--work /dev/shm`` takes the disk out of the comparison.
``--py-spy OUT.svg`` runs fid once more under ``py-spy record --subprocesses`` (timings of that run
are not comparable; py-spy must be in fid's venv: ``.venv/bin/pip install py-spy``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

I2D_VENV = REPO / "bench" / ".venv-img2dataset"
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


def clean_env(**extra) -> dict:
    """The environment of the measured processes: no proxies (loopback only), no FID_* settings."""
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS and not k.startswith("FID_")}
    env.update(extra)
    return env


def ensure_img2dataset(venv: Path, install: bool) -> tuple[Path | None, str]:
    """``(executable, "")``, or ``(None, one-line reason)``; creates ``venv`` when ``install``."""
    exe = venv / "bin" / "img2dataset"
    if exe.exists():
        return exe, ""
    if not install:
        return None, f"img2dataset not found at {exe} (--no-install)"
    print(f"creating {venv} and installing img2dataset from PyPI (once) ...", flush=True)
    steps = [[sys.executable, "-m", "venv", str(venv)],
             [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
              "img2dataset"]]
    for cmd in steps:
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return None, f"img2dataset could not be installed: {' '.join(cmd[:3])}: {exc}"
        if r.returncode != 0:
            lines = [ln for ln in (r.stderr or r.stdout).splitlines()
                     if ln.strip() and not ln.startswith("WARNING")]
            return None, f"img2dataset could not be installed: {(lines or ['exit ' + str(r.returncode)])[-1][:200]}"
    if not exe.exists():
        return None, f"img2dataset installed but {exe} is missing"
    return exe, ""


def warm_server(urls: list[str], threads: int = 16) -> int:
    """Request every URL once (renders it into the emulator's cache); returns the bytes served."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def get(u):
        with opener.open(u, timeout=60) as r:
            return len(r.read())

    with ThreadPoolExecutor(threads) as ex:
        return sum(ex.map(get, urls))


# ---- fid ------------------------------------------------------------------------------------------

def fid_prepare(work: Path, urls: list[str]) -> Path:
    from dataset_db import repo_crawl
    from dataset_db.bootstrap import open_or_create
    from dataset_db.config import load_settings

    work.mkdir(parents=True)
    settings = load_settings(db=str(work / "cat.sqlite"), store=str(work / "store"), cwd=work)
    cat = open_or_create(settings)
    repo_crawl.upsert_items(cat.engine, None, [
        {"image_url": u, "source": "bench", "keyword": "", "clade": "unassigned"} for u in urls])
    cat.close()
    return work


def fid_command(work: Path, args) -> list[str]:
    return [sys.executable, "-m", "crawler.runner", "--db", str(work / "cat.sqlite"), "--store",
            str(work / "store"), "fetch", "--json", "--workers", str(args.processes), "--per-domain",
            str(args.per_domain), "--no-autothrottle", "--batch-size", str(args.batch_size),
            "--set", f"CONCURRENT_REQUESTS={args.per_domain * args.hosts}", "--set", "ROBOTSTXT_OBEY=false",
            *[a for kv in args.fid_set for a in ("--set", kv)]]


def children_cpu() -> float:
    """CPU seconds (user + system) of every finished child and grandchild so far."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_fid(work: Path, urls: list[str], args, wrap: list[str] | None = None) -> dict:
    fid_prepare(work, urls)
    cmd = (wrap or []) + fid_command(work, args)
    cpu, t = children_cpu(), time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=work,
                       env=clean_env(PYTHONPATH=str(REPO), FID_CONTACT="bench@example.org"))
    secs, cpu = time.perf_counter() - t, children_cpu() - cpu
    if r.returncode != 0:
        return {"error": (r.stderr.strip().splitlines() or [f"exit {r.returncode}"])[-1][:300],
                "stderr": r.stderr[-3000:]}
    res, _ = json.JSONDecoder().raw_decode(r.stdout[r.stdout.index("{"):])  # py-spy may print after it
    ok = res["totals"]["stored"] + res["totals"]["duplicate"]
    return {"seconds": round(secs, 2), "images": ok, "images_per_s": round(ok / secs, 1),
            "cpu_ms_per_image": round(cpu * 1000 / max(ok, 1), 2), "inner_seconds": res["seconds"],
            "statuses": res["statuses"], "stderr": r.stderr[-2000:]}


# ---- img2dataset ----------------------------------------------------------------------------------

def i2d_command(exe: Path, url_file: Path, out: Path, n: int, args) -> list[str]:
    threads = args.threads or math.ceil(args.per_domain * args.hosts / args.processes)
    return [str(exe), "--url_list", str(url_file), "--input_format", "txt", "--output_folder", str(out),
            "--output_format", "files", "--processes_count", str(args.processes),
            "--thread_count", str(threads), "--number_sample_per_shard", str(math.ceil(n / args.processes)),
            "--resize_mode", "no", "--disable_all_reencoding", "True",
            "--disallowed_header_directives", "[]", "--timeout", "30", "--retries", "0",
            "--enable_wandb", "False"]


def run_i2d(exe: Path, url_file: Path, out: Path, n: int, args) -> dict:
    cmd = i2d_command(exe, url_file, out, n, args)
    cpu, t = children_cpu(), time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=out.parent,
                       env=clean_env(NO_ALBUMENTATIONS_UPDATE="1", WANDB_MODE="disabled"))
    secs, cpu = time.perf_counter() - t, children_cpu() - cpu
    got = len(list(out.rglob("*.jpg"))) if out.exists() else 0
    if r.returncode != 0 or not got:
        return {"error": (r.stderr.strip().splitlines() or [f"exit {r.returncode}"])[-1][:300],
                "images": got, "seconds": round(secs, 2)}
    return {"seconds": round(secs, 2), "images": got, "images_per_s": round(got / secs, 1),
            "cpu_ms_per_image": round(cpu * 1000 / got, 2)}


# ---- main -----------------------------------------------------------------------------------------

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5000, help="images (default 5000)")
    ap.add_argument("--processes", "--workers", dest="processes", type=int, default=os.cpu_count() or 2,
                    help="fid --workers and img2dataset processes_count (default: the number of cores)")
    ap.add_argument("--hosts", type=int, default=4, help="image hosts (127.0.0.2, ...)")
    ap.add_argument("--per-domain", type=int, default=16, help="concurrent requests per host (fid)")
    ap.add_argument("--threads", type=int, default=0,
                    help="img2dataset thread_count per process (default: ceil(per-domain x hosts / P))")
    ap.add_argument("--batch-size", type=int, default=500, help="fid catalog batch size")
    ap.add_argument("--fid-set", action="append", default=[], metavar="KEY=VALUE",
                    help="extra Scrapy/fid setting for the fid run (repeatable), e.g. FID_MAX_INFLIGHT=64")
    ap.add_argument("--repeat", type=int, default=1, help="run the comparison this many times")
    ap.add_argument("--venv", default=str(I2D_VENV), help="img2dataset's virtual environment")
    ap.add_argument("--no-img2dataset", action="store_true", help="time fid only")
    ap.add_argument("--no-install", action="store_true", help="do not create img2dataset's venv")
    ap.add_argument("--py-spy", metavar="OUT", help="also profile one fid run: py-spy record -o OUT (.svg, or "
                                                    ".txt for collapsed stacks)")
    ap.add_argument("--py-spy-rate", type=int, default=50, help="py-spy samples per second (default 50)")
    ap.add_argument("--small", type=int, default=16,
                    help="also time both tools on this many URLs to separate start-up from the per-image rate "
                         "(0: skip)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--work", metavar="DIR", help="make the work folder in DIR (default: $TMPDIR); "
                                                 "e.g. /dev/shm to leave the disk out")
    args = ap.parse_args(argv)
    if args.n < 1 or args.processes < 1 or args.hosts < 1 or args.per_domain < 1 or args.repeat < 1:
        ap.error("--n, --processes, --hosts, --per-domain and --repeat must be at least 1")

    from crawler.emulators import EmulatorSet

    exe, why = (None, "img2dataset skipped (--no-img2dataset)") if args.no_img2dataset else \
        ensure_img2dataset(Path(args.venv), install=not args.no_install)
    if exe is None:
        print(why)

    work = Path(tempfile.mkdtemp(prefix="fid-bench-ingest-", dir=args.work))
    results: dict = {"n": args.n, "processes": args.processes, "hosts": args.hosts, "per_domain": args.per_domain,
                     "cpus": os.cpu_count(), "work": str(work.parent), "runs": []}
    try:
        with EmulatorSet(seed=1, n_hosts=args.hosts, cache_size=args.n + 16, in_process=False) as emu:
            urls = emu.image_urls(args.n, kind="ok", ext="jpg", label="bench")
            t = time.perf_counter()
            nbytes = warm_server(urls)
            print(f"server (child process, {args.hosts} hosts): rendered {len(urls):,} JPEGs, "
                  f"{nbytes / 1e6:.1f} MB, mean {nbytes / len(urls) / 1e3:.0f} kB, in {time.perf_counter() - t:.1f}s")
            results["megabytes"] = round(nbytes / 1e6, 1)
            url_file = work / "urls.txt"
            url_file.write_text("\n".join(urls) + "\n")
            print("fid:", " ".join(fid_command(work / "fid-N", args)))
            if exe:
                print("img2dataset:", " ".join(i2d_command(exe, url_file, work / "i2d-N", args.n, args)))

            small = min(args.small, args.n - 1) if args.small > 0 else 0
            if small:
                small_file = work / "urls-small.txt"
                small_file.write_text("\n".join(urls[:small]) + "\n")
                fixed = {"n": small, "fid": run_fid(work / "fid-small", urls[:small], args)}
                if "error" in fixed["fid"]:
                    print(f"fid fetch of {small} URLs failed: {fixed['fid']['error']}")
                    return 1
                fixed["fid"].pop("stderr", None)
                if exe:
                    fixed["img2dataset"] = run_i2d(exe, small_file, work / "i2d-small", small, args)
                results["small"] = fixed
                print(f"start-up ({small} URLs): fid {fixed['fid']['seconds']:.1f}s"
                      + (f", img2dataset {fixed['img2dataset'].get('seconds', float('nan')):.1f}s" if exe else ""),
                      flush=True)

            def steady(who: str, res: dict) -> float | None:
                base = results.get("small", {}).get(who, {})
                if "seconds" not in base or "seconds" not in res or res["seconds"] <= base["seconds"]:
                    return None
                return round((args.n - small) / (res["seconds"] - base["seconds"]), 1)

            for i in range(args.repeat):
                run: dict = {}
                order = ["fid", "img2dataset"] if i % 2 == 0 else ["img2dataset", "fid"]
                for who in order:
                    if who == "fid":
                        run["fid"] = run_fid(work / f"fid-{i}", urls, args)
                        f = run["fid"]
                        if "error" in f:
                            print(f"[{i + 1}] fid fetch failed: {f['error']}\n{f['stderr']}")
                            return 1
                        print(f"[{i + 1}] fid fetch:   {f['images']:,} images in {f['seconds']:.1f}s = "
                              f"{f['images_per_s']:.1f} images/s (inside the crawl: {f['inner_seconds']:.1f}s); "
                              f"CPU {f['cpu_ms_per_image']:.1f} ms/image",
                              flush=True)
                        del f["stderr"]
                    elif exe:
                        run["img2dataset"] = run_i2d(exe, url_file, work / f"i2d-{i}", args.n, args)
                        g = run["img2dataset"]
                        if "error" in g:
                            print(f"[{i + 1}] img2dataset failed: {g['error']}")
                        else:
                            print(f"[{i + 1}] img2dataset: {g['images']:,} images in {g['seconds']:.1f}s = "
                                  f"{g['images_per_s']:.1f} images/s; CPU {g['cpu_ms_per_image']:.1f} ms/image",
                                  flush=True)
                if "images_per_s" in run.get("img2dataset", {}):
                    run["ratio"] = round(run["fid"]["images_per_s"] / run["img2dataset"]["images_per_s"], 2)
                    print(f"[{i + 1}] ratio fid/img2dataset: {run['ratio']:.2f} (target >= 1.0)", flush=True)
                    sf, si = steady("fid", run["fid"]), steady("img2dataset", run["img2dataset"])
                    if sf and si:
                        run["steady"] = {"fid": sf, "img2dataset": si, "ratio": round(sf / si, 2)}
                        print(f"[{i + 1}] without start-up: fid {sf:.1f} images/s, img2dataset {si:.1f} images/s, "
                              f"ratio {sf / si:.2f}", flush=True)
                results["runs"].append(run)

            if args.py_spy:
                spy = Path(sys.executable).with_name("py-spy")
                if not spy.exists():
                    print(f"py-spy not found at {spy}; .venv/bin/pip install py-spy")
                else:
                    out = Path(args.py_spy).resolve()
                    fmt = ["--format", "raw"] if out.suffix == ".txt" else []
                    p = run_fid(work / "fid-spy", urls, args,
                                wrap=[str(spy), "record", "--subprocesses", "--rate", str(args.py_spy_rate),
                                      "--nonblocking",
                                      "-o", str(out), *fmt, "--"])
                    print(f"py-spy profile of fid: {out} ({p.get('images_per_s', p.get('error'))} images/s "
                          "under the profiler)")
        if not exe:
            results["img2dataset"] = why
        ratios = [r["ratio"] for r in results["runs"] if "ratio" in r]
        if ratios:
            print(f"ratios fid/img2dataset: {', '.join(f'{x:.2f}' for x in ratios)}")
        steadies = [r["steady"]["ratio"] for r in results["runs"] if "steady" in r]
        if steadies:
            print(f"ratios without start-up: {', '.join(f'{x:.2f}' for x in steadies)}")
        print(json.dumps(results))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"work folder kept: {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
