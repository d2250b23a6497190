"""The catalog itself: migrations, connection checks, hash storage, status vocabulary and summary.

Every test taking `catalog` or `db_url` runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select, text

from dataset_db import status as st
from dataset_db.errors import CatalogConnectError, NoCatalogError, SchemaOutdatedError, SchemaTooNewError
from dataset_db.models import (Decision, DupGroup, GroupMember, Image, ReviewState, Sighting, Url,
                               from_signed64, to_signed64)
from dataset_db.repo import status_summary
from dataset_db.session import code_heads, db_revision, downgrade, make_engine, open_catalog, upgrade

BIG = (1 << 64) - 1  # all bits set: signed -1
HIGH = 1 << 63       # the first value that overflows a signed INTEGER


def test_signed64_roundtrip():
    for v in (0, 1, HIGH - 1, HIGH, BIG, 0xDEADBEEFCAFEBABE):
        s = to_signed64(v)
        assert -(1 << 63) <= s < (1 << 63)
        assert from_signed64(s) == v
    with pytest.raises(ValueError):
        to_signed64(1 << 64)
    with pytest.raises(ValueError):
        to_signed64(-1)


def _image(sha: str, phash=None, dhash=None, w=100, h=80) -> Image:
    return Image(sha256=sha, width=w, height=h, store_path=f"{sha[:2]}/{sha}.jpg", orig_sha256=sha,
                 orig_width=w, orig_height=h, orig_format="JPEG", orig_size=1000, phash=phash,
                 dhash=dhash, hash_version=1)


def test_hashes_at_and_above_2_63_roundtrip(catalog):
    with catalog.session() as s:
        s.add_all([_image("a" * 64, HIGH, BIG), _image("b" * 64, HIGH - 1, 0)])
    with catalog.session() as s:
        got = {i.sha256[0]: (i.phash, i.dhash) for i in s.scalars(select(Image))}
        raw = dict(s.execute(text("SELECT substr(sha256, 1, 1), phash FROM images")).all())
    assert got == {"a": (HIGH, BIG), "b": (HIGH - 1, 0)}
    assert raw["a"] == -(1 << 63)  # stored signed, on both backends


def test_migrations_upgrade_and_downgrade(db_url):
    cat = open_catalog(db_url, create=True)
    assert db_revision(cat.engine) in code_heads()
    downgrade(cat.engine, "base")
    with cat.engine.connect() as c:
        from sqlalchemy import inspect

        tables = set(inspect(c).get_table_names()) - {"alembic_version"}
    assert tables == set()
    upgrade(cat.engine)
    assert db_revision(cat.engine) in code_heads()
    cat.close()


def test_sqlite_pragmas(tmp_path):
    cat = open_catalog(f"sqlite:///{tmp_path / 'c.sqlite'}", create=True)
    with cat.engine.connect() as c:
        assert c.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert c.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert c.execute(text("PRAGMA busy_timeout")).scalar() >= 1000


def test_missing_catalog_is_not_created(tmp_path):
    path = tmp_path / "typo.sqlite"
    with pytest.raises(NoCatalogError, match="no catalog at sqlite:///"):
        open_catalog(f"sqlite:///{path}")
    assert not path.exists()


def test_empty_postgres_database_is_no_catalog(pg_url):
    eng = make_engine(pg_url)
    downgrade(eng, "base")
    with eng.begin() as c:
        c.execute(text("DROP TABLE alembic_version"))
    with pytest.raises(NoCatalogError):
        open_catalog(pg_url)


def test_unreachable_database_is_one_line():
    with pytest.raises(CatalogConnectError) as exc:
        open_catalog("postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert "\n" not in str(exc.value) and "cannot connect to catalog" in str(exc.value)


def test_schema_newer_than_code(db_url):
    cat = open_catalog(db_url, create=True)
    with cat.engine.begin() as c:
        c.execute(text("UPDATE alembic_version SET version_num = 'ffff_from_the_future'"))
    with pytest.raises(SchemaTooNewError, match="newer than this fid knows"):
        open_catalog(db_url)


def test_schema_older_than_code(db_url):
    cat = open_catalog(db_url, create=True)
    with cat.engine.begin() as c:
        c.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": "0001"})  # one behind
    heads = code_heads()
    if heads == {"0001"}:
        pytest.skip("only one revision so far: nothing older to detect")
    with pytest.raises(SchemaOutdatedError, match="fid db upgrade"):
        open_catalog(db_url)


def test_status_vocabulary():
    assert st.bucket("pending") == st.PENDING
    assert st.bucket("stored") == st.bucket("duplicate") == st.DOWNLOADED
    assert st.lookup("http_503").retryable and not st.lookup("http_404").retryable
    assert st.is_retryable("timeout", 0) and not st.is_retryable("timeout", 99)
    assert not st.is_retryable("not_image", 0)
    for name in ("not_image", "too_small", "too_large", "robots_denied", "dns_error", "timeout"):
        assert st.bucket(name) == st.FAILED
    with pytest.raises(ValueError, match="unknown URL status 'bogus'; choose from: pending"):
        st.lookup("bogus")


def _url(s, url, status="pending", image_id=None, clades=("Trilobite",)):
    import hashlib

    u = Url(url_hash=hashlib.sha1(url.encode()).hexdigest(), url=url, status=status, image_id=image_id)
    s.add(u)
    s.flush()
    for clade in clades:
        key = hashlib.sha1(f"{url}|{clade}".encode()).hexdigest()
        s.add(Sighting(sighting_key=key, url_id=u.id, source="test", clade=clade))
    return u


def test_status_summary_counts(catalog):
    with catalog.session() as s:
        a, b, c = _image("a" * 64), _image("b" * 64), _image("c" * 64)
        s.add_all([a, b, c])
        s.flush()
        _url(s, "http://x/1")                                         # pending
        _url(s, "http://x/2", "stored", a.id)
        _url(s, "http://x/3", "duplicate", a.id)                      # same bytes as /2
        _url(s, "http://x/4", "http_404")
        _url(s, "http://x/5", "stored", b.id, clades=("Trilobite", "Ammonoid"))  # label conflict
        _url(s, "http://x/6", "stored", c.id)
        g = DupGroup(representative_id=a.id, method="phash", threshold=8, hash_version=1, size=2)
        s.add(g)
        s.flush()
        s.add_all([GroupMember(image_id=a.id, group_id=g.id), GroupMember(image_id=c.id, group_id=g.id, distance=3)])
        d = Decision(image_id=a.id, reviewer="ana", decision="accept")
        s.add(d)
        s.flush()
        s.add(ReviewState(image_id=a.id, status="accepted", reviewer="ana", last_decision_id=d.id))
        d2 = Decision(image_id=b.id, reviewer="ana", decision="reject", reason="not_fossil")
        s.add(d2)
        s.flush()
        s.add(ReviewState(image_id=b.id, status="rejected", reviewer="ana", last_decision_id=d2.id))
    with catalog.session() as s:
        summary = status_summary(s)
    assert summary["totals"] == {"urls": 6, "pending": 1, "downloaded": 4, "failed": 1, "images": 3,
                                 "duplicates": 1, "reviewed": 2, "accepted": 1}
    by = {r["clade"]: r for r in summary["clades"]}
    assert by["Trilobite"] == {"clade": "Trilobite", "urls": 6, "pending": 1, "downloaded": 4, "failed": 1,
                               "images": 3, "duplicates": 1, "reviewed": 2, "accepted": 1}
    assert by["Ammonoid"] == {"clade": "Ammonoid", "urls": 1, "pending": 0, "downloaded": 1, "failed": 0,
                              "images": 1, "duplicates": 0, "reviewed": 1, "accepted": 0}
    assert list(summary["totals"]) == [k for k in by["Ammonoid"] if k != "clade"]
    assert len(summary["clades"]) == 50


def test_status_json_cli(cli, fid_env, catalog):
    res = cli("status", "--json", "--db", catalog.url)
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert set(data) == {"totals", "clades"}
    assert data["totals"]["urls"] == 0
    assert data["clades"][0]["clade"] == "Agnatha"


def test_status_without_catalog_fails(cli, fid_env):
    res = cli("status", "--db", str(fid_env / "nope.sqlite"))
    assert res.exit_code == 1
    assert res.output.strip() == f"Error: no catalog at sqlite:///{fid_env / 'nope.sqlite'}"
    assert not (fid_env / "nope.sqlite").exists()


def test_schema_head_constant_matches_alembic():
    from dataset_db.session import SCHEMA_HEAD

    assert code_heads() == {SCHEMA_HEAD}
