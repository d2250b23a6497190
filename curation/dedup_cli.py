"""`fid dedup`: parse the options, call :func:`curation.dedup.run_dedup`, show the summary."""

from __future__ import annotations

from pathlib import Path

import click

from dataset_db.clitools import app, catalog_options, console, echo_json, progress

from .grouping import METHODS


@click.command("dedup")
@catalog_options
@click.option("--threshold", type=click.IntRange(0, 64), default=8, show_default=True,
              help="Largest Hamming distance (bits of 64) between near-duplicates.")
@click.option("--method", type=click.Choice(METHODS), default="phash", show_default=True,
              help="Hash compared; both: pHash and dHash must both be within the threshold.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              metavar="DIR", help="Write an HTML gallery of the largest groups and all conflicts to DIR.")
@click.option("--rebuild", is_flag=True, help="Regroup every image instead of adding new ones to existing groups.")
@click.option("--jobs", "-j", "processes", type=click.IntRange(min=1), default=None,
              help="Hashing processes [default: cores].")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable summary.")
def dedup(threshold, method, report_dir, rebuild, processes, as_json):
    """Find near-duplicate images (perceptual hashes), group them and flag label conflicts.

    Computes missing or outdated hashes, then groups every image within THRESHOLD of a group's
    representative (largest original, then earliest). Re-running adds new images to the
    existing groups; changing --threshold, --method or the hash version regroups everything.
    """
    from .dedup import run_dedup

    ctx = app()
    cat = ctx.catalog()
    try:
        with progress() as bar:
            tasks: dict[str, int] = {}

            def tick(stage: str, advance: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(stage, total=total)
                bar.update(tasks[stage], advance=advance, total=total)

            res = run_dedup(cat, ctx.settings.store, threshold=threshold, method=method, rebuild=rebuild,
                            report_dir=report_dir, processes=processes, progress=tick)
    finally:
        cat.close()
    if as_json:
        echo_json(res)
        return
    _print_summary(res)


def _print_summary(res: dict) -> None:
    from rich.table import Table

    c = console()
    what = {"build": "full build", "rebuild": "full rebuild", "incremental": "incremental update"}[res["mode"]]
    c.print(f"[bold]{what}[/bold] ({res['reason']}): method {res['method']}, threshold {res['threshold']}, "
            f"hash version {res['hash_version']}")
    line = f"hashes: {res['hashes_computed']:,} computed, {res['hashed']:,} of {res['images']:,} images hashed"
    if res["hash_failures"]:
        line += (f"; [red]{res['hash_failures']:,} could not be hashed[/red] (missing or unreadable files, "
                 f"e.g. image {', '.join(map(str, res['hash_failure_ids'][:5]))}; see `fid doctor`)")
    c.print(line)

    t = Table(title="duplicate groups")
    t.add_column("")
    t.add_column("value", justify="right")
    t.add_row("groups (2+ images)", f"{res['groups']:,}")
    t.add_row("images in groups", f"{res['images_in_groups']:,}")
    lg = res["largest"]
    t.add_row("largest group", (f"{lg['size']:,} images (group {lg['group_id']}, "
                                f"representative #{lg['representative_id']})") if lg else "-")
    t.add_row("label conflicts", f"{res['conflicts']:,} ({res['conflict_images']:,} images)")
    t.add_row("near-duplicate pairs found", f"{res['pairs']:,}")
    ch = res["changes"]
    t.add_row("groups stored", f"{ch['inserted']:,} new, {ch['updated']:,} updated, {ch['deleted']:,} deleted, "
              f"{ch['unchanged']:,} unchanged")
    c.print(t)

    if len(res["largest_groups"]) > 1:
        lt = Table(title="largest groups")
        for col in ("group", "representative", "images"):
            lt.add_column(col, justify="right")
        for g in res["largest_groups"]:
            lt.add_row(str(g["group_id"]), f"#{g['representative_id']}", f"{g['size']:,}")
        c.print(lt)

    if res["conflicts_by_clade_pair"]:
        ct = Table(title="label conflicts per clade pair")
        ct.add_column("clade")
        ct.add_column("clade")
        ct.add_column("groups", justify="right")
        for r in res["conflicts_by_clade_pair"]:
            ct.add_row(r["clades"][0], r["clades"][1], f"{r['groups']:,}")
        c.print(ct)
        c.print("Conflicting groups wait in the review queue `conflicts`; export leaves them out until resolved.")
    if "report" in res:
        c.print(f"report: {res['report']['index']} ({res['report']['groups']} groups, "
                f"{res['report']['conflicts']} conflicts)")
    s = res["seconds"]
    c.print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in s.items()))
