"""`fid crawl`, `fid fetch`, `fid doctor`, `fid sample-source serve|probe`: parse arguments, call one library
function in :mod:`crawler.runner`, format the result with rich."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from dataset_db.clitools import FidGroup, app, catalog_options, console, echo_json, err_console

from .runner import COLUMNS


def _pipeline_options(f):
    opts = [
        click.option("--engine-url", "engine_urls", multiple=True, metavar="ENGINE[.ROLE]=BASE",
                     help="Replace a source's base URL (e.g. bing=http://127.0.0.1:8000, idigbio.media=...)."),
        click.option("--workers", type=click.IntRange(1, 64), default=None,
                     help="Image worker processes (decode, resize, hash) [default: CPUs, at most 4]."),
        click.option("--batch-size", type=click.IntRange(1, 100_000), default=200, show_default=True,
                     help="Most catalog rows per transaction; at most max(32, N) URLs wait between download "
                          "and commit (what a killed run downloads again)."),
        click.option("--min-side", type=click.IntRange(1), default=64, show_default=True),
        click.option("--max-side", type=click.IntRange(0), default=512, show_default=True,
                     help="Downscale so the longer side is at most this (0: keep the size)."),
        click.option("--keep-original", is_flag=True, help="Also keep the original bytes in the store."),
        click.option("--respect-noai", is_flag=True, help="Skip images sent with X-Robots-Tag: noai/noimageai."),
        click.option("--refetch", is_flag=True, help="Download URLs again even when already stored."),
        click.option("--timeout", type=click.FloatRange(0.1), default=30.0, show_default=True,
                     help="Seconds per download."),
        click.option("--max-bytes", type=click.IntRange(1), default=25 * 1024 * 1024, show_default=True,
                     help="Largest download accepted."),
        click.option("--per-domain", type=click.IntRange(1, 64), default=4, show_default=True,
                     help="Concurrent downloads per host."),
        click.option("--no-autothrottle", is_flag=True, help="Disable Scrapy's AutoThrottle."),
        click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]), default="WARNING",
                     show_default=True),
        click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                     help="Override a Scrapy/fid setting (VALUE parsed as JSON when it can be), "
                          "e.g. --set DOWNLOAD_DELAY=2 --set FID_BACKOFF_TRIES=2."),
        click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _options(kw) -> "object":
    from .runner import CrawlOptions

    o = CrawlOptions(batch_size=kw["batch_size"], min_side=kw["min_side"], max_side=kw["max_side"],
                     keep_original=kw["keep_original"], respect_noai=kw["respect_noai"], refetch=kw["refetch"],
                     timeout=kw["timeout"], max_bytes=kw["max_bytes"], per_domain=kw["per_domain"],
                     autothrottle=not kw["no_autothrottle"], log_level=kw["log_level"],
                     engine_urls=list(kw["engine_urls"]), extra_settings=parse_overrides(kw["overrides"]))
    if kw["workers"]:
        o.workers = kw["workers"]
    return o


def parse_overrides(values) -> dict:
    import json

    out = {}
    for v in values or ():
        key, sep, raw = v.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{v!r}; expected KEY=VALUE", param_hint="--set")
        try:
            out[key.strip()] = json.loads(raw)
        except ValueError:
            out[key.strip()] = raw
    return out


def _table(rows, totals, title):
    from rich.table import Table

    t = Table(title=title)
    t.add_column("clade")
    t.add_column("source")
    for c in COLUMNS:
        t.add_column(c, justify="right")
    for r in rows:
        t.add_row(r["clade"], r["source"], *(f"{r[c]:,}" for c in COLUMNS))
    t.add_section()
    t.add_row("total", "", *(f"{totals[c]:,}" for c in COLUMNS), style="bold")
    return t


class _Live:
    """A rich live table per clade and source while the crawl runs (only on a terminal)."""

    def __init__(self, enabled: bool):
        self.live = None
        if enabled and sys.stderr.isatty():
            from rich.live import Live

            self.live = Live(console=err_console(), refresh_per_second=4, transient=True)

    def __enter__(self):
        if self.live:
            self.live.__enter__()
        return self

    def __exit__(self, *exc):
        if self.live:
            self.live.__exit__(*exc)

    def tick(self, snap):
        if not self.live:
            return
        from .runner import _totals

        totals = _totals(snap["rows"])
        rate = totals["stored"] / snap["seconds"] if snap["seconds"] else 0.0
        self.live.update(_table(snap["rows"], totals, f"{snap['seconds']:.0f}s, {rate:.1f} images/s"))


def _report(res, as_json, title):
    if as_json:
        echo_json(res)
        return
    c = console()
    c.print(_table(res["rows"], res["totals"], title))
    if res["statuses"]:
        c.print("URL outcomes: " + ", ".join(f"{k} {v:,}" for k, v in res["statuses"].items()))
    c.print(f"{res['totals']['stored']:,} images stored in {res['seconds']:.1f}s "
            f"({res['images_per_second']:.1f}/s)")
    if res["totals"]["parse_errors"]:
        c.print(f"[yellow]{res['totals']['parse_errors']} parse errors: sources may have changed their "
                "pages (see the log lines above)[/yellow]")


@click.command()
@catalog_options
@click.option("--clade", "clades", multiple=True, metavar="NAME", help="Clade to crawl (repeatable).")
@click.option("--all", "all_clades", is_flag=True, help="Crawl every clade.")
@click.option("--engines", default=None, metavar="LIST",
              help="Comma-separated sources (bing,duckduckgo,google,baidu,gbif,idigbio,wikimedia) "
                   "[default: [crawl] sources in fid.toml].")
@click.option("--max-per-keyword", type=click.IntRange(1), default=None,
              help="Results per keyword and source [default: [crawl.limits] in fid.toml].")
@_pipeline_options
def crawl(clades, all_clades, engines, max_per_keyword, **kw):
    """Search the sources for the clades' keywords and bring the images into the catalog."""
    from .runner import run_crawl

    if bool(clades) == bool(all_clades):
        raise click.UsageError("give --clade NAME (repeatable) or --all")
    a = app()
    cat = a.catalog(create=True)
    live = _Live(not kw["as_json"])
    with live:
        res = run_crawl(cat, a.settings, clades=None if all_clades else list(clades),
                        engines=engines.split(",") if engines else None, max_per_keyword=max_per_keyword,
                        options=_options(kw), on_tick=live.tick)
    _report(res, kw["as_json"], f"crawl: {', '.join(res['engines'])}")


