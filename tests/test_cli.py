"""The `fid` command: init, configuration precedence, lazy imports, docs coverage."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import click

from dataset_db.config import load_settings

REPO = Path(__file__).resolve().parents[1]


def test_init_writes_project(cli, fid_env):
    res = cli("init", "proj", "--contact", "curator@museum.example")
    assert res.exit_code == 0, res.output
    proj = fid_env / "proj"
    assert (proj / "fid.toml").exists() and (proj / "taxonomy.toml").exists()
    assert (proj / "fid-data" / "catalog.sqlite").exists()
    assert 'contact = "curator@museum.example"' in (proj / "fid.toml").read_text()
    assert "50 clades" in res.output
    again = cli("init", "proj")
    assert again.exit_code == 1
    assert again.output.strip() == f"Error: {proj / 'fid.toml'} already exists; use --force to overwrite it"


def test_settings_precedence(fid_env, monkeypatch):
    (fid_env / "fid.toml").write_text('[catalog]\nurl = "sqlite:///from-toml.sqlite"\nstore = "toml-store"\n')
    s = load_settings()
    assert s.db_url == f"sqlite:///{fid_env / 'from-toml.sqlite'}"
    assert s.store == fid_env / "toml-store"
    monkeypatch.setenv("FID_DB", "from-env.sqlite")
    monkeypatch.setenv("FID_STORE", "env-store")
    s = load_settings()
    assert s.db_url == f"sqlite:///{fid_env / 'from-env.sqlite'}"
    assert s.store == fid_env / "env-store"
    s = load_settings(db="postgresql+psycopg://u@h/db", store="flag-store")
    assert s.db_url == "postgresql+psycopg://u@h/db"
    assert s.store == fid_env / "flag-store"


def test_default_locations(fid_env):
    s = load_settings()
    assert s.db_url == f"sqlite:///{fid_env / 'fid-data' / 'catalog.sqlite'}"
    assert s.store == fid_env / "fid-data" / "images"


def test_commands_read_fid_toml(cli, fid_env):
    assert cli("init", ".").exit_code == 0
    res = cli("status", "--json")
    assert res.exit_code == 0, res.output
    assert '"totals"' in res.output


def test_bad_fid_toml_is_one_line(cli, fid_env):
    (fid_env / "fid.toml").write_text("[catalog\nurl=")
    res = cli("status")
    assert res.exit_code == 1
    assert res.output.startswith(f"Error: cannot read {fid_env / 'fid.toml'}:")
    assert res.output.count("\n") == 1


def test_unparseable_db_url(cli, fid_env):
    res = cli("status", "--db", "nosuchdialect://x")
    assert res.exit_code == 1
    assert res.output.startswith("Error: cannot use catalog URL 'nosuchdialect://x'")


def test_status_starts_without_scrapy_or_tensorflow(fid_env):
    code = ("import sys; from dataset_db.cli import main\n"
            "try:\n    main(['status', '--help'])\nexcept SystemExit:\n    pass\n"
            "bad = [m for m in ('scrapy', 'tensorflow', 'keras', 'twisted') if m in sys.modules]\n"
            "print('LOADED', bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "LOADED []" in out


def _all_commands(group: click.Group, prefix=()):
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        path = prefix + (name,)
        yield " ".join(path)
        if isinstance(cmd, click.Group):
            yield from _all_commands(cmd, path)


def test_every_command_is_documented():
    """sqlite-utils style: a command missing from README.md fails the suite."""
    from dataset_db.cli import main

    readme = (REPO / "README.md").read_text()
    missing = [c for c in _all_commands(main) if f"fid {c}" not in readme]
    assert not missing, f"commands missing from README.md: {missing}"
