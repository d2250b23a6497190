"""fid.toml and the precedence rule: flag > environment variable > fid.toml > default."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .errors import ConfigError

CONFIG_NAME = "fid.toml"
DEFAULT_DATA_DIR = "fid-data"
DEFAULT_SOURCES = ["bing", "duckduckgo", "gbif", "idigbio", "wikimedia"]
ALL_SOURCES = ["bing", "duckduckgo", "google", "baidu", "gbif", "idigbio", "wikimedia"]
DEFAULT_LIMITS = {s: 200 for s in ALL_SOURCES}
DEFAULT_CONTACT = "fid-user@example.org"


@dataclass
class Settings:
    db_url: str
    store: Path
    project_dir: Path
    user_agent_contact: str = DEFAULT_CONTACT
    sources: list[str] = field(default_factory=lambda: list(DEFAULT_SOURCES))
    limits: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    taxonomy_file: Path | None = None
    raw: dict = field(default_factory=dict)

    @property
    def user_agent(self) -> str:
        from . import __version__

        return f"fid/{__version__} (+https://github.com/fid-project/fid; {self.user_agent_contact})"


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{Path(path).resolve()}"


def _resolve_db(value: str, base: Path) -> str:
    """A bare path becomes a SQLite URL; a relative sqlite path is relative to ``base``."""
    if "://" not in value:
        return sqlite_url(base / value)
    if value.startswith("sqlite:///") and not value.startswith("sqlite:////"):
        rel = value[len("sqlite:///"):]
        if rel and rel != ":memory:" and not Path(rel).is_absolute():
            return sqlite_url(base / rel)
    return value


def read_config(cwd: Path | None = None) -> tuple[dict, Path]:
    cwd = Path(cwd or Path.cwd())
    path = cwd / CONFIG_NAME
    if not path.exists():
        return {}, cwd
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh), cwd
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}; expected a TOML file as written by `fid init`") from None


def load_settings(db: str | None = None, store: str | None = None, cwd: Path | None = None) -> Settings:
    """Resolve settings with precedence flag > environment > fid.toml > default."""
    raw, base = read_config(cwd)
    cat = raw.get("catalog", {})
    crawl = raw.get("crawl", {})

    env_db = os.environ.get("FID_DB")
    env_store = os.environ.get("FID_STORE")
    cwd_path = Path(cwd or Path.cwd())
    if db:
        db_url = _resolve_db(db, cwd_path)
    elif env_db:
        db_url = _resolve_db(env_db, cwd_path)
    elif cat.get("url"):
        db_url = _resolve_db(cat["url"], base)
    else:
        db_url = sqlite_url(base / DEFAULT_DATA_DIR / "catalog.sqlite")

    if store:
        store_path = (cwd_path / store).resolve()
    elif env_store:
        store_path = (cwd_path / env_store).resolve()
    elif cat.get("store"):
        store_path = (base / cat["store"]).resolve()
    elif db_url.startswith("sqlite:///") and (db or env_db):
        # a catalog named on the command line keeps its images beside it
        store_path = Path(db_url[len("sqlite:///"):]).parent / "images"
    else:
        store_path = (base / DEFAULT_DATA_DIR / "images").resolve()

    limits = dict(DEFAULT_LIMITS)
    limits.update({k: int(v) for k, v in crawl.get("limits", {}).items()})
    tax = raw.get("taxonomy", {}).get("file")
    return Settings(
        db_url=db_url,
        store=store_path,
        project_dir=base,
        user_agent_contact=os.environ.get("FID_CONTACT") or crawl.get("contact") or DEFAULT_CONTACT,
        sources=list(crawl.get("sources", DEFAULT_SOURCES)),
        limits=limits,
        taxonomy_file=(base / tax) if tax else None,
        raw=raw,
    )


def init_project_text(contact: str = DEFAULT_CONTACT) -> str:
    """The fid.toml that `fid init` writes (paths are relative to the file's folder)."""
    limits = "\n".join(f"{s} = {DEFAULT_LIMITS[s]}" for s in ALL_SOURCES)
    sources = ", ".join(f'"{s}"' for s in DEFAULT_SOURCES)
    return f"""# fid project settings. Precedence: command-line flag > environment variable > this file > default.

[catalog]
# SQLite path (relative to this folder) or a SQLAlchemy URL, e.g. postgresql+psycopg://user@host/fid
url = "sqlite:///{DEFAULT_DATA_DIR}/catalog.sqlite"   # env: FID_DB, flag: --db
store = "{DEFAULT_DATA_DIR}/images"                    # env: FID_STORE, flag: --store

[taxonomy]
# Editable copy of the clade taxonomy; load changes with `fid clades load taxonomy.toml`.
file = "taxonomy.toml"

[crawl]
# Sent in the User-Agent so site owners can reach you (env: FID_CONTACT).
contact = "{contact}"
# Sources `fid crawl` uses when --engines is not given. google and baidu are opt-in.
sources = [{sources}]

[crawl.limits]
# Maximum results per keyword and source (--max-per-keyword overrides).
{limits}
"""
