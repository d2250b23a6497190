"""Review repository: decisions + current state in one transaction, rebuild, undo, leases, races.

Every test runs on SQLite and PostgreSQL (the ``catalog`` fixture)."""

from __future__ import annotations

import io
import threading

import pytest
from sqlalchemy import func, select

from dataset_db import repo_review as rr
from dataset_db.errors import FidError, UnknownCladeError
from dataset_db.models import Decision, ReviewLease, ReviewState
from review_helpers import add_group, add_image


def _store(cat):
    p = cat.settings.store
    p.mkdir(parents=True, exist_ok=True)
    return p


def _decide(cat, *a, **kw):
    return rr.run_in_transaction(cat, rr.record_decision, *a, **kw)


def test_decision_and_state_written_together(catalog):
    img = add_image(catalog, _store(catalog), orig_size=(1600, 1200))
    res = _decide(catalog, img, "ann", "reject", reason="poor_quality")
    assert res["state"]["status"] == "rejected" and res["state"]["reason"] == "poor_quality"
    _decide(catalog, img, "bob", "relabel", clade="bivalve")   # case-insensitive, catalog spelling kept
    _decide(catalog, img, "bob", "crop", crop=[10, 20, 1600, 1200])
    with catalog.session() as s:
        row = s.get(ReviewState, img)
        assert (row.status, row.clade, row.reason, row.reviewer) == ("accepted", "Bivalve", None, "bob")
        assert (row.crop_x0, row.crop_y0, row.crop_x1, row.crop_y1) == (10, 20, 1600, 1200)
        assert s.scalar(select(func.count()).select_from(Decision)) == 3
        assert rr.check_review_state(s) == []


@pytest.mark.parametrize("kw, msg", [
    ({"decision": "reject", "reason": "ugly"}, "invalid reject reason"),
    ({"decision": "reject"}, "invalid reject reason"),
    ({"decision": "relabel", "clade": "Dragon"}, "unknown clade"),
    ({"decision": "crop", "crop": [0, 0, 401, 10]}, "outside image"),
    ({"decision": "crop", "crop": [50, 50, 40, 60]}, "outside image"),
    ({"decision": "crop", "crop": [0, 0, "x", 1]}, "invalid crop"),
    ({"decision": "approve"}, "unknown decision"),
    ({"decision": "accept", "reason": "other"}, "only given with reject"),
])
def test_invalid_decisions_leave_catalog_unchanged(catalog, kw, msg):
    img = add_image(catalog, _store(catalog), size=(200, 100), orig_size=(400, 300))
    kw = dict(kw)
    kind = kw.pop("decision")
    with pytest.raises(FidError, match=msg):
        _decide(catalog, img, "ann", kind, **kw)
    with catalog.session() as s:
        assert s.scalar(select(func.count()).select_from(Decision)) == 0
        assert s.scalar(select(func.count()).select_from(ReviewState)) == 0
    with pytest.raises(rr.NotFoundError):
        _decide(catalog, img + 999, "ann", "accept")
    with pytest.raises(rr.ReviewError, match="reviewer"):
        _decide(catalog, img, "  ", "accept")


def test_undo_appends_and_restores(catalog):
    img = add_image(catalog, _store(catalog))
    a = _decide(catalog, img, "ann", "relabel", clade="Bivalve")["decision"]["id"]
    b = _decide(catalog, img, "ann", "reject", reason="watermark_or_text")["decision"]["id"]
    with pytest.raises(rr.ReviewError, match="not the latest"):
        rr.run_in_transaction(catalog, rr.undo_decision, a, "ann")
    u1 = rr.run_in_transaction(catalog, rr.undo_decision, b, "ann")
    assert u1["state"]["status"] == "accepted" and u1["state"]["clade"] == "Bivalve"
    assert u1["decision"]["undoes_id"] == b
    u2 = rr.run_in_transaction(catalog, rr.undo_decision, u1["decision"]["id"], "ann")   # redo
    assert u2["state"]["status"] == "rejected" and u2["state"]["reason"] == "watermark_or_text"
    with catalog.session() as s:
        assert rr.last_decision_of(s, "ann", img) == u2["decision"]["id"]
    rr.run_in_transaction(catalog, rr.undo_decision, u2["decision"]["id"], "ann")
    with catalog.session() as s:
        kinds = [d.decision for d in s.scalars(select(Decision).order_by(Decision.id))]
        assert len(kinds) == 5   # history only grows
        assert rr.check_review_state(s) == []
        assert s.get(ReviewState, img).status == "accepted"


def test_undo_first_decision_returns_to_unreviewed(catalog):
    img = add_image(catalog, _store(catalog))
    a = _decide(catalog, img, "ann", "accept")["decision"]["id"]
    u = rr.run_in_transaction(catalog, rr.undo_decision, a, "ann")
    assert u["state"]["status"] == "unreviewed" and u["decision"]["decision"] == "reset"
    with catalog.session() as s:
        assert rr.queue_ids(s, "unreviewed", "bob") == [img]
        assert rr.check_review_state(s) == []


