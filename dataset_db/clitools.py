"""Shared CLI plumbing: the lazy command group, catalog options, and the one place where domain
errors become one-line `click.ClickException`s. Every layer's cli.py uses these."""

from __future__ import annotations

import importlib
import json
import sys
from dataclasses import dataclass, field

import click

from .errors import FidError


class FidGroup(click.Group):
    """A group whose subcommands may live in other packages and are imported only when used.

    ``lazy`` maps a command name to ``"module:attribute"``; `fid --help` lists them without
    importing Scrapy or Keras. Domain errors raised anywhere below become one-line messages here.
    """

    def __init__(self, *args, lazy: dict[str, str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx):
        lazy = [name for name in self.lazy if self._load(name) is not None]
        return sorted(set(super().list_commands(ctx)) | set(lazy))

    def _load(self, name):
        mod_name, attr = self.lazy[name].split(":")
        try:
            module = importlib.import_module(mod_name)
        except ModuleNotFoundError as exc:
            if exc.name and mod_name.startswith(exc.name):
                return None  # that layer is not installed in this checkout
            raise
        return getattr(module, attr, None)

    def get_command(self, ctx, name):
        if name in self.lazy:
            return self._load(name)
        return super().get_command(ctx, name)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except FidError as exc:
            raise click.ClickException(str(exc)) from None


@dataclass
class AppContext:
    db: str | None = None
    store: str | None = None
    _settings: object = field(default=None, repr=False)

    @property
    def settings(self):
        if self._settings is None:
            from .config import load_settings

            self._settings = load_settings(db=self.db, store=self.store)
        return self._settings

    def catalog(self, create: bool = False):
        """Open the catalog; only `init`, `import` and `crawl` pass create=True."""
        if create:
            from .bootstrap import open_or_create

            return open_or_create(self.settings)
        from .session import open_catalog

        return open_catalog(self.settings.db_url)


def _set_db(ctx, _param, value):
    if value:
        obj = ctx.ensure_object(AppContext)
        obj.db = value
        obj._settings = None
    return value


def _set_store(ctx, _param, value):
    if value:
        obj = ctx.ensure_object(AppContext)
        obj.store = value
        obj._settings = None
    return value


def catalog_options(f):
    """--db and --store on a command (they may also be given before the command name)."""
    f = click.option("--store", metavar="DIR", expose_value=False, callback=_set_store,
                     help="Image store folder [env FID_STORE].")(f)
    f = click.option("--db", metavar="URL", expose_value=False, callback=_set_db,
                     help="Catalog: SQLite path or SQLAlchemy URL [env FID_DB].")(f)
    return f


def app(ctx: click.Context | None = None) -> AppContext:
    ctx = ctx or click.get_current_context()
    return ctx.ensure_object(AppContext)


def echo_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=False, default=str, ensure_ascii=False))


def console():
    from rich.console import Console

    return Console(stderr=False, highlight=False, soft_wrap=True)


def err_console():
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def progress(transient: bool = False):
    """The rich progress bar every long job uses (quiet when stdout is not a terminal)."""
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        transient=transient,
        disable=not sys.stderr.isatty(),
        console=err_console(),
    )
