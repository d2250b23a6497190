"""`fid review`: the review server and bulk review commands (rules, undo, CSV in and out)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import click

from dataset_db.clitools import FidGroup, app, catalog_options, console
from dataset_db.status import REJECT_REASONS


@click.group(cls=FidGroup)
@catalog_options
def review():
    """Review images: a web page for curators, bulk rules, undo, CSV export/import of decisions."""


@review.command()
@catalog_options
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; anything but loopback needs --token.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--token", envvar="FID_REVIEW_TOKEN", default=None,
              help="Access token required from every client [env FID_REVIEW_TOKEN].")
@click.option("--thumbs", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Thumbnail cache folder [default: beside the store, review-thumbs].")
@click.option("--lease-minutes", default=5, show_default=True, type=click.IntRange(1, 120),
              help="How long an image handed out by a queue stays reserved for its reviewer.")
def serve(host, port, token, thumbs, lease_minutes):
    """Serve the review page (grid and single view, keyboard first) and its JSON API."""
    from .review.app import check_bind, serve as run

    check_bind(host, token)   # refuse before opening anything
    a = app()
    cat = a.catalog()
    c = console()

    def ready(server):
        c.print(f"reviewing {a.settings.db_url} on http://{host}:{server.server_port}/ (Ctrl+C stops)")

    try:
        run(cat, a.settings.store, host=host, port=port, token=token, thumbs=thumbs,
            lease_seconds=lease_minutes * 60, ready=ready)
    except KeyboardInterrupt:
        pass
    finally:
        cat.close()


def _rule(clade=(), source=(), domain=(), license=()):
    from dataset_db.repo_review import Rule

    return Rule(tuple(clade), tuple(source), tuple(domain), tuple(license))


def _print_changes(res: dict, verb: str) -> None:
    from rich.table import Table

    c = console()
    if res["dry_run"]:
        c.print(f"dry run: {len(res['matched'])} images would be {verb} as {res['reviewer']}")
        return
    if res["changed"]:
        t = Table(title=f"{verb} as {res['reviewer']}")
        for col in ("decision", "image", "state"):
            t.add_column(col)
        for ch in res["changed"][:50]:
            st = ch["state"]
            t.add_row(str(ch["decision"]["id"]), str(ch["decision"]["image_id"]),
                      st["status"] + (f" ({st['reason']})" if st["reason"] else ""))
        c.print(t)
        if len(res["changed"]) > 50:
            c.print(f"... and {len(res['changed']) - 50} more")
    c.print(f"{len(res['changed'])} images {verb} ({len(res['matched'])} matched); "
            f"undo with: fid review undo --reviewer '{res['reviewer']}'")


@review.command("auto-accept")
@catalog_options
@click.option("--clade", multiple=True, help="Proposed clade (repeatable).")
@click.option("--source", multiple=True, help="Source name, e.g. gbif (repeatable).")
@click.option("--domain", multiple=True, help="Image host or a parent domain (repeatable).")
@click.option("--license", "license_", multiple=True, help="Licence, e.g. cc-by (repeatable).")
@click.option("--rule", "rule_name", default=None, help="Name recorded as reviewer auto:<rule> [default: the filters].")
@click.option("--dry-run", is_flag=True, help="Only count what would be accepted.")
def auto_accept(clade, source, domain, license_, rule_name, dry_run):
    """Accept unreviewed images from trusted sources, skipping duplicate groups with label conflicts."""
    from dataset_db.repo_review import auto_accept as run

    a = app()
    cat = a.catalog()
    try:
        res = run(cat, _rule(clade, source, domain, license_), rule_name=rule_name, dry_run=dry_run)
    finally:
        cat.close()
    _print_changes(res, "accepted")


@review.command("bulk-reject")
@catalog_options
@click.option("--source", multiple=True, help="Source name (repeatable).")
@click.option("--domain", multiple=True, help="Image host or a parent domain (repeatable).")
@click.option("--reason", type=click.Choice(REJECT_REASONS), default="other", show_default=True)
@click.option("--rule", "rule_name", default=None, help="Name recorded as reviewer auto:reject:<rule>.")
@click.option("--dry-run", is_flag=True, help="Only count what would be rejected.")
def bulk_reject(source, domain, reason, rule_name, dry_run):
    """Reject unreviewed images by domain or source (reviewer auto:reject:<rule>)."""
    from dataset_db.repo_review import bulk_reject as run

    a = app()
    cat = a.catalog()
    try:
        res = run(cat, _rule(source=source, domain=domain), reason=reason, rule_name=rule_name, dry_run=dry_run)
    finally:
        cat.close()
    _print_changes(res, "rejected")


@review.command()
@catalog_options
@click.option("--reviewer", default=None, help="Undo every decision of this reviewer still in force (e.g. auto:source=gbif).")
@click.option("--decision", "decision_id", type=int, default=None, help="Undo this one decision.")
@click.option("--by", default=None, help="Name recorded on the undo decisions [default: $USER].")
def undo(reviewer, decision_id, by):
    """Undo decisions by appending new ones that restore the previous state (history is kept)."""
    from dataset_db import repo_review as rr

    if (reviewer is None) == (decision_id is None):
        raise click.UsageError("give exactly one of --reviewer or --decision")
    by = by or os.environ.get("USER") or "cli"
    a = app()
    cat = a.catalog()
    try:
        if decision_id is not None:
            res = rr.run_in_transaction(cat, rr.undo_decision, decision_id, by)
            undone, superseded = [res], 0
        else:
            out = rr.undo_reviewer(cat, reviewer, by=by)
            undone, superseded = out["undone"], out["superseded"]
    finally:
        cat.close()
    c = console()
    for u in undone[:50]:
        c.print(f"image {u['decision']['image_id']}: decision {u['decision']['undoes_id']} undone, "
                f"now {u['state']['status']}")
    c.print(f"{len(undone)} decisions undone" + (f"; {superseded} left alone (a later decision replaced them)"
                                                  if superseded else ""))


@review.command("export-decisions")
@catalog_options
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def export_decisions(file):
    """Write the whole decision history to a CSV FILE (for offline work or backup)."""
    from dataset_db import repo_review as rr

    a = app()
    cat = a.catalog()
    try:
        with file.open("w", newline="", encoding="utf-8") as fh, cat.session() as s:
            n = rr.export_decisions(s, fh)
    finally:
        cat.close()
    console().print(f"wrote {n} decisions to {file}")


@review.command("import-decisions")
@catalog_options
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
def import_decisions(file):
    """Append the decisions in a CSV FILE (as written by export-decisions); rows already present are skipped."""
    from dataset_db import repo_review as rr

    a = app()
    cat = a.catalog()
    try:
        text = file.read_text(encoding="utf-8")
        res = rr.run_in_transaction(cat, lambda s: rr.import_decisions(s, io.StringIO(text, newline="")))
    finally:
        cat.close()
    console().print(f"imported {res['added']} decisions from {file} ({res['skipped']} already present)")
