"""`fid report`: parse arguments, call :func:`curation.report.build_report`, print where it went."""

from __future__ import annotations

from pathlib import Path

import click

from dataset_db.clitools import app, catalog_options, console, echo_json


@click.command()
@catalog_options
@click.option("--out", "out_dir", default="report", show_default=True,
              type=click.Path(file_okay=False, path_type=Path), help="Folder to write index.html and its pictures to.")
@click.option("--export", default=None, metavar="NAME", help="Export to describe [default: the model's, else the newest].")
@click.option("--model", "model_dir", default=None, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Model folder of `fid train` [default: the newest training run's].")
@click.option("--eval", "eval_dir", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="Evaluation folder of `fid evaluate` [default: MODEL/eval-test].")
@click.option("--explain-dir", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="Folder of `fid explain` PNGs [default: MODEL/explain].")
@click.option("--embedding", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="PNG of `fid embed` [default: MODEL/embedding.png].")
@click.option("--json", "as_json", is_flag=True, help="Print the report's numbers as JSON.")
def report(out_dir, export, model_dir, eval_dir, explain_dir, embedding, as_json):
    """Write an HTML report of the catalog: clades, crawl outcomes, duplicates, review, export, training,
    metrics, Grad-CAM, embedding and suspects (parts not made yet say which command makes them)."""
    from .report import build_report

    a = app()
    res = build_report(a.catalog(), a.settings.store, out_dir, export=export, model_dir=model_dir,
                       eval_dir=eval_dir, explain_dir=explain_dir, embedding=embedding,
                       catalog_url=a.settings.db_url)
    if as_json:
        echo_json(res)
        return
    c = console()
    t = res["catalog"]["totals"]
    c.print(f"report written to {res['out']}")
    c.print(f"catalog: {t['urls']:,} URLs, {t['images']:,} unique images, {t['accepted']:,} accepted")
    ev = res["evaluation"]
    if ev.get("top1") is not None:
        c.print(f"test top-1 {ev['top1']:.3f}, top-3 {ev['top3']:.3f} on {ev['n']:,} images")
    missing = [v["title"] for v in res["sections"].values() if not v["present"]]
    if missing:
        c.print("not made yet: " + ", ".join(missing))
