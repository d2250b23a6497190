"""The image pipeline (validate -> normalise -> hash -> store), the store, the catalog side and
`fid import images`, on generated images including every bad case the crawler meets."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import pickle
import stat

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select

import imagegen
from curation import images as ci
from curation.hashing import HASH_VERSION, hashes_of_file, phash_file
from curation.store import ImageStore, StoreError
from dataset_db import status as st
from dataset_db.models import Image as ImageRow
from dataset_db.models import Run, Sighting, Url
from dataset_db.repo_images import CatalogWriteError, ensure_urls_and_sightings, record_failures, record_images


def _decode(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


# ---- process_image_bytes: every bad and awkward case -------------------------------------------

@pytest.mark.parametrize("case", sorted(imagegen.BAD_CASES))
def test_each_case_ends_in_its_status(case):
    factory, expected = imagegen.BAD_CASES[case]
    res = ci.process_image_bytes(factory())
    if expected is None:
        assert res.ok, getattr(res, "error_message", "")
        img = _decode(res.data)
        assert img.format == "JPEG" and img.mode == "RGB"
        assert img.size == (res.width, res.height)
        assert res.sha256 == hashlib.sha256(res.data).hexdigest()
    else:
        assert not res.ok
        assert res.status == expected
        st.lookup(res.status)  # always a status of the shared vocabulary
        assert res.error_message and "\n" not in res.error_message


def test_bad_bodies_say_what_they_are():
    assert "HTML" in ci.process_image_bytes(imagegen.html_page()).error_message
    assert "SVG" in ci.process_image_bytes(imagegen.svg()).error_message
    assert "truncated" in ci.process_image_bytes(imagegen.truncated_jpeg()).error_message
    assert "0 bytes" in ci.process_image_bytes(b"").error_message


def test_decompression_bombs_rejected_before_decoding():
    # below Pillow's own hard limit: our max_pixels check; above it: Pillow's DecompressionBombError
    for side in (12_000, 14_000):
        res = ci.process_image_bytes(imagegen.decompression_bomb(side))
        assert (res.ok, res.status) == (False, st.lookup("too_large").name)
    # the limit is configurable
    res = ci.process_image_bytes(imagegen.jpeg(400, 300), max_pixels=100_000)
    assert res.status == "too_large"
    assert ci.process_image_bytes(imagegen.jpeg(400, 300), max_pixels=120_000).ok
    assert ci.process_image_bytes(b"x" * 2000, max_bytes=1000).status == "too_large"


def test_min_side_is_configurable():
    data = imagegen.jpeg(100, 70)
    assert ci.process_image_bytes(data).ok
    assert ci.process_image_bytes(data, min_side=80).status == "too_small"


def test_exif_orientation_applied():
    raw = imagegen.scene(400, 200, seed=4)
    res = ci.process_image_bytes(imagegen.exif_rotated_jpeg(400, 200, orientation=6, seed=4))
    assert (res.width, res.height) == (200, 400)          # width and height swapped
    assert (res.orig_width, res.orig_height) == (200, 400)  # the displayed original
    stored = _decode(res.data)
    assert stored.getexif().get(0x0112) in (None, 1)       # no orientation left to apply twice
    want = np.asarray(raw.transpose(Image.Transpose.ROTATE_270), dtype=float)
    wrong = np.asarray(raw.transpose(Image.Transpose.ROTATE_90), dtype=float)
    got = np.asarray(stored, dtype=float)
    assert np.abs(got - want).mean() < 6 < np.abs(got - wrong).mean()


def test_cmyk_becomes_the_right_rgb():
    res = ci.process_image_bytes(imagegen.cmyk_jpeg(300, 200, seed=2))
    ref = np.asarray(imagegen.scene(300, 200, seed=2), dtype=float)
    assert np.abs(np.asarray(_decode(res.data), dtype=float) - ref).mean() < 8


def test_16bit_png_is_scaled_not_clipped():
    res = ci.process_image_bytes(imagegen.png16(300, 200))
    row = np.asarray(_decode(res.data).convert("L"), dtype=float)[100]
    assert row[:5].mean() < 10 and row[-5:].mean() > 245
    assert 110 < row[145:155].mean() < 145  # the middle of the 0..65535 ramp is mid-grey


def test_palette_transparency_composited_on_white():
    res = ci.process_image_bytes(imagegen.palette_png_transparent(200, 160))
    img = _decode(res.data)
    assert min(img.getpixel((3, 3))) > 245                 # transparent corner -> white
    r, g, b = img.getpixel((100, 80))
    assert r > 230 and g < 30 and b < 30                  # opaque red disc


def test_animated_gif_first_frame():
    img = _decode(ci.process_image_bytes(imagegen.animated_gif()).data)
    r, g, b = img.getpixel((80, 60))
    assert r > 230 and g < 30 and b < 30


def test_downscale_longer_side_and_no_upscale():
    big = ci.process_image_bytes(imagegen.jpeg(1500, 1000, seed=5))
    assert (big.width, big.height) == (512, 341) and (big.orig_width, big.orig_height) == (1500, 1000)
    tall = ci.process_image_bytes(imagegen.png(300, 900, seed=6), max_side=256)
    assert (tall.width, tall.height) == (85, 256)
    small = ci.process_image_bytes(imagegen.png(300, 200, seed=7))
    assert (small.width, small.height) == (300, 200)
    # the downscaled copy looks like the original (JPEG draft decoding keeps quality)
    ref = imagegen.scene(1500, 1000, seed=5).resize((512, 341), Image.Resampling.LANCZOS)
    diff = np.abs(np.asarray(_decode(big.data), dtype=float) - np.asarray(ref, dtype=float)).mean()
    assert diff < 6


def test_hashes_and_shas_describe_the_stored_copy():
    data = imagegen.jpeg(800, 600, seed=8)
    res = ci.process_image_bytes(data)
    assert res.orig_sha256 == hashlib.sha256(data).hexdigest() and res.orig_size == len(data)
    assert res.orig_format == "JPEG" and res.hash_version == HASH_VERSION
    assert (res.phash, res.dhash) == hashes_of_file(res.data)   # what `fid dedup` computes from the store
    assert 0 <= res.phash < 2**64 and 0 <= res.dhash < 2**64
    again = ci.process_image_bytes(data)
    assert again.sha256 == res.sha256  # deterministic: the same bytes are the same image


def test_results_pickle_and_run_in_a_process_pool():
    cases = [f() for f, _ in imagegen.BAD_CASES.values()]
    inline = [ci.process_image_bytes(d) for d in cases]
    with ci.image_pool(2) as pool:
        pooled = list(pool.map(ci.process_image_bytes, cases))
    assert [pickle.loads(pickle.dumps(r)) for r in inline] == pooled


# ---- the store ------------------------------------------------------------------------------------

def test_store_paths_atomic_writes_and_no_temp_files(tmp_path):
    store = ImageStore(tmp_path / "store")
    data = imagegen.jpeg(200, 150)
    sha = hashlib.sha256(data).hexdigest()
    rel = store.put(data, sha)
    assert rel == f"{sha[:2]}/{sha}.jpg" == ImageStore.path_for(sha) == store.rel_path(sha)
    assert store.exists(rel) and store.read_bytes(rel) == data and store.abs_path(rel).is_file()
    with store.open(rel) as fh:
        assert fh.read() == data
    assert store.put(data, sha) == rel   # content-addressed: idempotent
    with pytest.raises(TypeError):       # a failing write leaves no temp file and no partial file
        store.put("not bytes", "ab" * 32)
    assert not store.exists(ImageStore.path_for("ab" * 32))
    assert store.temp_files() == []
    for bad in ("xyz", "g" * 64):
        with pytest.raises(StoreError):
            store.path_for(bad)
    with pytest.raises(StoreError):
        store.abs_path("../outside.jpg")


def test_a_new_store_has_one_folder_level_and_says_so(tmp_path):
    root = tmp_path / "store"
    store = ImageStore(root)
    data = imagegen.jpeg(120, 90, seed=3)
    sha = hashlib.sha256(data).hexdigest()
    assert store.put(data, sha) == f"{sha[:2]}/{sha}.jpg"
    assert (root / ".fid-store").read_text() == "fid image store\nlevels = 1\n"
    assert sorted(p.name for p in root.iterdir()) == [".fid-store", sha[:2]]
    assert store.temp_files() == []
    assert ImageStore(root).levels == 1 and pickle.loads(pickle.dumps(store)).levels == 1


def test_a_store_written_before_the_marker_keeps_two_levels(tmp_path):
    """Stores from before 2026-11-27 have ab/cd/ folders and no marker: new files go there too."""
    root = tmp_path / "store"
    old = b"old image" * 40
    old_sha = hashlib.sha256(old).hexdigest()
    old_rel = f"{old_sha[:2]}/{old_sha[2:4]}/{old_sha}.jpg"
    (root / old_rel).parent.mkdir(parents=True)
    (root / old_rel).write_bytes(old)
    store = ImageStore(root)
    assert store.levels == 2 and store.put(old, old_sha) == old_rel  # found where it is, not copied
    new = b"new image" * 40
    new_sha = hashlib.sha256(new).hexdigest()
    assert store.put(new, new_sha) == f"{new_sha[:2]}/{new_sha[2:4]}/{new_sha}.jpg"
    assert (root / ".fid-store").read_text() == "fid image store\nlevels = 2\n"
    assert ImageStore(root).levels == 2
    assert ImageStore(root, levels=1).rel_path(new_sha) == f"{new_sha[:2]}/{new_sha}.jpg"


def test_a_bad_store_marker_is_a_one_line_error(tmp_path):
    (tmp_path / ".fid-store").write_text("levels = 3\n")
    with pytest.raises(StoreError, match=r"cannot read the store layout in .*\.fid-store; expected a line "
                                         r"'levels = 1' or 'levels = 2'"):
        ImageStore(tmp_path).put(b"x", "ab" * 32)
    with pytest.raises(StoreError, match="store folder levels must be 1 or 2; got 3"):
        ImageStore(tmp_path, levels=3)


def test_keep_original(tmp_path):
    store = ImageStore(tmp_path)
    data = imagegen.png(700, 500, seed=9)
    res = ci.process_image_bytes(data, keep_original=True)
    rel = ci.store_processed(store, res)
    assert rel == res.store_path and store.read_bytes(rel) == res.data
    assert res.orig_path.startswith("originals/") and res.orig_path.endswith(".png")
    assert store.read_bytes(res.orig_path) == data


def test_store_files_are_0644_whatever_the_umask_and_never_rewritten(tmp_path):
    store = ImageStore(tmp_path / "store")
    data = imagegen.jpeg(200, 150, seed=5)
    sha = hashlib.sha256(data).hexdigest()
    old = os.umask(0o077)
    try:
        rel = store.put(data, sha)
    finally:
        os.umask(old)
    path = store.abs_path(rel)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    before = path.stat()
    assert store.put(data, sha) == rel  # already there: not written again
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_store_steps_over_temp_files_a_killed_writer_left(tmp_path):
    """Temp names are sha-pid-counter: a dead process with the same pid may have left the next ones."""
    from curation import store as store_mod

    store = ImageStore(tmp_path / "store")
    data = b"payload" * 50
    sha = hashlib.sha256(data).hexdigest()
    folder = store.abs_path(ImageStore.path_for(sha)).parent
    folder.mkdir(parents=True)
    n = next(store_mod._TMP_SEQ)
    stale = [folder / f"{store_mod.TMP_PREFIX}{sha[:16]}-{os.getpid()}-{n + i}" for i in (1, 2, 3)]
    for p in stale:
        p.write_bytes(b"partial")
    rel = store.put(data, sha)
    assert store.read_bytes(rel) == data
    assert store.temp_files() == sorted(stale)  # left for `fid doctor`, untouched
    assert all(p.read_bytes() == b"partial" for p in stale)


def test_catalog_row_is_every_field_but_the_bytes(tmp_path):
    for data in (imagegen.jpeg(300, 200, seed=3), imagegen.png(700, 500, seed=4)):  # fast path, normalised
        res = ci.process_image_bytes(data, keep_original=True)
        with pytest.raises(ValueError):
            res.catalog_row()
        stored = ci.process_and_store(data, tmp_path / "store", keep_original=True)
        assert stored.data is None and stored.original is None and stored.orig_path.startswith("originals/")
        row = stored.catalog_row()
        expected = dataclasses.asdict(stored)
        del expected["data"], expected["original"]
        assert list(row.items()) == list(expected.items())
        assert row["sha256"] == res.sha256 and row["phash"] == res.phash and row["hash_version"] == HASH_VERSION


def test_allowed_formats_are_those_of_a_full_pillow_init():
    Image.init()
    assert ci.ALLOWED_FORMATS == tuple(f for f in ci._WANTED_FORMATS if f in Image.OPEN)
    assert {"JPEG", "PNG", "GIF", "WEBP", "TIFF"} <= set(ci.ALLOWED_FORMATS)


# ---- catalog side -----------------------------------------------------------------------------------

def test_record_images_dedups_and_keeps_64bit_hashes(catalog):
    store = catalog.settings.store
    a = ci.process_and_store(imagegen.jpeg(300, 200, seed=11), store)
    b = ci.process_and_store(imagegen.jpeg(300, 200, seed=12), store)
    assert a.data is None and ImageStore(store).exists(a.store_path)  # written by the worker
    big = 2**64 - 3  # top bit set: overflows a signed 64-bit column unless converted
    a.phash = big
    items = [{"url": f"https://img{i}.example.org/a.jpg", "source": "test", "clade": "Trilobite"} for i in range(4)]
    with catalog.session() as s:
        urls = ensure_urls_and_sightings(s, items)
        ids = [urls[it["url"]]["id"] for it in items]
        res = record_images(s, [{"url_id": ids[0], **a.catalog_row()}, {"url_id": ids[1], **a.catalog_row()},
                                {"url_id": ids[2], **b.catalog_row(), "http_status": 200}])
        record_failures(s, [{"url_id": ids[3], "status": "http_404", "error_message": "not found",
                             "http_status": 404}])
    assert (res["stored"], res["duplicate"], res["images_added"]) == (2, 1, 2)
    assert res["image_id"][ids[0]] == res["image_id"][ids[1]] != res["image_id"][ids[2]]
    with catalog.session() as s:
        rows = {u.id: u for u in s.scalars(select(Url))}
        assert [rows[i].status for i in ids] == ["stored", "duplicate", "stored", "http_404"]
        assert rows[ids[3]].error_message == "not found" and rows[ids[3]].http_status == 404
        assert all(rows[i].attempts == 1 and rows[i].last_attempt_at for i in ids)
        img = s.scalars(select(ImageRow).where(ImageRow.sha256 == a.sha256)).one()
        assert img.phash == big and img.dhash == a.dhash and img.hash_version == HASH_VERSION
    # recording the same again: nothing new, statuses kept
    with catalog.session() as s:
        again = record_images(s, [{"url_id": ids[0], **a.catalog_row()}])
        assert again["status"][ids[0]] == "stored" and again["images_added"] == 0
        assert s.scalar(select(func.count()).select_from(ImageRow)) == 2


def test_record_failures_rejects_unknown_status_and_changes_nothing(catalog):
    with catalog.session() as s:
        uid = ensure_urls_and_sightings(s, [{"url": "https://a.example.org/x.jpg"}])["https://a.example.org/x.jpg"]["id"]
    with pytest.raises(CatalogWriteError, match="unknown URL status 'broken'"):
        with catalog.session() as s:
            record_failures(s, [{"url_id": uid, "status": "not_image", "error_message": "x"},
                                {"url_id": uid, "status": "broken", "error_message": "y"}])
    with catalog.session() as s:
        u = s.get(Url, uid)
        assert (u.status, u.attempts) == ("pending", 0)


# ---- `fid import images` ------------------------------------------------------------------------------

def _tree(root, n_trilobites=34):
    (root / "trilobite").mkdir(parents=True)
    (root / "AMMONOID").mkdir()
    for i in range(n_trilobites):
        (root / "trilobite" / f"t{i:02d}.jpg").write_bytes(imagegen.jpeg(200, 150, seed=100 + i))
    (root / "AMMONOID" / "same_as_t00.jpg").write_bytes(imagegen.jpeg(200, 150, seed=100))
    for name, (factory, _) in imagegen.BAD_CASES.items():
        (root / "AMMONOID" / f"{name}.jpg").write_bytes(factory())
    (root / "AMMONOID" / "notes.txt").write_text("not an image")
    return root


def _counts(catalog):
    with catalog.session() as s:
        return {m.__tablename__: s.scalar(select(func.count()).select_from(m)) for m in (Url, Sighting, ImageRow)}


def test_import_images_tree(catalog, tmp_path):
    root = _tree(tmp_path / "photos")
    store = ImageStore(catalog.settings.store)
    res = ci.import_image_folder(catalog, store.root, root, processes=2)
    n_bad = sum(1 for _, e in imagegen.BAD_CASES.values() if e)
    n_good = len(imagegen.BAD_CASES) - n_bad
    assert res["files"] == 34 + 1 + len(imagegen.BAD_CASES) and res["skipped"] == 1
    assert res["stored"] == 34 + n_good and res["duplicate"] == 1
    want = {}
    for _, e in imagegen.BAD_CASES.values():
        if e:
            want[e] = want.get(e, 0) + 1
    assert res["rejected"] == want
    assert res["per_clade"] == {"Trilobite": 34, "Ammonoid": 1 + len(imagegen.BAD_CASES)}
    with catalog.session() as s:
        by_name = {u.url.rsplit("/", 1)[1]: u for u in s.scalars(select(Url))}
        for name, (_, expected) in imagegen.BAD_CASES.items():
            u = by_name[f"{name}.jpg"]
            assert u.status == (expected or "stored") and u.url.startswith("file:///")
            assert (u.image_id is None) == bool(expected)
        # the same bytes in two clades: one image, two URLs, sightings under both clades
        t00, dup = by_name["t00.jpg"], by_name["same_as_t00.jpg"]
        assert t00.image_id == dup.image_id and {t00.status, dup.status} == {"stored", "duplicate"}
        clades = set(s.scalars(select(Sighting.clade).where(Sighting.url_id.in_([t00.id, dup.id]))))
        assert clades == {"Trilobite", "Ammonoid"}
        assert set(s.scalars(select(Sighting.source))) == {"local"}
        run = s.get(Run, res["run_id"])
        assert (run.kind, run.status, run.counts["stored"]) == ("import_images", "done", res["stored"])
        for img in s.scalars(select(ImageRow)):   # every row points at a whole file
            assert hashlib.sha256(store.read_bytes(img.store_path)).hexdigest() == img.sha256
            assert phash_file(store.abs_path(img.store_path)) == img.phash
    assert store.temp_files() == []
    before = _counts(catalog)
    again = ci.import_image_folder(catalog, store.root, root, processes=1)
    assert again["stored"] == again["duplicate"] == 0 and again["already_imported"] == 34 + 1 + n_good
    assert _counts(catalog) == before


def test_import_images_flat_and_bad_folders(catalog, tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(3):
        (flat / f"p{i}.png").write_bytes(imagegen.png(160, 120, seed=200 + i))
    res = ci.import_image_folder(catalog, catalog.settings.store, flat, clade="crinoid", processes=1)
    assert (res["stored"], res["per_clade"]) == (3, {"Crinoid": 3})

    before = _counts(catalog)
    bad = tmp_path / "bad"
    (bad / "Trilobite").mkdir(parents=True)
    (bad / "Trilobites").mkdir()
    (bad / "Trilobite" / "a.jpg").write_bytes(imagegen.jpeg(200, 150))
    from dataset_db.errors import FidError

    with pytest.raises(FidError, match=r"unknown clade folder in .*'Trilobites'; .*Trilobite"):
        ci.import_image_folder(catalog, catalog.settings.store, bad)
    with pytest.raises(FidError, match="unknown clade 'Trilobites'"):
        ci.import_image_folder(catalog, catalog.settings.store, flat, clade="Trilobites")
    with pytest.raises(FidError, match="no sub-folders"):
        ci.import_image_folder(catalog, catalog.settings.store, flat)
    assert _counts(catalog) == before
    with catalog.session() as s:
        assert s.scalar(select(func.count()).select_from(Run)) == 1


def test_cli_import_images(cli, fid_env):
    root = fid_env / "photos"
    (root / "Trilobite").mkdir(parents=True)
    for i in range(3):
        (root / "Trilobite" / f"t{i}.jpg").write_bytes(imagegen.jpeg(200, 150, seed=300 + i))
    (root / "Trilobite" / "page.jpg").write_bytes(imagegen.html_page())
    r = cli("import", "images", root, "-j", "1")
    assert r.exit_code == 0, r.output
    assert "stored (new images)" in r.output and "rejected: not_image" in r.output
    r = cli("import", "images", root, "--json", "-j", "1")
    out = json.loads(r.output)
    assert out["already_imported"] == 3 and out["stored"] == 0 and out["rejected"] == {"not_image": 1}
    st_out = json.loads(cli("status", "--json").output)
    assert st_out["totals"]["images"] == 3 and st_out["totals"]["urls"] == 4

    (root / "Nonsense").mkdir()
    r = cli("import", "images", root)
    assert r.exit_code != 0
    line = r.output.strip()
    assert "\n" not in line and "'Nonsense'" in line and "Trilobite" in line