def test_rebuild_and_check_detect_drift(catalog):
    store = _store(catalog)
    imgs = [add_image(catalog, store) for _ in range(4)]
    _decide(catalog, imgs[0], "ann", "accept")
    _decide(catalog, imgs[1], "ann", "reject", reason="not_fossil")
    _decide(catalog, imgs[2], "ann", "crop", crop=[1, 1, 100, 100])
    _decide(catalog, imgs[2], "bob", "reset")
    with catalog.session() as s:
        assert rr.check_review_state(s) == []
        s.get(ReviewState, imgs[0]).status = "rejected"          # simulate drift
        s.delete(s.get(ReviewState, imgs[1]))
    with catalog.session() as s:
        diffs = rr.check_review_state(s)
        assert sorted(d["image_id"] for d in diffs) == [imgs[0], imgs[1]]
        assert rr.rebuild_review_state(s) == 3
    with catalog.session() as s:
        assert rr.check_review_state(s) == []
        assert s.get(ReviewState, imgs[2]).status == "unreviewed"


def test_queues_and_counts(catalog):
    store = _store(catalog)
    amm = [add_image(catalog, store, "Ammonoid") for _ in range(3)]
    biv = add_image(catalog, store, "Bivalve")
    c1, c2 = add_image(catalog, store, "Ammonoid"), add_image(catalog, store, "Bivalve")
    add_group(catalog, [c1, c2], conflict=True, clades=["Ammonoid", "Bivalve"])
    _decide(catalog, amm[0], "ann", "reject", reason="replica_or_cast")
    _decide(catalog, amm[1], "ann", "relabel", clade="Brachiopod")
    with catalog.session() as s:
        assert rr.queue_ids(s, "unreviewed", "bob", clade="Ammonoid") == [amm[2], c1]
        assert rr.queue_ids(s, "conflicts", "bob") == [c1, c2]
        assert rr.queue_ids(s, "second", "bob") == [amm[0], amm[1]]
        assert rr.queue_ids(s, "second", "ann") == []
        assert rr.queue_ids(s, "suspects", "bob") == []
        counts = rr.queue_counts(s, "bob")
    assert counts["unreviewed"]["clades"] == {"Ammonoid": 2, "Bivalve": 2}
    assert counts["unreviewed"]["total"] == 4 and counts["conflicts"] == 2 and counts["second"] == 2
    _decide(catalog, amm[0], "bob", "accept")
    with catalog.session() as s:
        assert rr.queue_ids(s, "second", "bob") == [amm[1]]
        assert rr.queue_ids(s, "unreviewed", "bob", clade="Bivalve") == [biv, c2]
    with pytest.raises(UnknownCladeError):
        rr.run_in_transaction(catalog, rr.claim_queue, "unreviewed", "bob", clade="Dragon")
    with pytest.raises(rr.ReviewError, match="unknown queue"):
        rr.run_in_transaction(catalog, rr.claim_queue, "nope", "bob")


def test_leases_exclude_other_reviewers(catalog):
    store = _store(catalog)
    imgs = [add_image(catalog, store) for _ in range(6)]
    a = rr.run_in_transaction(catalog, rr.claim_queue, "unreviewed", "ann", limit=4)
    b = rr.run_in_transaction(catalog, rr.claim_queue, "unreviewed", "bob", limit=4)
    assert a == imgs[:4] and b == imgs[4:]
    assert rr.run_in_transaction(catalog, rr.claim_queue, "unreviewed", "ann", limit=4) == imgs[:4]  # renewed
    _decide(catalog, imgs[0], "ann", "accept")     # a decision releases the reviewer's lease
    with catalog.session() as s:
        assert s.get(ReviewLease, imgs[0]) is None
        rr.release_leases(s, "ann")
    assert rr.run_in_transaction(catalog, rr.claim_queue, "unreviewed", "bob", limit=10) == imgs[1:]
    # expired leases are taken over
    with catalog.session() as s:
        rr.release_leases(s, "bob")
        assert rr.lease_images(s, "cy", [imgs[1], imgs[2]], seconds=-1) == [imgs[1], imgs[2]]
        assert rr.lease_images(s, "cy", [imgs[3]]) == [imgs[3]]
    assert rr.run_in_transaction(catalog, rr.claim_queue, "unreviewed", "dee", limit=10) == [
        imgs[1], imgs[2], *imgs[4:]]


