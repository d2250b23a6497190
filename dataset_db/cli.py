"""`fid`: the root command, and the catalog's own commands (init, db, clades, import, status).

Other layers own their groups (crawler/cli.py, curation/cli.py, training/cli.py); they are
imported lazily so `fid status` never loads Scrapy or Keras.
"""

from __future__ import annotations

from pathlib import Path

import click

from . import __version__
from .clitools import FidGroup, app, catalog_options, console, echo_json

LAZY = {
    # dataset_db
    "clades": "dataset_db.cli_clades:clades",
    "import": "dataset_db.cli:import_group",
    # crawler
    "crawl": "crawler.cli:crawl",
    "fetch": "crawler.cli:fetch",
    "sample-source": "crawler.cli:sample_source",
    "doctor": "crawler.cli:doctor",
    # curation
    "dedup": "curation.dedup_cli:dedup",
    "export": "curation.export_cli:export",
    "review": "curation.review_cli:review",
    "report": "curation.report_cli:report",
    # training
    "train": "training.cli:train",
    "evaluate": "training.cli:evaluate",
    "compare": "training.cli:compare",
    "predict": "training.cli:predict",
    "explain": "training.cli:explain",
    "embed": "training.cli:embed",
    "suspects": "training.cli:suspects",
}


@click.group(cls=FidGroup, lazy=LAZY,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fid")
@catalog_options
def main():
    """fid: build labelled fossil-image datasets from the web and train classifiers on them.

    Settings come from flags, then FID_* environment variables, then ./fid.toml, then defaults.
    """


@main.command()
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--contact", default=None, help="E-mail or URL sent in the User-Agent so site owners can reach you.")
@click.option("--force", is_flag=True, help="Overwrite an existing fid.toml and taxonomy.toml.")
def init(directory: Path, contact: str | None, force: bool):
    """Create a project folder: fid.toml, an editable taxonomy.toml and an empty catalog."""
    from .bootstrap import init_project

    res = init_project(directory, contact=contact, force=force)
    c = console()
    for line in res["written"]:
        c.print(f"wrote {line}")
    c.print(f"catalog {res['db_url']} ({res['clades']} clades, taxonomy {res['taxonomy_version']})")


@main.group(cls=FidGroup)
def db():
    """Catalog schema: upgrade, current revision."""


@db.command("upgrade")
@catalog_options
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str):
    """Apply catalog migrations (Alembic) up to REVISION."""
    from .session import db_revision, open_catalog, upgrade

    cat = open_catalog(app().settings.db_url, create=False, check_schema=False)
    before = db_revision(cat.engine)
    upgrade(cat.engine, revision)
    click.echo(f"catalog {cat.url}: {before} -> {db_revision(cat.engine)}")


@db.command("current")
@catalog_options
def db_current():
    """Print the catalog's schema revision and the newest this fid knows."""
    from .session import code_heads, db_revision, open_catalog

    cat = open_catalog(app().settings.db_url, create=False, check_schema=False)
    click.echo(f"catalog {cat.url}: {db_revision(cat.engine)} (code head: {', '.join(sorted(code_heads()))})")


@main.group(cls=FidGroup, name="import",
            lazy={"urls": "dataset_db.cli_import:import_urls", "images": "curation.cli:import_images"})
def import_group():
    """Bring URL lists and local image folders into the catalog."""


@main.command()
@catalog_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(as_json: bool):
    """Per clade: URLs, pending, downloaded, failed, unique images, duplicates, reviewed, accepted."""
    from .repo import STATUS_COLUMNS, status_summary

    cat = app().catalog()
    with cat.session() as s:
        summary = status_summary(s)
    if as_json:
        echo_json(summary)
        return
    from rich.table import Table

    t = Table(title=f"catalog {cat.url}")
    t.add_column("clade")
    for col in STATUS_COLUMNS:
        t.add_column(col, justify="right")
    for r in summary["clades"]:
        if any(r[c] for c in STATUS_COLUMNS):
            t.add_row(r["clade"], *(f"{r[c]:,}" for c in STATUS_COLUMNS))
    t.add_section()
    t.add_row("total", *(f"{summary['totals'][c]:,}" for c in STATUS_COLUMNS), style="bold")
    console().print(t)


if __name__ == "__main__":  # pragma: no cover
    main()
