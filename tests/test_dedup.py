"""`fid dedup` on a real catalog (SQLite and PostgreSQL): hashes, groups, conflicts, incremental
runs that keep unchanged groups' rows, the CLI summary and the HTML report.

Images are generated (tests/imagegen.py), near-duplicates made the way the web makes them
(resized, recompressed, slightly cropped, brightened), and everything is stored through the real
ingest path (process_image_bytes -> store_processed -> repo_images). The design of the data set is
checked against the stored hashes before any expectation is derived from it, so a generator
change that breaks the design fails loudly instead of silently testing something else.
"""

from __future__ import annotations

import io
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from PIL import Image as PILImage, ImageEnhance
from sqlalchemy import select, update

import imagegen
from curation.dedup import run_dedup
from curation.hashing import HASH_VERSION, hamming
from curation.images import process_image_bytes, store_processed
from curation.store import ImageStore
from dataset_db import repo_images
from dataset_db.errors import FidError
from dataset_db.models import DupGroup, GroupMember, Image, Run

T = 8
W, H = 480, 360


def _jpeg(img, quality=88) -> bytes:
    return imagegen.encode(img, "JPEG", quality=quality)


def _variants(base: PILImage.Image) -> dict[str, bytes]:
    w, h = base.size
    m = max(2, w * 15 // 1000)
    return {
        "resized": _jpeg(base.resize((w * 6 // 10, h * 6 // 10), PILImage.Resampling.LANCZOS)),
        "recompressed": _jpeg(base, quality=35),
        "cropped": _jpeg(base.crop((m, m, w - m, h - m))),
        "brightened": _jpeg(ImageEnhance.Brightness(base).enhance(1.1)),
    }


@dataclass
class Item:
    key: str
    data: bytes
    clades: tuple[str, ...]
    family: str  # near-duplicates by construction share a family; others are far apart
    phash: int = 0


@dataclass
class Design:
    items: list[Item]
    expected: list[set[str]]  # expected groups of 2+ as sets of keys
    chain: list[str]
    conflicts: dict[frozenset, tuple[str, ...]] = field(default_factory=dict)  # group keys -> clades


def _hash(data: bytes) -> int:
    return process_image_bytes(data).phash


def _chain(seed: int, length: int = 4) -> list[tuple[str, bytes, int]]:
    """Blends of two unrelated scenes: adjacent links within T, any two others more than T apart
    (plain union-find would merge the whole chain)."""
    a, z = imagegen.scene(W, H, seed), imagegen.scene(W, H, seed + 1)
    cands = []
    for k in range(0, 51):
        data = _jpeg(PILImage.blend(a, z, k / 50))
        cands.append((k, data, _hash(data)))
    chain = [cands[0]]
    pos = 0
    while len(chain) < length:
        nxt = None
        for j in range(pos + 1, len(cands)):
            c = cands[j]
            if hamming(chain[-1][2], c[2]) > T:
                continue
            if all(hamming(x[2], c[2]) > T for x in chain[:-1]):
                nxt = j
        assert nxt is not None, "could not build a chain from the blends; generator changed?"
        chain.append(cands[nxt])
        pos = nxt
    return [(f"chain{i}", d, h) for i, (_, d, h) in enumerate(chain)]


@pytest.fixture(scope="module")
def design() -> Design:
    items: list[Item] = []
    expected: list[set[str]] = []
    clade_of = ["Ammonoid", "Trilobite", "Bivalve", "Brachiopod"]
    for f in range(4):
        base = imagegen.scene(W, H, seed=100 + f)
        fam = f"f{f}"
        items.append(Item(f"{fam}.base", _jpeg(base), (clade_of[f],), fam))
        for name, data in _variants(base).items():
            clades = (clade_of[f],)
            if f == 3 and name == "recompressed":
                clades = ("Crinoid",)  # a copy found under another clade: a label conflict
            items.append(Item(f"{fam}.{name}", data, clades, fam))
        expected.append({f"{fam}.base", *(f"{fam}.{n}" for n in _variants(base))})
    chain = _chain(seed=300)
    for key, data, _ in chain:
        items.append(Item(key, data, ("Coral",), key))  # each link its own family
    expected += [{"chain0", "chain1"}, {"chain2", "chain3"}]
    for u in range(4):
        clades = ("Gastropod",)
        if u == 0:
            clades = ("Bivalve", "Brachiopod")  # one URL sighted under two clades
        if u == 1:
            clades = ("unassigned", "Gastropod")  # unassigned does not make a conflict
        items.append(Item(f"lone{u}", _jpeg(imagegen.scene(W, H, seed=200 + u)), clades, f"lone{u}"))
    for it in items:
        it.phash = _hash(it.data)
    # check the design against the hashes the catalog will hold
    by_key = {it.key: it for it in items}
    for fam in ("f0", "f1", "f2", "f3"):
        base = by_key[f"{fam}.base"]
        for it in items:
            if it.family == fam and it is not base:
                assert hamming(base.phash, it.phash) <= T, (it.key, hamming(base.phash, it.phash))
    chain_keys = [k for k, _, _ in chain]
    linked = {frozenset(p) for p in zip(chain_keys, chain_keys[1:])}
    for a, b in itertools.combinations(items, 2):
        if a.family == b.family or frozenset((a.key, b.key)) in linked:
            continue
        assert hamming(a.phash, b.phash) > T, (a.key, b.key, hamming(a.phash, b.phash))
    conflicts = {frozenset(expected[3]): ("Brachiopod", "Crinoid"), frozenset({"lone0"}): ("Bivalve", "Brachiopod")}
    return Design(items, expected, chain_keys, conflicts)


def ingest(cat, items: list[Item]) -> dict[str, int]:
    """Store items through the real path; returns key -> image id."""
    store = ImageStore(cat.settings.store)
    ids = {}
    for it in items:
        p = process_image_bytes(it.data)
        assert p.ok, it.key
        store_processed(store, p)
        url = f"https://img.example.org/{it.key}.jpg"
        with cat.session() as s:
            rows = repo_images.ensure_urls_and_sightings(
                s, [{"url": url, "clade": c, "source": "test", "page_url": f"https://example.org/{it.key}"}
                    for c in it.clades])
            (row,) = rows.values()
            res = repo_images.record_images(s, [{"url_id": row["id"], **p.catalog_row()}])
        ids[it.key] = res["image_id"][row["id"]]
    return ids


def stored_groups(cat) -> dict[frozenset, dict]:
    """member ids -> {"id", "rep", "created_at", "conflict", "clades", "distances"}."""
    with cat.session() as s:
        groups = {g.id: g for g in s.scalars(select(DupGroup))}
        members: dict[int, dict[int, int]] = {}
        for m in s.scalars(select(GroupMember)):
            members.setdefault(m.group_id, {})[m.image_id] = m.distance
    return {frozenset(members[gid]): {"id": gid, "rep": g.representative_id, "created_at": g.created_at,
                                      "conflict": g.conflict, "clades": list(g.clades), "size": g.size,
                                      "distances": members[gid]}
            for gid, g in groups.items()}


def by_keys(ids: dict[str, int], keys) -> frozenset:
    return frozenset(ids[k] for k in keys)


def test_groups_chain_and_conflicts_found_exactly(catalog, design):
    ids = ingest(catalog, design.items)
    res = run_dedup(catalog, catalog.settings.store, threshold=T, method="phash")
    assert res["mode"] == "build" and res["hash_failures"] == 0 and res["hashes_computed"] == 0
    got = stored_groups(catalog)
    multi = {k for k in got if len(k) >= 2}
    assert multi == {by_keys(ids, g) for g in design.expected}
    # no chain merge: every member within T of its representative, and the chain's ends apart
    phash = {ids[it.key]: it.phash for it in design.items}
    for members, g in got.items():
        for m, dist in g["distances"].items():
            assert dist == hamming(phash[m], phash[g["rep"]]) <= T
        assert g["size"] == len(members)
    # representative: the largest original, then the earliest
    for keys in design.expected[:4]:
        fam = next(iter(keys)).split(".")[0]
        assert got[by_keys(ids, keys)]["rep"] == ids[f"{fam}.base"]
    assert got[by_keys(ids, ["chain0", "chain1"])]["rep"] == ids["chain0"]
    # conflicts: the cross-clade copy's group and the URL sighted under two clades (a group of one)
    flagged = {k: tuple(v["clades"]) for k, v in got.items() if v["conflict"]}
    assert flagged == {by_keys(ids, k): v for k, v in design.conflicts.items()}
    assert all(len(k) >= 2 or got[k]["conflict"] for k in got)  # no plain groups of one stored
    assert res["groups"] == len(design.expected)
    assert res["images_in_groups"] == sum(len(g) for g in design.expected)
    assert res["largest"]["size"] == max(len(g) for g in design.expected)
    assert res["conflicts"] == 2
    pairs = {tuple(r["clades"]): r["groups"] for r in res["conflicts_by_clade_pair"]}
    assert pairs == {("Brachiopod", "Crinoid"): 1, ("Bivalve", "Brachiopod"): 1}
    # clades recorded on plain groups too
    assert got[by_keys(ids, design.expected[0])]["clades"] == ["Ammonoid"]


def test_rerun_with_new_images_is_incremental_and_keeps_unchanged_groups(catalog, design):
    ids = ingest(catalog, design.items)
    run_dedup(catalog, catalog.settings.store, threshold=T)
    before = stored_groups(catalog)
    res = run_dedup(catalog, catalog.settings.store, threshold=T)  # nothing new: nothing changes
    assert res["mode"] == "incremental" and res["new_images"] == 0
    assert res["changes"] == {"inserted": 0, "updated": 0, "deleted": 0, "unchanged": len(before), "reflagged": 0}
    assert stored_groups(catalog) == before

    # new: a copy of f0's base, a new family of two, an unrelated image; and f1 seen under a new clade
    f0 = PILImage.open(io.BytesIO(next(it.data for it in design.items if it.key == "f0.base")))
    nb = imagegen.scene(W, H, seed=400)
    new = [Item("f0.copy", _jpeg(f0.resize((400, 300), PILImage.Resampling.LANCZOS), 70), ("Ammonoid",), "f0"),
           Item("n.base", _jpeg(nb), ("Insect",), "n"), Item("n.copy", _jpeg(nb, 40), ("Insect",), "n"),
           Item("n.lone", _jpeg(imagegen.scene(W, H, seed=401)), ("Insect",), "lone")]
    ids.update(ingest(catalog, new))
    with catalog.session() as s:
        repo_images.ensure_urls_and_sightings(s, [{"url": "https://img.example.org/f1.resized.jpg",
                                                   "clade": "Echinoid", "source": "other"}])
    res = run_dedup(catalog, catalog.settings.store, threshold=T)
    assert res["mode"] == "incremental" and res["new_images"] == len(new)
    after = stored_groups(catalog)
    f0_old = by_keys(ids, design.expected[0])
    f1 = by_keys(ids, design.expected[1])
    f0_new = f0_old | {ids["f0.copy"]}
    assert after[f0_new]["id"] == before[f0_old]["id"]  # grew in place
    assert after[f0_new]["created_at"] == before[f0_old]["created_at"]  # same labels: same flag time
    assert after[f1]["id"] == before[f1]["id"] and after[f1]["conflict"]
    assert after[f1]["created_at"] > before[f1]["created_at"]  # newly flagged
    assert after[f1]["clades"] == ["Echinoid", "Trilobite"]
    assert by_keys(ids, ["n.base", "n.copy"]) in after
    untouched = set(before) - {f0_old, f1}
    for k in untouched:
        assert after[k] == before[k]
    assert res["changes"] == {"inserted": 1, "updated": 2, "deleted": 0, "unchanged": len(untouched),
                              "reflagged": 1}
    assert not any(ids["n.lone"] in k for k in after)

    # new images rank below the old ones here, so a full rebuild agrees and changes no row
    res = run_dedup(catalog, catalog.settings.store, threshold=T, rebuild=True)
    assert res["mode"] == "rebuild"
    assert stored_groups(catalog) == after
    assert res["changes"]["unchanged"] == len(after)

    # another threshold: a full rebuild, said so
    res = run_dedup(catalog, catalog.settings.store, threshold=T - 2)
    assert res["mode"] == "rebuild" and "threshold" in res["reason"] and "8 -> 6" in res["reason"]
    with catalog.session() as s:
        assert set(s.scalars(select(DupGroup.threshold))) == {T - 2}
        assert s.scalar(select(Run.kind).order_by(Run.id.desc()).limit(1)) == "dedup"


def test_missing_and_outdated_hashes_are_computed(catalog, design):
    items = [it for it in design.items if it.family in ("f0", "f1")]
    ids = ingest(catalog, items)
    with catalog.session() as s:
        truth = {i: (p, d) for i, p, d in s.execute(select(Image.id, Image.phash, Image.dhash))}
        s.execute(update(Image).where(Image.id.in_([ids["f0.base"], ids["f0.resized"]]))
                  .values(phash=None, dhash=None, hash_version=None))
        s.execute(update(Image).where(Image.id == ids["f1.base"]).values(phash=1, hash_version=HASH_VERSION - 1))
        gone = s.scalar(select(Image.store_path).where(Image.id == ids["f1.cropped"]))
        s.execute(update(Image).where(Image.id == ids["f1.cropped"]).values(dhash=None))
    (Path(catalog.settings.store) / gone).unlink()
    res = run_dedup(catalog, catalog.settings.store, threshold=T, method="both")
    assert res["hashes_computed"] == 3 and res["hash_failures"] == 1
    assert res["hash_failure_ids"] == [ids["f1.cropped"]]
    with catalog.session() as s:
        now = {i: (p, d, v) for i, p, d, v in s.execute(select(Image.id, Image.phash, Image.dhash,
                                                                Image.hash_version))}
    for key in ("f0.base", "f0.resized", "f1.base"):
        i = ids[key]
        assert now[i] == (*truth[i], HASH_VERSION)
    got = stored_groups(catalog)
    assert by_keys(ids, design.expected[0]) in got  # method both still finds these copies
    assert by_keys(ids, set(design.expected[1]) - {"f1.cropped"}) in got
    assert res["hashed"] == len(items) - 1


def test_bad_options_are_refused_and_leave_nothing(catalog):
    with pytest.raises(FidError, match="unknown dedup method 'md5'; choose from: phash, dhash, both"):
        run_dedup(catalog, catalog.settings.store, method="md5")
    with pytest.raises(FidError, match="threshold must be an integer in 0..64"):
        run_dedup(catalog, catalog.settings.store, threshold=65)
    with catalog.session() as s:
        assert s.scalar(select(Run.id).where(Run.kind == "dedup")) is None


def test_cli_summary_json_and_report(catalog, design, cli, tmp_path):
    ids = ingest(catalog, design.items)
    common = ["--db", catalog.url, "--store", str(catalog.settings.store)]
    r = cli(*common, "dedup", "--threshold", T)
    assert r.exit_code == 0, r.output
    out = r.output
    assert "full build" in out and "first dedup run" in out
    assert re.search(rf"groups \(2\+ images\)\s*│\s*{len(design.expected)}\b", out), out
    assert "Brachiopod" in out and "Crinoid" in out and "label conflicts per clade pair" in out
    assert f"representative #{ids['f0.base']}" in out or f"representative #{ids['f1.base']}" in out

    r = cli(*common, "dedup", "--method", "dhash", "--json")
    res = json.loads(r.output)
    assert res["mode"] == "rebuild" and "method changed" in res["reason"]
    r = cli(*common, "dedup", "--method", "sha1")
    assert r.exit_code == 2 and "sha1" in r.output

    report = tmp_path / "report"
    r = cli(*common, "dedup", "--report", report, "--json")
    res = json.loads(r.output)
    index = report / "index.html"
    assert res["report"]["index"] == str(index) and index.is_file()
    text = index.read_text(encoding="utf-8")
    refs = re.findall(r'(?:src|href)="([^"]+)"', text)
    local = [x for x in refs if not x.startswith(("http://", "https://", "#"))]
    assert local, "the report shows no thumbnails"
    root = report.resolve()
    for ref in local:
        p = (report / ref).resolve()
        assert p.is_relative_to(root) and p.is_file(), ref
        with PILImage.open(p) as im:
            assert im.format == "JPEG" and max(im.size) <= 160
    assert str(catalog.settings.store) not in text
    with catalog.session() as s:
        gids = list(s.scalars(select(DupGroup.id).where(DupGroup.size >= 2)))
        conflict_ids = list(s.scalars(select(DupGroup.id).where(DupGroup.conflict.is_(True))))
    assert conflict_ids and all(f'id="c{g}"' in text for g in conflict_ids)
    assert all(f'id="g{g}"' in text for g in gids)  # few groups: all among the largest
    assert "https://img.example.org/f3.recompressed.jpg" in text  # source URLs shown
    assert res["report"]["thumbnails"] == len({p for p in local if p.startswith("thumbs/")})
