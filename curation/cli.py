"""Curation commands: `fid import images` (and, from other modules' owners, dedup/export/review).

Each command parses its arguments, calls one library function and formats the result with rich.
"""

from __future__ import annotations

from pathlib import Path

import click

from dataset_db.clitools import app, catalog_options, console, echo_json, progress


# ---- fid import images ------------------------------------------------------------------------

@click.command("images")
@catalog_options
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--clade", default=None, metavar="NAME",
              help="Clade of every image in a flat folder (without it: one sub-folder per clade).")
@click.option("--processes", "-j", type=click.IntRange(min=1), default=None,
              help="Worker processes for decoding and hashing [default: all cores].")
@click.option("--max-side", type=click.IntRange(min=16), default=512, show_default=True,
              help="Downscale so the longer side is at most this many pixels.")
@click.option("--min-side", type=click.IntRange(min=1), default=64, show_default=True,
              help="Reject images whose shorter side is below this (too_small).")
@click.option("--keep-original", is_flag=True, help="Also keep the original file in the store.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable summary.")
def import_images(directory: Path, clade: str | None, processes: int | None, max_side: int, min_side: int,
                  keep_original: bool, as_json: bool):
    """Import local images: DIR has one sub-folder per clade, or give --clade for a flat folder.

    Every file goes through the same validate -> normalise -> hash -> store path as crawled
    images and is recorded as a file:// URL sighted under its clade. Re-running adds nothing new.
    """
    from .images import import_image_folder

    ctx = app()
    cat = ctx.catalog(create=True)
    try:
        with progress() as bar:
            task = bar.add_task("importing images", total=None)

            def tick(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            res = import_image_folder(cat, ctx.settings.store, directory, clade, processes=processes,
                                      progress=tick, max_side=max_side, min_side=min_side,
                                      keep_original=keep_original)
    finally:
        cat.close()
    if as_json:
        echo_json(res)
        return
    from rich.table import Table

    t = Table(title=f"import images {res['directory']} ({res['seconds']:.1f} s)")
    t.add_column("")
    t.add_column("files", justify="right")
    t.add_row("image files", f"{res['files']:,}")
    t.add_row("stored (new images)", f"{res['stored']:,}")
    t.add_row("duplicate (same image as one already stored)", f"{res['duplicate']:,}")
    t.add_row("already imported", f"{res['already_imported']:,}")
    for status_name, n in res["rejected"].items():
        t.add_row(f"rejected: {status_name}", f"{n:,}")
    if res["skipped"]:
        t.add_row("skipped (not image files or outside clade folders)", f"{res['skipped']:,}")
    console().print(t)
    if len(res["per_clade"]) > 1:
        pc = Table(title="files per clade")
        pc.add_column("clade")
        pc.add_column("files", justify="right")
        for name, n in sorted(res["per_clade"].items()):
            pc.add_row(name, f"{n:,}")
        console().print(pc)