def test_concurrent_claims_never_double_assign(catalog):
    store = _store(catalog)
    imgs = [add_image(catalog, store, write_file=False) for _ in range(60)]
    got: dict[str, list[int]] = {}
    errors = []
    barrier = threading.Barrier(6)

    def reviewer(name):
        try:
            barrier.wait()
            mine = []
            for _ in range(3):
                mine += rr.run_in_transaction(catalog, rr.claim_queue, "unreviewed", name, limit=5)
            got[name] = mine
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=reviewer, args=(f"r{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    everyone = [i for ids in got.values() for i in set(ids)]
    assert len(everyone) == len(set(everyone)), "an image was leased to two reviewers"
    assert set(everyone) <= set(imgs) and len(everyone) >= 30


def _race(catalog, reviewers: int, per_reviewer: int, n_images: int):
    store = _store(catalog)
    imgs = [add_image(catalog, store, write_file=False, orig_size=(500, 400)) for _ in range(n_images)]
    errors, done = [], []
    barrier = threading.Barrier(reviewers)

    def run(r):
        name = f"rev{r}"
        try:
            barrier.wait()
            for k in range(per_reviewer):
                img = imgs[(k * 7 + r) % len(imgs)]   # reviewers collide on the same images
                kind = ("accept", "reject", "relabel", "crop", "reset")[(k + r) % 5]
                kw = {"reject": {"reason": "other"}, "relabel": {"clade": "Bivalve"},
                      "crop": {"crop": [r, k % 50, 400, 300]}}.get(kind, {})
                done.append(_decide(catalog, img, name, kind, **kw)["decision"]["id"])
        except Exception as exc:  # noqa: BLE001
            errors.append(repr(exc))

    threads = [threading.Thread(target=run, args=(r,)) for r in range(reviewers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with catalog.session() as s:
        assert s.scalar(select(func.count()).select_from(Decision)) == reviewers * per_reviewer == len(set(done))
        assert rr.check_review_state(s) == []


def test_concurrent_decisions_are_not_lost(catalog):
    _race(catalog, reviewers=8, per_reviewer=25, n_images=10)


@pytest.mark.slow
def test_concurrent_decisions_full_size(catalog):
    """The issue's figure: 8 reviewers x 500 decisions."""
    _race(catalog, reviewers=8, per_reviewer=500, n_images=200)


def test_auto_accept_bulk_reject_and_undo(catalog):
    store = _store(catalog)
    trusted = [add_image(catalog, store, source="gbif", url=f"https://api.gbif.org/x{i}.jpg") for i in range(3)]
    other = add_image(catalog, store, source="bing", url="https://cdn.shop.example.com/a.jpg")
    conflicted = add_image(catalog, store, source="gbif", url="https://api.gbif.org/c.jpg")
    partner = add_image(catalog, store, "Bivalve", source="bing")
    add_group(catalog, [conflicted, partner], conflict=True)
    _decide(catalog, trusted[2], "ann", "reject", reason="poor_quality")   # a curator's word wins
    with pytest.raises(rr.ReviewError, match="at least one"):
        rr.auto_accept(catalog, rr.Rule())
    dry = rr.auto_accept(catalog, rr.Rule(sources=("gbif",)), dry_run=True)
    assert dry["matched"] == trusted[:2] and dry["changed"] == []
    res = rr.auto_accept(catalog, rr.Rule(sources=("gbif",), domains=("gbif.org",)))
    assert res["reviewer"] == "auto:source=gbif;domain=gbif.org"
    assert sorted(c["decision"]["image_id"] for c in res["changed"]) == trusted[:2]
    rej = rr.bulk_reject(catalog, rr.Rule(domains=("example.com",)), reason="watermark_or_text")
    assert [c["decision"]["image_id"] for c in rej["changed"]] == [other]
    # the second run changes nothing
    assert rr.auto_accept(catalog, rr.Rule(sources=("gbif",), domains=("gbif.org",)))["changed"] == []
    _decide(catalog, trusted[1], "bob", "reject", reason="other")      # superseded: not undone
    und = rr.undo_reviewer(catalog, res["reviewer"], by="ann")
    assert [u["decision"]["image_id"] for u in und["undone"]] == [trusted[0]] and und["superseded"] == 1
    with catalog.session() as s:
        assert s.get(ReviewState, trusted[0]).status == "unreviewed"
        assert s.get(ReviewState, trusted[1]).status == "rejected"
        assert s.get(ReviewState, conflicted) is None
        assert rr.check_review_state(s) == []


def test_export_import_round_trip(catalog, tmp_path):
    store = _store(catalog)
    imgs = [add_image(catalog, store) for _ in range(3)]
    _decide(catalog, imgs[0], "ann", "relabel", clade="Bivalve")
    d = _decide(catalog, imgs[1], "ann", "crop", crop=[0, 0, 50, 60])["decision"]["id"]
    rr.run_in_transaction(catalog, rr.undo_decision, d, "ann")
    buf = io.StringIO()
    with catalog.session() as s:
        assert rr.export_decisions(s, buf) == 3
    text = buf.getvalue()
    with catalog.session() as s:      # importing the same file again changes nothing
        assert rr.import_decisions(s, io.StringIO(text)) == {"added": 0, "skipped": 3}
    extra = text + f",{imgs[2]},,carl,reject,several_clades,,,,,,offline,,\n"
    bad = extra + ",99999,,carl,accept,,,,,,,,,\n"
    with pytest.raises(rr.ReviewError, match="line 6"):
        with catalog.session() as s:
            rr.import_decisions(s, io.StringIO(bad))
    with catalog.session() as s:
        assert s.scalar(select(func.count()).select_from(Decision)) == 3     # unchanged
        assert rr.import_decisions(s, io.StringIO(extra)) == {"added": 1, "skipped": 3}
    with catalog.session() as s:
        assert s.get(ReviewState, imgs[2]).reason == "several_clades"
        assert rr.check_review_state(s) == []
