"""Opening a catalog: engines, SQLite pragmas, existence and schema-version checks, migrations."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import sessionmaker

from .errors import CatalogConnectError, NoCatalogError, SchemaOutdatedError, SchemaTooNewError

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
#: The newest migration. Opening an up-to-date catalog compares against this without importing
#: Alembic (a test checks it equals Alembic's head); bump it with every new migration.
SCHEMA_HEAD = "0002"
SQLITE_BUSY_TIMEOUT_MS = 30_000


def _sqlite_pragmas(dbapi_conn, _record):
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA synchronous=NORMAL")
    # a 64 MiB page cache and memory-mapped reads: catalogs of 400k images are ~0.5 GB
    cur.execute("PRAGMA cache_size=-65536")
    cur.execute("PRAGMA mmap_size=268435456")
    cur.close()


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def sqlite_path(url: str) -> Path | None:
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    return Path(u.database)


def make_engine(url: str) -> Engine:
    try:
        u = make_url(url)
    except ArgumentError:
        raise CatalogConnectError(
            f"cannot parse catalog URL {url!r}; expected a SQLite path or a URL such as "
            "postgresql+psycopg://user@host/db"
        ) from None
    kwargs: dict = {}
    if u.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    else:
        kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(u, **kwargs)
    except (ArgumentError, ImportError, SQLAlchemyError) as exc:
        raise CatalogConnectError(f"cannot use catalog URL {url!r}: {exc}") from None
    if u.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def alembic_config(engine: Engine | None = None, url: str | None = None):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if engine is not None:
        cfg.attributes["engine"] = engine
    return cfg


def code_heads() -> set[str]:
    from alembic.script import ScriptDirectory

    return set(ScriptDirectory.from_config(alembic_config()).get_heads())


def known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    return {rev.revision for rev in ScriptDirectory.from_config(alembic_config()).walk_revisions()}


def db_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
        return row[0] if row else None


def upgrade(engine: Engine, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(engine), revision)


class Catalog:
    """An open catalog: an engine plus a session factory."""

    def __init__(self, url: str, engine: Engine):
        self.url = url
        self.engine = engine
        self.Session = sessionmaker(engine, expire_on_commit=False)

    @contextmanager
    def session(self):
        """A session in one transaction: committed on success, rolled back on any error."""
        with self.Session() as s:
            with s.begin():
                yield s

    def close(self) -> None:
        self.engine.dispose()


def _connect_error(url: str, exc: Exception) -> CatalogConnectError:
    msg = str(getattr(exc, "orig", exc)).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return CatalogConnectError(f"cannot connect to catalog {make_url(url).render_as_string(hide_password=True)}: {msg}")


def open_catalog(url: str, create: bool = False, check_schema: bool = True) -> Catalog:
    """Open the catalog at ``url``.

    Only commands that may create a catalog pass ``create=True``; every other command gets
    :class:`NoCatalogError` for a catalog that does not exist, so a mistyped ``--db`` never
    silently creates an empty one.
    """
    path = sqlite_path(url)
    if path is not None and not path.exists():
        if not create:
            raise NoCatalogError(url)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CatalogConnectError(f"cannot create catalog folder {path.parent}: {exc.strerror}") from None
    engine = make_engine(url)
    try:
        rev = db_revision(engine)
    except (OperationalError, SQLAlchemyError) as exc:
        engine.dispose()
        raise _connect_error(url, exc) from None
    if rev is None:
        if not create:
            engine.dispose()
            raise NoCatalogError(url)
        upgrade(engine)
    elif check_schema:
        check_revision(rev, url)
    return Catalog(url, engine)


def check_revision(rev: str, url: str) -> None:
    if rev == SCHEMA_HEAD:
        return
    heads = code_heads()
    if rev in heads:
        return
    if rev not in known_revisions():
        raise SchemaTooNewError(
            f"catalog {url} has schema revision {rev!r}, newer than this fid knows "
            f"(latest: {', '.join(sorted(heads))}); upgrade fid"
        )
    raise SchemaOutdatedError(
        f"catalog {url} has schema revision {rev!r}, expected {', '.join(sorted(heads))}; run `fid db upgrade`"
    )
