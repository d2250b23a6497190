"""`fid clades`: list the catalog's clades, load a taxonomy file."""

from __future__ import annotations

from pathlib import Path

import click

from .clitools import FidGroup, app, catalog_options, console, echo_json


@click.group(cls=FidGroup)
def clades():
    """The clade taxonomy: list it, load an edited taxonomy.toml."""


@clades.command("list")
@catalog_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_clades(as_json: bool):
    """Print the catalog's clades in class order with superclade, taxon and keywords."""
    from .taxonomy import catalog_clades

    cat = app().catalog()
    try:
        with cat.session() as s:
            data = catalog_clades(s)
    finally:
        cat.close()
    if as_json:
        echo_json(data)
        return
    from rich.table import Table

    t = Table(title=f"{len(data['clades'])} clades, taxonomy {data['version']} ({cat.url})")
    t.add_column("order", justify="right")
    t.add_column("clade", no_wrap=True)
    t.add_column("superclade", no_wrap=True)
    t.add_column("taxon")
    t.add_column("keywords", justify="right")
    t.add_column("first keywords", overflow="fold")
    for c in data["clades"]:
        kw = c["keywords"]
        first = [words[0] for words in kw.values() if words]
        t.add_row(str(c["order"]), c["name"], c["superclade"], c["taxon"] or "-",
                  str(sum(len(v) for v in kw.values())), ", ".join(first))
    console().print(t)


@clades.command("load")
@catalog_options
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Show what would change; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable summary.")
def load(file: Path, dry_run: bool, as_json: bool):
    """Replace the catalog's clades with those of FILE (TOML).

    Refuses to drop a clade that images carry unless FILE renames or merges it with
    [[rename]] from = "OLD" to = "NEW"; renames are recorded with the taxonomy version.
    """
    from .taxonomy import apply_taxonomy, load_taxonomy

    taxonomy = load_taxonomy(file)
    cat = app().catalog()
    try:
        with cat.session() as s:
            summary = apply_taxonomy(s, taxonomy, dry_run=dry_run)
    finally:
        cat.close()
    if as_json:
        echo_json(summary)
        return
    from rich.table import Table

    title = f"taxonomy {summary['previous_version'] or '(none)'} -> {summary['version']}"
    t = Table(title=title + (" (dry run: nothing written)" if dry_run else ""))
    t.add_column("change")
    t.add_column("clades", justify="right")
    t.add_column("names", overflow="fold")
    for key in ("added", "removed", "renamed", "merged", "updated", "unchanged"):
        items = summary[key]
        names = [f"{i[0]} -> {i[1]}" if isinstance(i, (list, tuple)) else i for i in items]
        shown = ", ".join(names[:8]) + (f", ... ({len(names) - 8} more)" if len(names) > 8 else "")
        t.add_row(key, str(len(items)), shown if key != "unchanged" else "")
    t.add_section()
    for key in ("sightings_moved", "review_states_moved", "orphaned_sightings"):
        t.add_row(key.replace("_", " "), f"{summary[key]:,}", "")
    console().print(t)
