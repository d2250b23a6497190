"""`fid import urls`: normalisation, input formats, counts, idempotence, bad input, the paper's lists.

Library tests run on SQLite and PostgreSQL through the ``catalog`` fixture.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from conftest import FID_LISTS
from dataset_db.errors import InputFileError, UnknownCladeError
from dataset_db.importer import import_urls, parse_fid_lists
from dataset_db.models import Run, Sighting, Url
from dataset_db.urlnorm import classify_url, normalise_url, url_key

DATA = Path(__file__).with_name("data")


# ---- normalisation ----------------------------------------------------------------------------

@pytest.mark.parametrize("raw, expected", [
    ("HTTP://Example.COM:80/a/B.jpg#frag", "http://example.com/a/B.jpg"),
    ("https://Example.com:443", "https://example.com/"),
    ("https://example.com:8443/x?b=2&a=1#top", "https://example.com:8443/x?b=2&a=1"),  # query order kept
    ("  https://example.com/x.jpg \r\n", "https://example.com/x.jpg"),
    ("http://example.com?id=1", "http://example.com/?id=1"),
    ("https://example.com/a%2fb/%7e?q=%41", "https://example.com/a%2fb/%7e?q=%41"),  # escapes kept as given
    ("https://example.com/with space.jpg", "https://example.com/with%20space.jpg"),
    ("https://bücher.example/é.jpg?q=ü", "https://xn--bcher-kva.example/%C3%A9.jpg?q=%C3%BC"),
    ("http://[2001:DB8::1]:80/x", "http://[2001:db8::1]/x"),
    ("http://user:Secret@Host.example.org:8080/p", "http://user:Secret@host.example.org:8080/p"),
    ("file:///srv/plates/Plate%201.tif", "file:///srv/plates/Plate%201.tif"),
    ("https://i.ebayimg.com/00/s/NTAwWDUwMA==/z/x/$_57.JPG", "https://i.ebayimg.com/00/s/NTAwWDUwMA==/z/x/$_57.JPG"),
])
def test_normalise_url(raw, expected):
    assert normalise_url(raw) == expected
    assert normalise_url(expected) == expected  # idempotent


@pytest.mark.parametrize("raw, reason", [
    ("", "blank"),
    ("   \t", "blank"),
    ("Trilobite fossil", "not_url"),
    ("//misc.360buyimg.com/x.gif", "not_url"),
    ("images/ammonite.jpg", "not_url"),
    ("ftp://files.example.org/a.jpg", "unsupported_scheme"),
    ("data:image/png;base64,iVBORw0KGgo=", "unsupported_scheme"),
    ("javascript:void(0)", "unsupported_scheme"),
    ("http://", "bad_url"),
    ("https://exa mple.com/", "bad_url"),
    ("http://example.com:99999/", "bad_url"),
    ("http://a..b/", "bad_url"),
])
def test_not_urls_have_reasons(raw, reason):
    assert classify_url(raw) == (None, reason)
    assert normalise_url(raw) is None


def test_url_key_is_sha1_of_normalised_url():
    url = normalise_url("HTTPS://Example.com:443/a.jpg#x")
    assert url_key(url) == hashlib.sha1(b"https://example.com/a.jpg").hexdigest()
    assert len(url_key(url)) == 40


# ---- helpers ----------------------------------------------------------------------------------

def counts(cat) -> dict:
    with cat.session() as s:
        return {"urls": s.scalar(select(func.count()).select_from(Url)),
                "sightings": s.scalar(select(func.count()).select_from(Sighting)),
                "runs": s.scalar(select(func.count()).select_from(Run))}


def sightings(cat) -> list[Sighting]:
    with cat.session() as s:
        return list(s.scalars(select(Sighting).order_by(Sighting.id)))


def url_of(cat, url_id: int) -> str:
    with cat.session() as s:
        return s.get(Url, url_id).url


# ---- formats and counts -----------------------------------------------------------------------

def test_plain_list_counts_and_rows(catalog):
    res = import_urls(catalog, [DATA / "urls_plain.txt"], clade="trilobite", source="eBay", keyword="trilobite")
    assert res["lines_read"] == len((DATA / "urls_plain.txt").read_bytes().splitlines())
    assert res["rejected"] == {"blank": 2, "not_url": 2, "unsupported_scheme": 1}
    assert res["urls_added"] == 4  # 1.jpg, 2.jpg (twice more, other spellings), b.png, x y.jpg
    assert res["already_known"] == 2
    assert res["sightings_added"] == 4
    assert res["lines_read"] == res["urls_added"] + res["already_known"] + res["rejected_total"]
    with catalog.session() as s:
        urls = {u.url: u for u in s.scalars(select(Url))}
        run = s.get(Run, res["run_id"])
    assert set(urls) == {"https://images.example.org/trilobite/1.jpg", "https://images.example.org/trilobite/2.jpg",
                         "http://museum.example.net/a/b.png?size=large&id=7", "https://cdn.example.com/x%20y.jpg"}
    assert all(u.status == "pending" and u.url_hash == url_key(u.url) for u in urls.values())
    sg = sightings(catalog)
    assert {(s.source, s.keyword, s.clade, s.run_id) for s in sg} == {("ebay", "trilobite", "Trilobite", res["run_id"])}
    assert run.kind == "import_urls" and run.status == "done" and run.clade == "Trilobite"
    assert run.counts["urls_added"] == 4 and run.counts["rejected"]["blank"] == 2
    assert res["rejected_examples"][0]["file"].endswith("urls_plain.txt")


def test_reimport_adds_nothing(catalog):
    first = import_urls(catalog, [DATA / "urls_plain.txt", DATA / "urls_titles_crlf.txt"], clade="Trilobite")
    before = counts(catalog)
    again = import_urls(catalog, [DATA / "urls_titles_crlf.txt", DATA / "urls_plain.txt"], clade="Trilobite")
    assert again["urls_added"] == 0 and again["sightings_added"] == 0
    assert again["already_known"] == first["urls_added"] + first["already_known"]
    after = counts(catalog)
    assert after["urls"] == before["urls"] and after["sightings"] == before["sightings"]
    assert after["runs"] == before["runs"] + 1


def test_small_batches_give_the_same_result(catalog):
    """Duplicates that fall in different transactions are still counted once."""
    res = import_urls(catalog, [DATA / "urls_plain.txt"], clade="Trilobite", batch_size=2)
    assert (res["urls_added"], res["already_known"], res["sightings_added"]) == (4, 2, 4)
    assert counts(catalog)["urls"] == 4


def test_same_url_under_two_clades_keeps_two_sightings(catalog):
    a = import_urls(catalog, [DATA / "urls_latin1.txt"], clade="Ammonoid", source="museum")
    b = import_urls(catalog, [DATA / "urls_latin1.txt"], clade="Nautiloid", source="museum")
    assert a["urls_added"] == 2 and b["urls_added"] == 0 and b["already_known"] == 2
    assert b["sightings_added"] == 2
    by_url: dict[int, set] = {}
    for s in sightings(catalog):
        by_url.setdefault(s.url_id, set()).add(s.clade)
    assert list(by_url.values()) == [{"Ammonoid", "Nautiloid"}] * 2


def test_title_lines_and_crlf(catalog):
    res = import_urls(catalog, [DATA / "urls_titles_crlf.txt"], clade="Ammonoid")
    assert res["lines_read"] == 6
    assert res["rejected"] == {"blank": 1, "not_url": 1}
    titles = {url_of(catalog, s.url_id): s.title for s in sightings(catalog)}
    assert titles == {
        "https://img.example.com/am/1.jpg": "Ammonite Shell Jurassic Fossil",
        "https://img.example.com/am/2.jpg?w=640": '11.2" Ammonite Disk',
        "https://img.example.com/00/s/NTAwWDUwMA==/z/3.jpg": "",
        "https://img.example.com/am/4.jpg": "Split Ammonite",
    }
    assert not any("\r" in u for u in titles)


def test_latin1_file(catalog):
    res = import_urls(catalog, [DATA / "urls_latin1.txt"], clade="Ammonoid")
    assert res["encodings"] == {str(DATA / "urls_latin1.txt"): "utf-8+latin-1"}
    with catalog.session() as s:
        urls = set(s.scalars(select(Url.url)))
    assert "https://fossiles.example.fr/images/ammonite-d%C3%A9roul%C3%A9e.jpg" in urls


def test_csv_columns(catalog):
    res = import_urls(catalog, [DATA / "urls.csv"], clade="Bivalve", source="museum")
    assert res["lines_read"] == 5
    assert res["rejected"] == {"missing_url": 1, "not_url": 1}
    got = {url_of(catalog, s.url_id): s for s in sightings(catalog)}
    one = got["https://coll.example.edu/img/1.jpg"]
    assert (one.title, one.page_url, one.license, one.rights_holder, one.clade, one.keyword) == (
        "Paradoxides, a big one", "https://coll.example.edu/specimen/1", "CC-BY-4.0", "Example Museum",
        "Trilobite", "paradoxides")
    two = got["https://coll.example.edu/img/2.jpg"]
    assert (two.clade, two.license, two.keyword) == ("Ammonoid", "CC0-1.0", "")
    three = got["https://coll.example.edu/img/3.jpg"]
    assert (three.clade, three.license) == ("Bivalve", "unknown")  # --clade fills an empty cell


def test_jsonl_records(catalog):
    res = import_urls(catalog, [DATA / "urls.jsonl"], clade="Coral", source="api")
    assert res["lines_read"] == 6
    assert res["rejected"] == {"bad_record": 2, "blank": 1, "unsupported_scheme": 1}
    got = {url_of(catalog, s.url_id): s for s in sightings(catalog)}
    assert got["https://api.example.org/media/1.jpg"].clade == "Crinoid"
    assert got["https://api.example.org/media/1.jpg"].license == "CC-BY-4.0"
    assert got["https://api.example.org/media/2.jpg"].clade == "Coral"
    assert got["https://api.example.org/media/2.jpg"].page_url == "https://api.example.org/occ/2"


# ---- bad input: one line, catalog unchanged -----------------------------------------------------

def _one_line(exc) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_unknown_clade_changes_nothing(catalog):
    import_urls(catalog, [DATA / "urls_latin1.txt"], clade="Ammonoid")
    before = counts(catalog)
    with pytest.raises(UnknownCladeError) as exc:
        import_urls(catalog, [DATA / "urls_plain.txt"], clade="Trilobita")
    assert "unknown clade 'Trilobita'; did you mean 'Trilobite'? choose from: " in _one_line(exc)
    assert counts(catalog) == before


def test_unknown_clade_in_a_csv_cell_changes_nothing(catalog, tmp_path):
    bad = tmp_path / "cells.csv"
    bad.write_text("url,clade\nhttps://a.example.org/1.jpg,Trilobite\nhttps://a.example.org/2.jpg,Dragon\n")
    before = counts(catalog)
    with pytest.raises(UnknownCladeError) as exc:
        import_urls(catalog, [DATA / "urls_plain.txt", bad], clade="Trilobite")
    assert "'Dragon'" in _one_line(exc)
    assert counts(catalog) == before


def test_malformed_csv_changes_nothing(catalog, tmp_path):
    before = counts(catalog)
    with pytest.raises(InputFileError) as exc:
        import_urls(catalog, [DATA / "urls_plain.txt", DATA / "bad_no_url_column.csv"], clade="Trilobite")
    msg = _one_line(exc)
    assert "bad_no_url_column.csv" in msg and "no url column" in msg and "'link', 'title'" in msg
    broken = tmp_path / "quote.csv"
    broken.write_text('url,title\nhttps://a.example.org/1.jpg,"unterminated\n')
    with pytest.raises(InputFileError) as exc:
        import_urls(catalog, [broken], clade="Trilobite")
    assert "malformed CSV" in _one_line(exc)
    assert counts(catalog) == before


def test_unreadable_file_changes_nothing(catalog, tmp_path):
    before = counts(catalog)
    with pytest.raises(InputFileError) as exc:
        import_urls(catalog, [DATA / "urls_plain.txt", tmp_path / "missing.txt"], clade="Trilobite")
    assert _one_line(exc).startswith(f"cannot read {tmp_path / 'missing.txt'}: ")
    with pytest.raises(InputFileError) as exc:
        import_urls(catalog, [tmp_path], clade="Trilobite")
    assert "is a folder" in _one_line(exc)
    binary = tmp_path / "image.txt"
    binary.write_bytes(b"https://a.example.org/1.jpg\n\x89PNG\x00\x00\x01")
    with pytest.raises(InputFileError) as exc:
        import_urls(catalog, [binary], clade="Trilobite")
    assert "binary file" in _one_line(exc)
    assert counts(catalog) == before


def test_plain_list_needs_a_clade(catalog):
    with pytest.raises(InputFileError) as exc:
        import_urls(catalog, [DATA / "urls_plain.txt"])
    assert "--clade" in _one_line(exc)


# ---- the paper's folder -------------------------------------------------------------------------

def _fake_fid_lists(tmp_path: Path) -> Path:
    root = tmp_path / "fid-url-lists" / "URLs"
    (root / "eBay").mkdir(parents=True)
    (root / "Bing").mkdir()
    shutil.copy(DATA / "urls_plain.txt", root / "eBay" / "ebaysource_url_trilobite.txt")
    shutil.copy(DATA / "urls_latin1.txt", root / "Bing" / "echinoderm_source_url.txt")
    (root / "Bing" / "gbk_source_url.txt").write_bytes("https://img.example.cn/恐龙化石.jpg\n".encode("gb18030"))
    (root / "Bing" / "stray.txt").write_text("https://stray.example.org/1.jpg\n")
    (root / "readme.md").write_text("not a list\n")
    return root.parent


def test_from_fid_lists_map(catalog, tmp_path):
    folder = _fake_fid_lists(tmp_path)
    mapping = {
        "eBay/ebaysource_url_trilobite.txt": {"clade": "Trilobite", "source": "ebay", "keyword": "trilobite"},
        "Bing/echinoderm_source_url.txt": {"clade": "unassigned", "source": "bing", "keyword": "echinoderm"},
        "Bing/gbk_source_url.txt": {"clade": "Theropod", "source": "bing", "keyword": "dinosaur"},
        "Google/absent.txt": {"clade": "Insect", "source": "google", "keyword": "insect"},
    }
    res = import_urls(catalog, from_fid_lists=folder, mapping=mapping)
    assert res["unmapped"] == ["Bing/stray.txt"]  # readme.md is in the map's ignore list
    assert res["missing"] == ["Google/absent.txt"]
    assert res["files"] == 3
    got = {(s.clade, s.source, s.keyword) for s in sightings(catalog)}
    assert got == {("Trilobite", "ebay", "trilobite"), ("unassigned", "bing", "echinoderm"),
                   ("Theropod", "bing", "dinosaur")}
    with catalog.session() as s:
        urls = set(s.scalars(select(Url.url)))
    assert "https://img.example.cn/%E6%81%90%E9%BE%99%E5%8C%96%E7%9F%B3.jpg" in urls  # GB18030 decoded
    assert "https://stray.example.org/1.jpg" not in urls
    again = import_urls(catalog, from_fid_lists=folder, mapping=mapping)
    assert again["urls_added"] == 0 and again["sightings_added"] == 0


def test_from_fid_lists_uses_the_shipped_map(tmp_path):
    """With no mapping given, the shipped map decides (files not in it are reported, not parsed)."""
    from dataset_db.taxonomy import load_fid_lists_map

    mapping = load_fid_lists_map()
    rel = next(k for k, v in sorted(mapping.items()) if v["clade"] == "unassigned")
    root = tmp_path / "URLs"
    (root / rel).parent.mkdir(parents=True)
    (root / rel).write_text("https://a.example.org/1.jpg\n\nnot a url\n")
    (root / "Extra").mkdir()
    (root / "Extra" / "new_list.txt").write_text("https://b.example.org/2.jpg\n")
    parsed = parse_fid_lists(tmp_path)
    assert [pf.spec.display for pf in parsed.files] == [rel]
    assert parsed.files[0].spec.clade == "unassigned"
    assert parsed.files[0].spec.source == mapping[rel]["source"]
    assert parsed.unmapped == ["Extra/new_list.txt"]
    assert rel not in parsed.missing and len(parsed.missing) == len(mapping) - 1


REAL_SAMPLE = [
    "Amazon/gastropod_amazon_source.txt",    # one line, no trailing newline
    "Amazon/footprint_amazon_source.txt",    # title==url lines
    "Bing/horseshoe_crab_source_url.txt",    # a GB18030 line among UTF-8 ones
    "others/brachiopod_jingdong.txt",        # blank lines
]


@pytest.mark.skipif(not FID_LISTS.is_dir(), reason=f"the paper's URL lists are not at {FID_LISTS}")
def test_real_sample_counts(catalog):
    files = [FID_LISTS / "URLs" / rel for rel in REAL_SAMPLE]
    res = import_urls(catalog, files, clade="Trilobite", source="sample", fallback_encodings=("gb18030", "latin-1"))
    lines = [b for f in files for b in f.read_bytes().splitlines()]
    assert res["lines_read"] == len(lines)
    assert res["rejected"].get("blank", 0) == sum(1 for b in lines if not b.strip())
    plausible = sum(1 for b in lines if b"http://" in b or b"https://" in b)
    assert res["lines_read"] - res["rejected_total"] == plausible  # every line that holds a URL was taken
    c = counts(catalog)
    assert res["urls_added"] == c["urls"] == res["sightings_added"] == c["sightings"]
    assert res["urls_added"] + res["already_known"] == plausible
    assert list(res["encodings"].values()) == ["utf-8+gb18030"]


# ---- CLI --------------------------------------------------------------------------------------

def test_cli_summary_table(cli, fid_env):
    res = cli("import", "urls", DATA / "urls_plain.txt", DATA / "urls_titles_crlf.txt", "--clade", "Trilobite",
              "--source", "ebay", "--keyword", "trilobite fossil")
    assert res.exit_code == 0, res.output
    rows = {}
    for line in res.output.splitlines():
        cells = [c.strip() for c in line.strip("│┃ ").split("│")]
        if len(cells) == 2 and cells[1].replace(",", "").isdigit():
            rows[cells[0]] = int(cells[1].replace(",", ""))
    assert rows["lines read"] == 11 + 6
    assert rows["URLs added"] == 4 + 4
    assert rows["already known"] == 2
    assert rows["sightings added"] == 8
    assert rows["rejected"] == 5 + 2
    assert rows["blank"] == 3 and rows["not_url"] == 3 and rows["unsupported_scheme"] == 1
    assert "rejected not_url:" in res.output
    assert (fid_env / "fid-data" / "catalog.sqlite").exists()
    again = cli("import", "urls", DATA / "urls_plain.txt", "--clade", "Trilobite", "--source", "ebay",
                "--keyword", "trilobite fossil", "--json")
    data = json.loads(again.output)
    assert (data["urls_added"], data["sightings_added"], data["already_known"]) == (0, 0, 6)
    status = json.loads(cli("status", "--json").output)
    assert status["totals"]["urls"] == 8 and status["totals"]["pending"] == 8


def test_cli_bad_input_is_one_line(cli, fid_env):
    res = cli("import", "urls", DATA / "bad_no_url_column.csv", "--clade", "Trilobite")
    assert res.exit_code == 1
    assert res.output.startswith("Error: malformed CSV ") and res.output.count("\n") == 1
    assert not (fid_env / "fid-data").exists()  # a bad file does not even create the catalog
    res = cli("import", "urls", DATA / "urls_plain.txt", "--clade", "Dragon")
    assert res.exit_code == 1
    assert res.output.startswith("Error: unknown clade 'Dragon'; choose from: ") and res.output.count("\n") == 1
    status = json.loads(cli("status", "--json").output)
    assert status["totals"]["urls"] == 0
    res = cli("import", "urls")
    assert res.exit_code == 2 and "--from-fid-lists" in res.output