@click.command()
@catalog_options
@click.option("--clade", default=None, metavar="NAME", help="Only URLs sighted under this clade.")
@click.option("--limit", type=click.IntRange(1), default=None, help="At most this many URLs.")
@_pipeline_options
def fetch(clade, limit, **kw):
    """Download the catalog's pending and retryable URLs (e.g. from `fid import urls`)."""
    from .runner import run_fetch

    a = app()
    cat = a.catalog()
    live = _Live(not kw["as_json"])
    with live:
        res = run_fetch(cat, a.settings, clade=clade, limit=limit, options=_options(kw), on_tick=live.tick)
    _report(res, kw["as_json"], f"fetch: {res['urls']:,} URLs")


@click.command()
@catalog_options
@click.option("--fix", is_flag=True, help="Delete orphan and temp files; send URLs of missing files back to pending.")
@click.option("--json", "as_json", is_flag=True)
def doctor(fix, as_json):
    """Check the image store against the catalog: orphan files, missing files, leftovers."""
    from .runner import doctor as run_doctor

    a = app()
    res = run_doctor(a.catalog(), a.settings.store, fix=fix)
    if as_json:
        echo_json(res)
    else:
        from rich.table import Table

        t = Table(title=f"store {res['store']}")
        t.add_column("check")
        t.add_column("count", justify="right")
        for k in ("files", "images", "orphans", "missing", "temp_files", "dangling_urls"):
            t.add_row(k, f"{res[k]:,}")
        for k, v in res["fixed"].items():
            t.add_row(f"fixed: {k}", f"{v:,}")
        c = console()
        c.print(t)
        for p in res["orphan_examples"]:
            c.print(f"orphan: {p}")
        for p in res["missing_examples"]:
            c.print(f"missing: {p}")
        c.print("ok" if res["ok"] or fix else "problems found; run `fid doctor --fix` to repair")
    if not res["ok"] and not fix:
        sys.exit(1)


