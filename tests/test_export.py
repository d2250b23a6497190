"""`fid export` on a real catalog (SQLite and PostgreSQL) with real JPEGs in a temp store."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from PIL import Image as PILImage
from sqlalchemy import func, select

from curation.export import MANIFEST_FIELDS, ExportOptions, run_export
from curation.splits import SPLITS
from dataset_db import repo_review as rr
from dataset_db.errors import FidError
from dataset_db.models import Export, ExportItem, Sighting, Url
from review_helpers import add_group, add_image

IN_CI = bool(os.environ.get("CI"))


def _store(cat) -> Path:
    p = Path(cat.settings.store)
    p.mkdir(parents=True, exist_ok=True)
    return p


def _decide_all(cat, ids, decision="accept", **kw):
    with cat.session() as s:
        for i in ids:
            rr.record_decision(s, i, "tester", decision, **kw)


def _images(cat, n, clade, accept=True, **kw):
    ids = [add_image(cat, _store(cat), clade, **kw) for _ in range(n)]
    if accept:
        _decide_all(cat, ids)
    return ids


def _export(cat, tmp_path, name, **kw):
    kw.setdefault("out", tmp_path / "exports" / name)
    return run_export(cat, _store(cat), name, ExportOptions(**kw))


def _manifest(res) -> list[dict]:
    with open(Path(res["out_dir"]) / "manifest.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _sha(cat, image_id) -> str:
    from dataset_db.models import Image
    with cat.session() as s:
        return s.get(Image, image_id).sha256


def _tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_groups_never_cross_splits_and_ratios_hold(catalog, tmp_path):
    groups = []
    for clade, n_single, n_groups in (("Ammonoid", 30, 6), ("Trilobite", 17, 4)):
        _images(catalog, n_single, clade)
        for _ in range(n_groups):
            ids = _images(catalog, 3, clade)
            add_group(catalog, ids, conflict=False, clades=[clade])
            groups.append(ids)
    res = _export(catalog, tmp_path, "e1", all_members=True)
    rows = _manifest(res)
    assert list(rows[0].keys()) == list(MANIFEST_FIELDS)
    assert res["counts"]["images"] == len(rows) == 30 + 18 + 17 + 12
    split_of = {r["sha256"]: r["split"] for r in rows}
    for ids in groups:                                   # a duplicate group sits in one split
        assert len({split_of[_sha(catalog, i)] for i in ids}) == 1
    by_gid = defaultdict(set)
    for r in rows:
        by_gid[r["group_id"]].add(r["split"])
    assert all(len(v) == 1 for v in by_gid.values())
    for clade in ("Ammonoid", "Trilobite"):              # ratios within one group (3 images) of target
        counts = Counter(r["split"] for r in rows if r["clade"] == clade)
        total = sum(counts.values())
        for sp, ratio in zip(SPLITS, (0.80, 0.15, 0.05)):
            assert abs(counts[sp] - ratio * total) <= 3, (clade, counts)
    for r in rows:                                       # folder layout split/clade/file
        assert r["file"].startswith(f"{r['split']}/{r['clade']}/") and (Path(res["out_dir"]) / r["file"]).is_file()
    with catalog.session() as s:                         # membership recorded for training
        e = s.scalar(select(Export).where(Export.name == "e1"))
        db = {(i.image_id, i.split) for i in s.scalars(select(ExportItem).where(ExportItem.export_id == e.id))}
        assert len(db) == len(rows) and e.counts["train"] == Counter(r["split"] for r in rows)["train"]
    # default mode: one image per group
    res2 = _export(catalog, tmp_path, "e2")
    assert res2["counts"]["images"] == 30 + 6 + 17 + 4 and res2["left_out"]["duplicates"] == 20
    ds = json.loads((Path(res2["out_dir"]) / "datasheet.json").read_text())
    assert ds["dedup_thresholds"] == [6] and ds["seed"] == 42
    assert {r["clade"] for r in ds["per_clade"]} == {"Ammonoid", "Trilobite"}
    assert (Path(res2["out_dir"]) / "DATASHEET.md").read_text().count("| Ammonoid |") == 1


def test_same_inputs_and_seed_give_identical_bytes(catalog, tmp_path):
    ids = _images(catalog, 12, "Ammonoid") + _images(catalog, 9, "Brachiopod", size=(700, 300))
    _decide_all(catalog, ids[:2], "crop", crop=[10, 10, 200, 150])
    a = _export(catalog, tmp_path, "a", seed=3)
    b = _export(catalog, tmp_path, "b", seed=3)
    ta, tb = _tree_digest(Path(a["out_dir"])), _tree_digest(Path(b["out_dir"]))
    ta.pop("datasheet.json"), tb.pop("datasheet.json")   # holds the export's own name
    ta.pop("DATASHEET.md"), tb.pop("DATASHEET.md")
    assert ta == tb and "manifest.csv" in ta
    c = _export(catalog, tmp_path, "c", seed=4)
    assert [r["split"] for r in _manifest(c)] != [r["split"] for r in _manifest(a)] or \
        {r["sha256"]: r["split"] for r in _manifest(c)} != {r["sha256"]: r["split"] for r in _manifest(a)}


def test_stability_after_adding_images(catalog, tmp_path):
    _images(catalog, 40, "Ammonoid")
    first = _export(catalog, tmp_path, "v1")
    _images(catalog, 10, "Ammonoid")
    second = _export(catalog, tmp_path, "v2", since="v1")
    before = {r["sha256"]: r["split"] for r in _manifest(first)}
    after = {r["sha256"]: r["split"] for r in _manifest(second)}
    really_moved = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    reported = {m["sha256"]: (m["from"], m["to"]) for m in second["moved"]["images"]}
    assert reported == really_moved and second["moved"]["count"] == len(really_moved)
    assert second["moved"]["added"] == 10 and second["moved"]["dropped"] == 0
    assert len(really_moved) <= 4                         # only groups next to the cut points move


def test_conflicts_and_unassigned_left_out(catalog, tmp_path):
    _images(catalog, 4, "Ammonoid")
    unresolved = _images(catalog, 2, "Ammonoid") + _images(catalog, 1, "Bivalve")
    add_group(catalog, unresolved, conflict=True, clades=["Ammonoid", "Bivalve"])
    resolved = _images(catalog, 1, "Bivalve") + _images(catalog, 1, "Ammonoid")
    add_group(catalog, resolved, conflict=True, clades=["Ammonoid", "Bivalve"])
    _decide_all(catalog, resolved[:1], "relabel", clade="Belemnite")    # curator resolves via the representative
    two_clades = _images(catalog, 1, "Ammonoid", extra_clades=("Bivalve",))  # one URL sighted under two clades
    unassigned = _images(catalog, 1, "unassigned")
    relabelled = _images(catalog, 1, "Ammonoid", extra_clades=("Bivalve",))
    _decide_all(catalog, relabelled, "relabel", clade="Bivalve")
    answered = _images(catalog, 1, "Bivalve", accept=False) + _images(catalog, 1, "Ammonoid", accept=False)
    add_group(catalog, answered, conflict=True, clades=["Ammonoid", "Bivalve"])
    _decide_all(catalog, answered)               # accepted from the conflicts queue, after dedup flagged it
    res = _export(catalog, tmp_path, "c", all_members=True)
    rows = _manifest(res)
    got = {r["sha256"]: r["clade"] for r in rows}
    assert all(got[_sha(catalog, i)] == "Bivalve" for i in answered)
    assert not {_sha(catalog, i) for i in unresolved + two_clades + unassigned} & set(got)
    assert all(got[_sha(catalog, i)] == "Belemnite" for i in resolved)
    assert got[_sha(catalog, relabelled[0])] == "Bivalve"
    assert "unassigned" not in set(got.values())
    lo = res["left_out"]
    assert (lo["conflict_groups"], lo["conflict_images"], lo["unassigned"]) == (2, 4, 1)
    assert len(rows) == 4 + 2 + 1 + 2


def test_crop_is_applied_and_resized(catalog, tmp_path):
    img = add_image(catalog, _store(catalog), "Ammonoid", size=(320, 240), orig_size=(640, 480))
    big = add_image(catalog, _store(catalog), "Ammonoid", size=(500, 250))
    plain = add_image(catalog, _store(catalog), "Ammonoid", size=(300, 200))
    _decide_all(catalog, [img], "crop", crop=[64, 48, 384, 288])          # original pixels: 320x240 box
    _decide_all(catalog, [big, plain])
    res = _export(catalog, tmp_path, "crop", max_side=200, ratios="1,0,0")
    out = Path(res["out_dir"])
    dims = {}
    for r in _manifest(res):
        with PILImage.open(out / r["file"]) as im:
            dims[r["sha256"]] = (im.size, r["crop"])
    assert dims[_sha(catalog, img)] == ((160, 120), "64,48,384,288")       # scaled to the 320x240 stored copy
    assert dims[_sha(catalog, big)][0] == (200, 100)                        # longer side down to --max-side
    assert dims[_sha(catalog, plain)][0] == (200, 133)
    res2 = _export(catalog, tmp_path, "nocrop", ratios="1,0,0")
    f = [r for r in _manifest(res2) if r["sha256"] == _sha(catalog, plain)][0]["file"]
    with catalog.session() as s:                                            # untouched images are copied as is
        from dataset_db.models import Image
        rel = s.scalar(select(Image.store_path).where(Image.id == plain))
    assert (Path(res2["out_dir"]) / f).read_bytes() == (_store(catalog) / rel).read_bytes()


def test_per_class_undersampling_keeps_val_and_test(catalog, tmp_path):
    _images(catalog, 30, "Ammonoid")
    _images(catalog, 20, "Bivalve")
    full = _export(catalog, tmp_path, "full")
    _images(catalog, 10, "Ammonoid")                         # the catalog grows; the reduced export must not care
    red = _export(catalog, tmp_path, "reduced", from_export="full", per_class=5)
    fr, rr_ = _manifest(full), _manifest(red)
    for sp in ("val", "test"):
        assert {r["sha256"] for r in fr if r["split"] == sp} == {r["sha256"] for r in rr_ if r["split"] == sp}
    full_train = {r["sha256"] for r in fr if r["split"] == "train"}
    red_train = [r for r in rr_ if r["split"] == "train"]
    assert {r["sha256"] for r in red_train} <= full_train
    assert Counter(r["clade"] for r in red_train) == {"Ammonoid": 5, "Bivalve": 5}
    again = _export(catalog, tmp_path, "reduced2", from_export="full", per_class=5)
    assert [r["sha256"] for r in _manifest(again)] == [r["sha256"] for r in rr_]


def test_oversample_repeats_small_clades_in_train_only(catalog, tmp_path):
    _images(catalog, 20, "Ammonoid")
    _images(catalog, 6, "Bivalve")
    res = _export(catalog, tmp_path, "over", oversample_to=16)
    rows = _manifest(res)
    train = [r for r in rows if r["split"] == "train"]
    assert Counter(r["clade"] for r in train) == {"Ammonoid": 16, "Bivalve": 16}
    assert all(r["repeat"] == "0" for r in rows if r["split"] != "train")
    biv = [r for r in train if r["clade"] == "Bivalve"]
    base = {r["sha256"] for r in biv if r["repeat"] == "0"}
    assert len(base) == 5 and {r["sha256"] for r in biv} == base and max(int(r["repeat"]) for r in biv) >= 2
    assert len({r["file"] for r in rows}) == len(rows)
    assert all((Path(res["out_dir"]) / r["file"]).is_file() for r in rows)
    with catalog.session() as s:
        assert s.scalar(select(func.count()).select_from(ExportItem).where(ExportItem.repeat > 0)) == 11


def test_license_filter(catalog, tmp_path):
    cc0 = _images(catalog, 3, "Ammonoid", license="CC0-1.0")
    _images(catalog, 2, "Ammonoid", license="unknown")
    by = _images(catalog, 2, "Ammonoid", license="CC-BY-4.0")
    res = _export(catalog, tmp_path, "lic", licenses=("cc0-1.0", "CC-BY-4.0", "PDM"), fmt="csv")
    rows = _manifest(res)
    assert {r["sha256"] for r in rows} == {_sha(catalog, i) for i in cc0 + by}
    assert {r["license"] for r in rows} == {"CC0-1.0", "CC-BY-4.0"} and res["left_out"]["license"] == 2
    with open(Path(res["out_dir"]) / "ATTRIBUTION.csv", newline="") as fh:
        att = list(csv.DictReader(fh))
    assert len(att) == 5 and all(a["source_page"].startswith("https://example.org/page/") for a in att)
    everything = _export(catalog, tmp_path, "all", fmt="csv")
    assert everything["license_unknown_share"] == round(2 / 7, 4)


def test_group_by_page_keeps_a_page_together(catalog, tmp_path):
    ids = _images(catalog, 60, "Ammonoid")
    shared = "https://example.org/one-page-with-many-fossils"
    with catalog.session() as s:
        for i in ids[:12]:
            url_id = s.scalar(select(Url.id).where(Url.image_id == i))
            s.add(Sighting(sighting_key=hashlib.sha1(f"page{i}".encode()).hexdigest(), url_id=url_id,
                           source="bing", clade="Ammonoid", page_url=shared, license="unknown"))
    plain = {r["sha256"]: r["split"] for r in _manifest(_export(catalog, tmp_path, "g", fmt="csv"))}
    assert len({plain[_sha(catalog, i)] for i in ids[:12]}) > 1   # by group alone they spread out
    res = _export(catalog, tmp_path, "p", group_by="page", fmt="csv")
    rows = {r["sha256"]: r for r in _manifest(res)}
    assert len({rows[_sha(catalog, i)]["split"] for i in ids[:12]}) == 1
    assert len({rows[_sha(catalog, i)]["group_id"] for i in ids[:12]}) == 1


def test_existing_name_replace_and_failed_export_leaves_nothing(catalog, tmp_path):
    ids = _images(catalog, 5, "Ammonoid")
    _export(catalog, tmp_path, "x")
    with pytest.raises(FidError, match="already exists"):
        _export(catalog, tmp_path, "x")
    with pytest.raises(FidError, match="already exists"):
        _export(catalog, tmp_path, "y", out=tmp_path / "exports" / "x")
    _images(catalog, 1, "Ammonoid", write_file=False)         # its store file is missing
    with pytest.raises(FidError, match="is missing"):
        _export(catalog, tmp_path, "x", replace=True)
    assert sorted(p.name for p in (tmp_path / "exports").iterdir()) == ["x"]   # old export intact, no temp left
    assert len(_manifest({"out_dir": tmp_path / "exports" / "x"})) == 5
    with catalog.session() as s:
        assert s.scalar(select(func.count()).select_from(Export)) == 1
        assert s.scalar(select(func.count()).select_from(ExportItem)) == 5
    _decide_all(catalog, [ids[0]], "reject", reason="poor_quality")
    with catalog.session() as s:                                # drop the broken image from selection
        from dataset_db.models import ReviewState
        s.execute(ReviewState.__table__.delete().where(ReviewState.image_id > ids[-1]))
    res = _export(catalog, tmp_path, "x", replace=True)
    assert res["counts"]["images"] == 4 and res["left_out"]["rejected"] == 1
    ds = json.loads((Path(res["out_dir"]) / "datasheet.json").read_text())
    assert ds["reject_reasons"] == {"poor_quality": 1}


def test_bad_options_are_refused(catalog, tmp_path):
    for kw, msg in (({"fmt": "zip"}, "unknown format"), ({"ratios": "0.5,0.5"}, "invalid ratios"),
                    ({"from_export": "nope"}, "unknown export 'nope'"),
                    ({"licenses": ("CC0-1.0",), "from_export": "a"}, "cannot be combined")):
        with pytest.raises(FidError, match=msg):
            _export(catalog, tmp_path, "bad", **kw)
    with pytest.raises(FidError, match="invalid export name"):
        _export(catalog, tmp_path, "../evil")


def test_cli_json_and_one_line_errors(catalog, tmp_path):
    from click.testing import CliRunner

    from dataset_db.clitools import FidGroup

    _images(catalog, 6, "Ammonoid")
    fid = FidGroup(name="fid", lazy={"export": "curation.export_cli:export"})
    runner = CliRunner()
    args = ["export", "--db", catalog.url, "--store", str(_store(catalog)), "cli1", "--out",
            str(tmp_path / "o" / "cli1")]
    r = runner.invoke(fid, args + ["--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["counts"]["images"] == 6 and data["name"] == "cli1"
    r = runner.invoke(fid, args)
    assert r.exit_code == 1 and r.output.strip().count("\n") == 0 and "already exists" in r.output
    r = runner.invoke(fid, ["export", "--db", catalog.url, "--store", str(_store(catalog)), "cli2", "--out",
                            str(tmp_path / "o" / "cli2"), "--since", "cli1"])
    assert r.exit_code == 0, r.output
    assert "since cli1: 0 image(s) moved" in r.output and "total" in r.output


@pytest.fixture
def sqlite_catalog(tmp_path):
    from dataset_db.bootstrap import open_or_create
    from dataset_db.config import load_settings

    settings = load_settings(db=f"sqlite:///{tmp_path / 'c.sqlite'}", store=str(tmp_path / "store"), cwd=tmp_path)
    cat = open_or_create(settings)
    cat.settings = settings
    yield cat
    cat.close()


def _need(module):
    try:
        return __import__(module)
    except ImportError:
        if IN_CI:
            raise
        pytest.skip(f"{module} is not installed (pip install -e '.[train]')")


@pytest.mark.slow
def test_folder_format_loads_with_keras(sqlite_catalog, tmp_path):
    _need("keras")
    import keras

    _images(sqlite_catalog, 10, "Ammonoid")
    _images(sqlite_catalog, 10, "Bivalve", size=(200, 300))
    res = _export(sqlite_catalog, tmp_path, "k")
    ds = keras.utils.image_dataset_from_directory(str(Path(res["out_dir"]) / "train"), image_size=(64, 64),
                                                  batch_size=4, shuffle=False)
    assert ds.class_names == ["Ammonoid", "Bivalve"]
    assert sum(int(x.shape[0]) for x, _ in ds) == res["counts"]["train"]


@pytest.mark.slow
def test_tfrecord_format(sqlite_catalog, tmp_path):
    _need("tensorflow")
    import tensorflow as tf

    _images(sqlite_catalog, 9, "Ammonoid")
    res = _export(sqlite_catalog, tmp_path, "t", fmt="tfrecord", shard_size=3)
    rows = _manifest(res)
    shards = sorted({r["file"] for r in rows})
    assert all(Path(res["out_dir"], f).is_file() for f in shards) and len(shards) >= 3
    n = 0
    for rec in tf.data.TFRecordDataset([str(Path(res["out_dir"], f)) for f in shards]):
        ex = tf.train.Example.FromString(rec.numpy())
        data = ex.features.feature["image/encoded"].bytes_list.value[0]
        assert PILImage.open(io.BytesIO(data)).size == (320, 240)
        n += 1
    assert n == len(rows) == 9
