"""Creating a catalog and a project folder (the only place a new catalog gets its taxonomy)."""

from __future__ import annotations

import shutil
from pathlib import Path

from .config import CONFIG_NAME, Settings, init_project_text, load_settings
from .errors import FidError
from .session import Catalog, open_catalog


def open_or_create(settings: Settings) -> Catalog:
    """Open the catalog, creating it (schema + taxonomy) when it does not exist yet.

    Used by `init`, `import` and `crawl` only: every other command must not create catalogs.
    """
    from .taxonomy import apply_taxonomy, load_taxonomy

    cat = open_catalog(settings.db_url, create=True)
    with cat.session() as s:
        from sqlalchemy import func, select

        from .models import Clade

        if s.scalar(select(func.count()).select_from(Clade)) == 0:
            apply_taxonomy(s, load_taxonomy(settings.taxonomy_file))
    return cat


def init_project(directory: Path, contact: str | None = None, force: bool = False) -> dict:
    from .taxonomy import DEFAULT_TAXONOMY, load_taxonomy

    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    cfg = directory / CONFIG_NAME
    tax = directory / "taxonomy.toml"
    written = []
    for path in (cfg, tax):
        if path.exists() and not force:
            raise FidError(f"{path} already exists; use --force to overwrite it")
    cfg.write_text(init_project_text(contact) if contact else init_project_text(), encoding="utf-8")
    written.append(str(cfg))
    shutil.copyfile(DEFAULT_TAXONOMY, tax)
    written.append(str(tax))
    settings = load_settings(cwd=directory)
    cat = open_or_create(settings)
    taxonomy = load_taxonomy(settings.taxonomy_file)
    cat.close()
    return {"written": written, "db_url": settings.db_url, "clades": len(taxonomy.clades),
            "taxonomy_version": taxonomy.version}
