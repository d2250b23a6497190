"""`fid export NAME`: parse the options, call :func:`curation.export.run_export`, show the summary."""

from __future__ import annotations

from pathlib import Path

import click

from dataset_db.clitools import app, catalog_options, console, echo_json, progress

from .export import FORMATS, GROUP_BY


def _licenses(_ctx, _param, value):
    if value is None:
        return None
    return tuple(x.strip() for x in value.split(",") if x.strip())


@click.command("export")
@catalog_options
@click.argument("name")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder [default: ./exports/NAME].")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="folder", show_default=True,
              help="folder: split/clade/*.jpg (keras image_dataset_from_directory); csv: manifest only; "
                   "tfrecord: sharded TFRecords (needs the train extra).")
@click.option("--ratios", default="0.80,0.15,0.05", show_default=True, help="train,val,test ratios per clade.")
@click.option("--seed", type=click.IntRange(min=0), default=42, show_default=True, help="Split seed.")
@click.option("--group-by", type=click.Choice(GROUP_BY), default="group", show_default=True,
              help="Unit kept in one split: the duplicate group, or also every image of one web page.")
@click.option("--all-members", is_flag=True, help="Export every member of a group, not only its representative.")
@click.option("--include-unreviewed", is_flag=True, help="Export images not yet reviewed too (never rejected ones).")
@click.option("--license", "licenses", callback=_licenses, default=None, metavar="IDS",
              help="Only images under these licences, e.g. CC0-1.0,CC-BY-4.0,PDM.")
@click.option("--max-side", type=click.IntRange(min=16), default=512, show_default=True,
              help="Downscale so the longer side is at most this many pixels.")
@click.option("--from-export", default=None, metavar="NAME",
              help="Start from an earlier export: keep its val and test splits, resample its train split.")
@click.option("--per-class", type=click.IntRange(min=1), default=None, metavar="N",
              help="Undersample the train split to at most N images per clade (seeded).")
@click.option("--oversample-to", type=click.IntRange(min=1), default=None, metavar="N",
              help="Repeat images of smaller clades in the train split up to N per clade.")
@click.option("--since", default=None, metavar="NAME", help="Report images whose split changed since export NAME.")
@click.option("--replace", is_flag=True, help="Replace an existing export of this name (catalog rows and folder).")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None, help="Image-writing threads [default: cores].")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable summary.")
def export(name, out, fmt, ratios, seed, group_by, all_members, include_unreviewed, licenses, max_side,
           from_export, per_class, oversample_to, since, replace, jobs, as_json):
    """Export a leak-free, stratified train/val/test split of the reviewed images as NAME.

    Near-duplicate groups (from `fid dedup`) never cross splits; the split is seeded and stays
    put when the catalog grows. Writes manifest.csv, ATTRIBUTION.csv and a datasheet, and records
    the membership in the catalog for `fid train`.
    """
    from .export import ExportOptions, run_export

    ctx = app()
    opts = ExportOptions(out=out, fmt=fmt, ratios=ratios, seed=seed, group_by=group_by, all_members=all_members,
                         include_unreviewed=include_unreviewed, licenses=licenses, max_side=max_side,
                         from_export=from_export, per_class=per_class, oversample_to=oversample_to, since=since,
                         replace=replace, jobs=jobs)
    cat = ctx.catalog()
    try:
        with progress() as bar:
            tasks: dict[str, int] = {}

            def tick(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(stage, total=total)
                bar.update(tasks[stage], completed=done, total=total)

            res = run_export(cat, ctx.settings.store, name, opts, progress=tick)
    finally:
        cat.close()
    if as_json:
        echo_json(res)
        return
    from rich.table import Table

    c = res["counts"]
    t = Table(title=f"export {res['name']} -> {res['out_dir']} ({res['format']}, seed {res['seed']}, "
                    f"{res['seconds']:.1f} s)")
    for col in ("clade", "superclade", "train", "val", "test", "total"):
        t.add_column(col, justify="left" if col in ("clade", "superclade") else "right")
    for r in res["per_clade"]:
        rep = f" (+{r['train_repeats']})" if r["train_repeats"] else ""
        t.add_row(r["clade"], r["superclade"], f"{r['train']:,}{rep}", f"{r['val']:,}", f"{r['test']:,}",
                  f"{r['total']:,}")
    t.add_section()
    t.add_row("total", "", f"{c['train']:,}", f"{c['val']:,}", f"{c['test']:,}", f"{c['images']:,}", style="bold")
    out = console()
    out.print(t)
    lo = Table(title="left out")
    lo.add_column("reason")
    lo.add_column("count", justify="right")
    for k, v in res["left_out"].items():
        lo.add_row(k.replace("_", " "), f"{v:,}")
    out.print(lo)
    out.print(f"licence unknown: {res['license_unknown_share'] * 100:.1f}% of {c['images']:,} images; "
              f"{c['files']:,} files")
    m = res["moved"]
    if m is not None:
        out.print(f"since {m['since']}: {m['count']:,} image(s) moved split, {m['added']:,} added, "
                  f"{m['dropped']:,} dropped")
        for row in m["images"][:20]:
            out.print(f"  {row['sha256'][:16]}  {row['from']} -> {row['to']}")
        if m["count"] > 20:
            out.print(f"  ... and {m['count'] - 20:,} more (see --json)")
