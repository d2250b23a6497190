"""The clade taxonomy (checked against the paper), loading/applying it, and the URL-list mapping."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
from sqlalchemy import func, select

from dataset_db.errors import TaxonomyError
from dataset_db.models import (Clade, CladeRename, Decision, Image, ReviewState, Sighting, TaxonomyVersion,
                               Url)
from dataset_db.taxonomy import (DEFAULT_TAXONOMY, SUPERCLADES, UNASSIGNED, apply_taxonomy, catalog_clades,
                                 check_fid_lists, current_clade_name, fid_lists_ignored, load_fid_lists_map,
                                 load_taxonomy)

from conftest import FID_LISTS, SHARED

PAPER = SHARED / "reference" / "000_a4ce1db369553dff.txt"


def _paper_text() -> str:
    if not PAPER.exists():
        pytest.skip(f"the paper's text is not at {PAPER}")
    return PAPER.read_text(encoding="utf-8")


def _norm(name: str) -> str:
    """'Spores or pollen' ~ 'Spore or pollen', 'ammonoids' ~ 'Ammonoid'."""
    return " ".join(w[:-1] if w.endswith("s") else w for w in name.lower().split())


# ---- the shipped taxonomy against the paper -----------------------------------------------------

def test_orders_and_names_match_table_1():
    lines = _paper_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Order\tClade\tTraining set"))
    table = []
    for line in lines[start + 1:]:
        if line.startswith("TABLE 1"):
            break
        m = re.match(r"^(\d+)\t([A-Z][A-Za-z ]+?)\t[\d,]+\t[\d,]+\t[\d,]+\t[\d,]+$", line)
        if m and m.group(2) != "Total":
            table.append((int(m.group(1)), m.group(2)))
    assert len(table) == 50
    tax = load_taxonomy()
    assert tax.version
    assert [(c.order, c.name) for c in tax.clades] == table


def test_superclades_match_the_paper_text():
    kept = [line for line in _paper_text().splitlines() if line.strip() and not line.startswith(("FIGURE", "TABLE"))]
    text = " ".join(kept)
    m = re.search(r"five superclades: (.*?trace fossils)\.", text)
    assert m, "the paper's superclade sentence was not found"
    paper: dict[str, str] = {}
    for sup, items in re.findall(r"\(\d\) ([a-z ]+): (.*?)(?=;\s*(?:and\s+)?\(\d\)|$)", m.group(1)):
        for item in re.split(r",\s*(?:and\s+)?", items):
            paper[_norm(item)] = sup
    assert m.group(1).endswith("(5) trace fossils")       # the fifth superclade is one clade
    paper[_norm("trace fossils")] = "trace fossils"
    tax = load_taxonomy()
    assert set(paper) == {_norm(c.name) for c in tax.clades}
    assert {c.name: c.superclade for c in tax.clades} == {c.name: paper[_norm(c.name)] for c in tax.clades}
    assert set(SUPERCLADES) == set(paper.values())


def test_default_keywords_and_negatives():
    tax = load_taxonomy()
    for c in tax.clades:
        assert c.keywords.get("en"), c.name
        assert c.keywords.get("zh") and all(re.search(r"[\u4e00-\u9fff]", w) for w in c.keywords["zh"]), c.name
        for word in ("replica", "jewelry", "toy"):
            assert word in c.negative_keywords, (c.name, word)
    by = {c.name: c for c in tax.clades}
    assert "cast" in by["Trilobite"].negative_keywords
    assert "cast" not in by["Trace fossil"].negative_keywords      # natural casts of footprints are real
    assert by["Trilobite"].taxon == "Trilobita" and by["Ammonoid"].taxon == "Ammonoidea"
    assert by["Bone fragment"].taxon == ""


# ---- validation ---------------------------------------------------------------------------------

def _variant(tmp_path, version="fid-50-test", rename=None, drop=(), extra="", name="tax.toml"):
    """The default taxonomy with another version, clades renamed (name lines) or dropped."""
    text = DEFAULT_TAXONOMY.read_text(encoding="utf-8")
    text = re.sub(r'(?m)^version = ".*"$', f'version = "{version}"', text)
    head, *blocks = text.split("\n[[clade]]\n")
    blocks = [b for b in blocks if not any(f'name = "{d}"\n' in b for d in drop)]
    text = "\n[[clade]]\n".join([head, *blocks])
    for old, new in (rename or {}).items():
        text = text.replace(f'name = "{old}"\n', f'name = "{new}"\n')
    path = tmp_path / name
    path.write_text(text + "\n" + extra, encoding="utf-8")
    return path


@pytest.mark.parametrize("edit, expected", [
    (lambda t: t.replace('name = "Snake"', 'name = "trilobite"'), "duplicates 'Trilobite'"),
    (lambda t: t.replace('superclade = "plants"', 'superclade = "flora"', 1), "superclade 'flora' is not one of"),
    (lambda t: t.replace('keywords.en = ["snake fossil", "fossil snake skeleton", "Titanoboa fossil"]\n'
                         'keywords.zh = ["蛇化石"]', 'keywords.en = []'), "all keyword lists are empty"),
    (lambda t: t.replace("order = 41\n", "order = 40\n"), "order 40 is already used"),
    (lambda t: t + '\n[[rename]]\nfrom = "Foraminifer"\nto = "Forams"\n', "target 'Forams' is not a clade"),
    (lambda t: t + '\n[[rename]]\nfrom = "Snake"\nto = "Turtle"\n', "'Snake' is still a clade"),
    (lambda t: t.replace("[[clade]]", "[[clades]]", 1), "unknown key 'clades'"),
    (lambda t: t.replace('version = "fid-50-v1"', ""), "`version` must be"),
    (lambda t: t + "\n[[clade\n", "is not valid TOML"),
])
def test_load_rejects_bad_files(tmp_path, edit, expected):
    path = tmp_path / "bad.toml"
    path.write_text(edit(DEFAULT_TAXONOMY.read_text(encoding="utf-8")), encoding="utf-8")
    with pytest.raises(TaxonomyError) as err:
        load_taxonomy(path)
    msg = str(err.value)
    assert expected in msg and str(path) in msg and "\n" not in msg


def test_missing_file_is_one_line(tmp_path):
    with pytest.raises(TaxonomyError, match=r"^cannot read taxonomy .*nope\.toml: No such file"):
        load_taxonomy(tmp_path / "nope.toml")


# ---- the paper's URL lists ----------------------------------------------------------------------

def _urls_dir():
    urls = FID_LISTS / "URLs"
    if not urls.is_dir():
        pytest.skip(f"the paper's URL lists are not at {urls}")
    return urls


def test_every_fid_list_file_is_mapped():
    urls = _urls_dir()
    mapping = load_fid_lists_map()
    ignored = set(fid_lists_ignored())
    present = {p.relative_to(urls).as_posix() for p in urls.rglob("*") if p.is_file()}
    unmapped = sorted(present - set(mapping) - ignored)
    assert not unmapped, f"files in {urls} with no entry in fid_lists_map.toml: {unmapped}"
    missing = sorted(set(mapping) - present)
    assert not missing, f"fid_lists_map.toml names files that do not exist: {missing}"
    assert ignored <= present and not ignored & set(mapping)
    names = {n.lower() for n in load_taxonomy().names} | {UNASSIGNED}
    unknown = {f: e["clade"] for f, e in mapping.items() if e["clade"].lower() not in names}
    assert not unknown, f"fid_lists_map.toml names unknown clades: {unknown}"
    assert check_fid_lists(FID_LISTS) == {"unmapped": [], "missing": [], "unknown_clades": {}}


def test_fid_lists_map_shape_and_reviewed_choices():
    mapping = load_fid_lists_map()
    for rel, entry in mapping.items():
        assert set(entry) == {"clade", "source", "keyword"}, rel
        folder = rel.split("/")[0]
        if folder != "others":
            assert entry["source"] == folder.lower(), rel
        assert entry["source"] and entry["source"] == entry["source"].lower()
    for rel in ("Bing/saurischia_source_url.txt", "Amazon/dinosaur skeleton_amazon_source.txt",
                "eBay/ebaysource_url_echinoderm.txt", "Bing/Carpoids_source_url.txt",
                "Bing/Parareptilia_source_url.txt"):
        assert mapping[rel]["clade"] == UNASSIGNED, rel
    assert mapping["Google/google_bonefish_source_url.txt"]["clade"] == "Osteichthyes"
    assert mapping["Bing/Carpoids_source_url.txt"] == {"clade": "unassigned", "source": "bing", "keyword": "Carpoids"}
    # every clade of the paper is fed by at least one list
    assert {e["clade"] for e in mapping.values()} - {UNASSIGNED} == set(load_taxonomy().names)


def test_check_fid_lists_reports_strays(tmp_path):
    urls = tmp_path / "URLs" / "Bing"
    urls.mkdir(parents=True)
    (urls / "trilobite_source_url.txt").write_text("http://x/1.jpg\n")
    (urls / "mystery_source_url.txt").write_text("http://x/2.jpg\n")
    report = check_fid_lists(tmp_path, clade_names=["Trilobite"])
    assert report["unmapped"] == ["Bing/mystery_source_url.txt"]
    assert "Bing/Carpoids_source_url.txt" in report["missing"]
    assert "Bing/trilobite_source_url.txt" not in report["missing"]
    assert report["unknown_clades"]["Bing/coral_source_url.txt"] == "Coral"


# ---- applying a taxonomy to a catalog -----------------------------------------------------------

def _image(s, tag: str) -> Image:
    sha = hashlib.sha256(tag.encode()).hexdigest()
    img = Image(sha256=sha, width=100, height=80, store_path=f"{sha[:2]}/{sha}.jpg", orig_sha256=sha,
                orig_width=100, orig_height=80, orig_format="JPEG", orig_size=1000)
    s.add(img)
    s.flush()
    return img


def _sighting(s, url: str, clade: str, image_id=None) -> Url:
    u = s.scalar(select(Url).where(Url.url == url))
    if u is None:
        u = Url(url_hash=hashlib.sha1(url.encode()).hexdigest(), url=url,
                status="stored" if image_id else "pending", image_id=image_id)
        s.add(u)
        s.flush()
    s.add(Sighting(sighting_key=hashlib.sha1(f"{url}|{clade}".encode()).hexdigest(), url_id=u.id,
                   source="test", clade=clade))
    s.flush()
    return u


def _review(s, image_id: int, clade: str) -> None:
    d = Decision(image_id=image_id, reviewer="ann", decision="relabel", clade=clade)
    s.add(d)
    s.flush()
    s.add(ReviewState(image_id=image_id, status="accepted", clade=clade, reviewer="ann", last_decision_id=d.id))
    s.flush()


def _snapshot(s) -> dict:
    return {
        "clades": [(c.name, c.order_index, c.taxonomy_version) for c in
                   s.scalars(select(Clade).order_by(Clade.order_index))],
        "versions": sorted(s.scalars(select(TaxonomyVersion.version))),
        "sightings": sorted(s.execute(select(Sighting.id, Sighting.clade)).all()),
        "reviews": sorted(s.execute(select(ReviewState.image_id, ReviewState.clade)).all()),
        "renames": s.scalar(select(func.count()).select_from(CladeRename)),
    }


def test_new_catalog_gets_default_taxonomy(catalog):
    with catalog.session() as s:
        data = catalog_clades(s)
        assert data["version"] == load_taxonomy().version
        assert [c["order"] for c in data["clades"]] == list(range(50))
        tri = next(c for c in data["clades"] if c["name"] == "Trilobite")
        assert "三叶虫化石" in tri["keywords"]["zh"] and tri["superclade"] == "invertebrates"
        assert list(s.scalars(select(TaxonomyVersion.version))) == [data["version"]]
        # loading the same file again changes nothing and keeps one version row
        summary = apply_taxonomy(s, load_taxonomy())
        assert summary["added"] == summary["removed"] == summary["renamed"] == summary["updated"] == []
        assert len(summary["unchanged"]) == 50
        assert s.scalar(select(func.count()).select_from(TaxonomyVersion)) == 1


def test_load_refuses_to_drop_clades_that_images_carry(catalog, tmp_path):
    with catalog.session() as s:
        a, b = _image(s, "a"), _image(s, "b")
        _sighting(s, "http://x/tri.jpg", "Trilobite", a.id)
        _review(s, b.id, "Ammonoid")                      # carried through a relabel only
        _sighting(s, "http://x/snake.jpg", "Snake")        # no image: may be dropped
        before = _snapshot(s)
    tax = load_taxonomy(_variant(tmp_path, drop=("Trilobite", "Ammonoid", "Snake")))
    with pytest.raises(TaxonomyError) as err:
        with catalog.session() as s:
            apply_taxonomy(s, tax)
    msg = str(err.value)
    assert "Ammonoid (1 image), Trilobite (1 image)" in msg and "[[rename]]" in msg and "Snake" not in msg
    with catalog.session() as s:
        assert _snapshot(s) == before

    # dropping only the clade no image carries works; its sighting keeps the old name
    with catalog.session() as s:
        summary = apply_taxonomy(s, load_taxonomy(_variant(tmp_path, version="fid-49", drop=("Snake",))))
    assert summary["removed"] == ["Snake"] and summary["orphaned_sightings"] == 1
    with catalog.session() as s:
        names = [c["name"] for c in catalog_clades(s)["clades"]]
        assert len(names) == 49 and "Snake" not in names
        assert s.scalar(select(Sighting.clade).where(Sighting.clade == "Snake")) == "Snake"


def test_rename_and_merge_move_sightings_and_are_recorded(catalog, tmp_path):
    with catalog.session() as s:
        a, b, c = _image(s, "a"), _image(s, "b"), _image(s, "c")
        _sighting(s, "http://x/1.jpg", "Trilobite", a.id)
        _sighting(s, "http://x/2.jpg", "Trilobite")
        _sighting(s, "http://x/3.jpg", "Ophiuroid", b.id)
        _review(s, c.id, "Trilobite")
    path = _variant(tmp_path, version="fid-50-v2", rename={"Trilobite": "Trilobita"}, drop=("Ophiuroid",),
                    extra='[[rename]]\nfrom = "Trilobite"\nto = "Trilobita"\n\n'
                          '[[rename]]\nfrom = "Ophiuroid"\nto = "Starfish"\n')
    with catalog.session() as s:
        summary = apply_taxonomy(s, load_taxonomy(path))
    assert summary["renamed"] == [["Trilobite", "Trilobita"]]
    assert summary["merged"] == [["Ophiuroid", "Starfish"]]
    assert summary["added"] == [] and summary["removed"] == []
    assert summary["sightings_moved"] == 3 and summary["review_states_moved"] == 1
    assert summary["previous_version"] == load_taxonomy().version and summary["version"] == "fid-50-v2"
    with catalog.session() as s:
        names = {c["name"] for c in catalog_clades(s)["clades"]}
        assert "Trilobita" in names and not {"Trilobite", "Ophiuroid"} & names and len(names) == 49
        assert sorted(s.scalars(select(Sighting.clade))) == ["Starfish", "Trilobita", "Trilobita"]
        assert s.scalar(select(ReviewState.clade)) == "Trilobita"
        assert s.scalar(select(Decision.clade)) == "Trilobite"           # history is not rewritten
        renames = {(r.old_name, r.new_name, r.kind, r.taxonomy_version) for r in s.scalars(select(CladeRename))}
        assert renames == {("Trilobite", "Trilobita", "rename", "fid-50-v2"),
                           ("Ophiuroid", "Starfish", "merge", "fid-50-v2")}
        assert sorted(s.scalars(select(TaxonomyVersion.version))) == sorted([load_taxonomy().version, "fid-50-v2"])
        assert current_clade_name(s, "trilobite") == "Trilobita"
        assert current_clade_name(s, "Ophiuroid") == "Starfish"
        assert current_clade_name(s, "Dragon") is None


def test_version_names_one_clade_set(catalog, tmp_path):
    same_version = _variant(tmp_path, version=load_taxonomy().version, rename={"Snake": "Serpent"})
    with catalog.session() as s:
        before = _snapshot(s)
    with pytest.raises(TaxonomyError, match="is already recorded in the catalog with other clade names"):
        with catalog.session() as s:
            apply_taxonomy(s, load_taxonomy(same_version))
    with catalog.session() as s:
        assert _snapshot(s) == before
        dry = apply_taxonomy(s, load_taxonomy(_variant(tmp_path, version="v9", rename={"Snake": "Serpent"})),
                             dry_run=True)
    assert dry["added"] == ["Serpent"] and dry["removed"] == ["Snake"] and dry["dry_run"]
    with catalog.session() as s:
        assert _snapshot(s) == before


# ---- CLI ----------------------------------------------------------------------------------------

def test_cli_clades_list(catalog, cli, fid_env):
    res = cli("clades", "list", "--db", catalog.url, env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "Spore or pollen" in res.output and "fid-50-v1" in res.output and "Trilobita" in res.output
    res = cli("clades", "list", "--json", "--db", catalog.url)
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert len(data["clades"]) == 50 and data["clades"][48]["name"] == "Trilobite"


def test_cli_clades_list_without_catalog(cli, fid_env):
    res = cli("clades", "list", "--db", fid_env / "nope.sqlite")
    assert res.exit_code == 1
    assert res.output.strip() == f"Error: no catalog at sqlite:///{fid_env / 'nope.sqlite'}"
    assert not (fid_env / "nope.sqlite").exists()


def test_cli_clades_load(catalog, cli, fid_env, tmp_path):
    with catalog.session() as s:
        _sighting(s, "http://x/1.jpg", "Trilobite", _image(s, "a").id)
    dropped = _variant(tmp_path, version="v2", drop=("Trilobite",), name="drop.toml")
    res = cli("clades", "load", dropped, "--db", catalog.url)
    assert res.exit_code == 1
    assert res.output.startswith(f"Error: taxonomy {dropped} would drop clades that images carry: Trilobite (1 image)")
    renamed = _variant(tmp_path, version="v2", rename={"Trilobite": "Trilobita"}, name="ok.toml",
                       extra='[[rename]]\nfrom = "Trilobite"\nto = "Trilobita"\n')
    res = cli("clades", "load", renamed, "--db", catalog.url, env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "Trilobite -> Trilobita" in res.output and "fid-50-v1 -> v2" in res.output
    res = cli("clades", "list", "--json", "--db", catalog.url)
    assert {c["taxonomy_version"] for c in json.loads(res.output)["clades"]} == {"v2"}