class _ProbeByDefault(FidGroup):
    """`fid sample-source --keyword ...` (the command before it became a group) still means `probe`."""

    def parse_args(self, ctx, args):
        if args and args[0].startswith("-") and args[0] not in ("-h", "--help"):
            args = ["probe", *args]
        return super().parse_args(ctx, args)


@click.group("sample-source", cls=_ProbeByDefault)
def sample_source():
    """The built-in offline sample source (serve) and probes of real sources (probe)."""


@sample_source.command("serve")
@click.option("--size", type=click.Choice(["demo", "small", "tiny"]), default="demo", show_default=True,
              help="How many results per clade (demo: ~400, small: ~64, tiny: ~20).")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="Port of every server (each on its own loopback address); 0: free ports.")
@click.option("--urls-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the `--engine-url ENGINE=URL` arguments of `fid crawl` here, one per line, once serving.")
@click.option("--info-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the base URLs, engines, clades and crawl limit as JSON here, once serving.")
@click.option("--answers", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the sample's answer key (the decisions a careful curator makes) as a CSV "
                   "for `python -m curation.review.client`.")
def sample_serve(size, seed, port, urls_file, info_file, answers):
    """Serve generated fossil pictures of six clades on loopback, as Bing and GBIF, until stopped.

    \b
    fid sample-source serve --urls-file urls.txt &
    fid crawl --engines bing,gbif $(cat urls.txt) --clade Trilobite --clade Ammonoid
    """
    import signal
    import threading

    from .emulators.sample import SampleSource, write_answer_key

    src = SampleSource(size=size, seed=seed, port=port).start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        info = src.info()
        if answers:
            info["answers"] = str(answers)
            info["answer_rows"] = write_answer_key(src, answers)
        args = [f"--engine-url {u}" for u in info["engine_urls"]]
        if info_file:
            _write_atomic(info_file, json.dumps(info, indent=2) + "\n")
        if urls_file:
            _write_atomic(urls_file, "\n".join(args) + "\n")
        c = console()
        c.print(f"sample source ({size}, seed {seed}): " + ", ".join(f"{e} {u}" for e, u in info["base_urls"].items()))
        c.print(f"clades: {', '.join(info['clades'])}")
        c.print("crawl it with: fid crawl --engines " + ",".join(info["engines"]) + " "
                + " ".join(args) + " " + " ".join(f"--clade '{x}'" for x in info["clades"]))
        c.print("serving; Ctrl-C to stop")
        sys.stdout.flush()
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        src.stop()


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


@sample_source.command("probe")
@click.option("--engines", default=None, metavar="LIST", help="Comma-separated sources [default: all].")
@click.option("--keyword", required=True, help="The query to run.")
@click.option("--taxon", default=None, help="Scientific name for gbif/idigbio [default: the keyword].")
@click.option("--max", "max_items", type=click.IntRange(1), default=20, show_default=True)
@click.option("--engine-url", "engine_urls", multiple=True, metavar="ENGINE[.ROLE]=BASE")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE")
@click.option("--timeout", type=click.FloatRange(0.1), default=30.0, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def sample_probe(engines, keyword, taxon, max_items, engine_urls, overrides, timeout, as_json):
    """Run sources for one keyword without downloading: what each yields (checks a parser still works)."""
    from .runner import CrawlOptions, sample_source as run_sample
    from .settings import ENGINES

    opts = CrawlOptions(engine_urls=list(engine_urls), timeout=timeout, extra_settings=parse_overrides(overrides))
    res = run_sample(app().settings, engines=engines.split(",") if engines else list(ENGINES), keyword=keyword,
                     taxon=taxon, max_per_keyword=max_items, options=opts)
    if as_json:
        echo_json(res)
        return
    c = console()
    c.print(_table(res["rows"], res["totals"], f"sample: {keyword}"))
    for it in res["items"][:50]:
        c.print(f"{it['source']:<10} {it['license']:<14} {it['image_url']}")
