"""Shared fixtures. The catalog fixture runs every test that uses it on SQLite and PostgreSQL.

PostgreSQL: FID_TEST_PG_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/test). Without a
server the PostgreSQL variants skip, naming FID_TEST_PG_URL; with CI set they fail instead.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from dataset_db.config import load_settings

PG_URL = os.environ.get("FID_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IN_CI = bool(os.environ.get("CI"))
REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FID_LISTS = SHARED / "data" / "fid-url-lists"


def _pg_admin_engine():
    from sqlalchemy import create_engine

    return create_engine(PG_URL, isolation_level="AUTOCOMMIT")


_pg_state: dict = {}


def _pg_template() -> str:
    """A migrated template database, created once per test session (clones are fast)."""
    if "template" in _pg_state:
        return _pg_state["template"]
    if "error" in _pg_state:
        _pg_unavailable(_pg_state["error"])
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    try:
        eng = _pg_admin_engine()
        with eng.connect() as c:
            name = f"fid_tmpl_{os.getpid()}"
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            c.execute(text(f'CREATE DATABASE "{name}"'))
        eng.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure to reach the server
        _pg_state["error"] = str(exc).splitlines()[0]
        _pg_unavailable(_pg_state["error"])
    from dataset_db.session import make_engine, upgrade

    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    e = make_engine(url)
    upgrade(e)
    e.dispose()
    _pg_state["template"] = name
    return name


def _pg_unavailable(reason: str):
    msg = f"PostgreSQL not reachable at FID_TEST_PG_URL={PG_URL} ({reason})"
    if IN_CI:
        pytest.fail(msg + "; CI requires it", pytrace=False)
    pytest.skip(msg + "; set FID_TEST_PG_URL to run these tests")


@pytest.fixture
def pg_url():
    """URL of a fresh, migrated PostgreSQL database, dropped afterwards."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    tmpl = _pg_template()
    name = f"fid_t_{uuid.uuid4().hex[:12]}"
    eng = _pg_admin_engine()
    with eng.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{tmpl}"'))
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    yield url
    with eng.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    eng.dispose()


def pytest_sessionfinish(session, exitstatus):
    if "template" in _pg_state:
        from sqlalchemy import text

        eng = _pg_admin_engine()
        with eng.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{_pg_state["template"]}" WITH (FORCE)'))
        eng.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A fresh catalog URL (not yet created for SQLite; migrated, empty for PostgreSQL)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def catalog(db_url, tmp_path):
    """An open catalog with the default taxonomy, on SQLite and on PostgreSQL."""
    from dataset_db.bootstrap import open_or_create

    settings = load_settings(db=db_url, store=str(tmp_path / "store"), cwd=tmp_path)
    cat = open_or_create(settings)
    cat.settings = settings
    yield cat
    cat.close()


@pytest.fixture
def fid_env(tmp_path, monkeypatch):
    """Run CLI commands in an empty project folder with no FID_* variables leaking in."""
    for var in ("FID_DB", "FID_STORE", "FID_CONTACT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def cli():
    """Invoke `fid` in-process; returns click's Result."""
    from click.testing import CliRunner

    from dataset_db.cli import main

    runner = CliRunner()

    def run(*args, **kw):
        return runner.invoke(main, [str(a) for a in args], catch_exceptions=False, **kw)

    return run


CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture
def browser():
    """Debian's Chromium driven by Playwright (never `playwright install`).

    Skips without /usr/bin/chromium; fails instead when CI is set (.ci/run installs it).
    """
    if not CHROMIUM.exists():
        if IN_CI:
            pytest.fail("CI needs /usr/bin/chromium (apt-get install chromium)", pytrace=False)
        pytest.skip("no /usr/bin/chromium (apt-get install chromium) and CI is not set")
    sync_api = pytest.importorskip("playwright.sync_api")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                              args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                    "--disable-component-update", "--disable-sync"])
        try:
            yield b
        finally:
            b.close()
