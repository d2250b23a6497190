"""`fid import urls`: argument parsing and the summary table (the work is in dataset_db.importer)."""

from __future__ import annotations

from pathlib import Path

import click

from .clitools import app, catalog_options, console, echo_json, progress


@click.command("urls")
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
@click.option("--clade", metavar="NAME", help="Clade of every URL (CSV/JSONL files may have a clade column instead).")
@click.option("--source", metavar="NAME", help="Where the list came from, free-form: ebay, amazon, a museum "
              "[default: import].")
@click.option("--keyword", metavar="TEXT", help="The search keyword the list was made with.")
@click.option("--from-fid-lists", "fid_lists", metavar="DIR", type=click.Path(path_type=Path),
              help="Import the paper's whole fid-url-lists/ folder with the shipped file -> clade map.")
@click.option("--format", "fmt", type=click.Choice(["auto", "lines", "csv", "jsonl"]), default="auto",
              show_default=True, help="Input format; auto goes by the extension (.csv/.tsv, .jsonl, else lines).")
@click.option("--fallback-encoding", "fallback", metavar="NAME", multiple=True,
              help="Encoding for lines that are not UTF-8 (repeatable) [default: latin-1; "
                   "gb18030 then latin-1 with --from-fid-lists].")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@catalog_options
def import_urls(files, clade, source, keyword, fid_lists, fmt, fallback, as_json):
    """Import URL lists: plain (one URL a line), title==url lines, CSV or JSONL with named columns.

    \b
    fid import urls trilobites.txt --clade Trilobite --source ebay --keyword "trilobite fossil"
    fid import urls --from-fid-lists ../shared/data/fid-url-lists
    """
    from .importer import import_urls as run_import

    if not files and fid_lists is None:
        raise click.UsageError("give FILE... --clade NAME, or --from-fid-lists DIR")
    ctx = app()
    with progress(transient=True) as bar:
        tasks: dict[str, int] = {}

        def on_progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done)

        result = run_import(lambda: ctx.catalog(create=True), files=files, clade=clade, source=source,
                            keyword=keyword, from_fid_lists=fid_lists, fmt=fmt,
                            fallback_encodings=tuple(fallback) or None, progress=on_progress)
    if as_json:
        echo_json(result)
        return
    _print_summary(result)


def _print_summary(r: dict) -> None:
    from rich.table import Table

    c = console()
    t = Table(title=f"import run {r['run_id']}: {r['files']} file(s) in {r['seconds']:.1f} s")
    t.add_column("")
    t.add_column("count", justify="right")
    t.add_row("lines read", f"{r['lines_read']:,}")
    t.add_row("URLs added", f"{r['urls_added']:,}")
    t.add_row("already known", f"{r['already_known']:,}")
    t.add_row("sightings added", f"{r['sightings_added']:,}")
    t.add_row("rejected", f"{r['rejected_total']:,}")
    for reason, n in r["rejected"].items():
        t.add_row(f"  {reason}", f"{n:,}")
    c.print(t)
    for ex in r["rejected_examples"][:10]:
        c.print(f"rejected {ex['reason']}: {ex['file']}:{ex['line']}: {ex['text']}", markup=False)
    by_enc: dict[str, list[str]] = {}
    for name, enc in r["encodings"].items():
        by_enc.setdefault(enc, []).append(name)
    for enc, names in by_enc.items():
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        c.print(f"{len(names)} file(s) with lines that are not UTF-8, decoded as {enc}: {shown}", markup=False)
    if r["unmapped"]:
        c.print(f"not imported, not in the fid-lists map ({len(r['unmapped'])}): {', '.join(r['unmapped'])}",
                markup=False)
    if r["missing"]:
        c.print(f"in the fid-lists map but not in the folder ({len(r['missing'])}): {', '.join(r['missing'])}",
                markup=False)
