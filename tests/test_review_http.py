"""The review app over HTTP (Flask's test client): CSRF, traversal, tokens, the JSON API, CLI."""

from __future__ import annotations

import json
import threading

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from curation.review.app import check_bind, create_app
from curation.review_cli import review
from dataset_db import repo_review as rr
from dataset_db.models import Decision, ReviewState
from review_helpers import add_group, add_image


@pytest.fixture
def store(catalog):
    p = catalog.settings.store
    p.mkdir(parents=True, exist_ok=True)
    return p


@pytest.fixture
def client(catalog, store, tmp_path):
    app = create_app(catalog, store, thumbs=tmp_path / "thumbs")
    app.testing = True
    return app.test_client()


def csrf(client, headers=None):
    r = client.get("/api/session", headers=headers or {})
    assert r.status_code == 200
    return r.get_json()["csrf"]


def post(client, url, payload, token=None, headers=None):
    h = {"X-CSRF-Token": token} if token else {}
    h.update(headers or {})
    return client.post(url, data=json.dumps(payload), content_type="application/json", headers=h)


def test_decisions_need_csrf(client, catalog, store):
    img = add_image(catalog, store)
    payload = {"image_id": img, "reviewer": "ann", "decision": "accept"}
    assert post(client, "/api/decisions", payload).status_code == 403
    assert post(client, "/api/decisions", payload, token="forged").status_code == 403
    assert post(client, "/api/undo", {"reviewer": "ann"}).status_code == 403
    with catalog.session() as s:
        assert s.scalar(select(func.count()).select_from(Decision)) == 0
    r = post(client, "/api/decisions", payload, token=csrf(client))
    assert r.status_code == 201 and r.get_json()["state"]["status"] == "accepted"


def test_api_flow(client, catalog, store):
    imgs = [add_image(catalog, store, "Ammonoid", size=(300, 200), orig_size=(1500, 1000)) for _ in range(3)]
    other = add_image(catalog, store, "Bivalve")
    add_group(catalog, [imgs[2], other], conflict=True, clades=["Ammonoid", "Bivalve"])
    tok = csrf(client)
    counts = client.get("/api/queues?reviewer=ann").get_json()
    assert counts["unreviewed"]["clades"] == {"Ammonoid": 3, "Bivalve": 1} and counts["conflicts"] == 2
    page = client.get("/api/queue/unreviewed?reviewer=ann&clade=Ammonoid&limit=2").get_json()["items"]
    assert [i["id"] for i in page] == imgs[:2] and page[0]["orig_width"] == 1500
    # bob does not get ann's leased images
    bob = client.get("/api/queue/unreviewed?reviewer=bob&clade=Ammonoid").get_json()["items"]
    assert [i["id"] for i in bob] == [imgs[2]]
    r = post(client, "/api/decisions", {"image_id": imgs[0], "reviewer": "ann", "decision": "crop",
                                         "crop": [100, 50, 1400, 900]}, tok)
    assert r.status_code == 201
    r = post(client, "/api/decisions", {"image_id": imgs[0], "reviewer": "ann", "decision": "crop",
                                         "crop": [100, 50, 1600, 900]}, tok)
    assert r.status_code == 400 and "outside image" in r.get_json()["error"]
    r = post(client, "/api/decisions", {"image_id": imgs[1], "reviewer": "ann", "decision": "relabel",
                                         "clade": "Dragon"}, tok)
    assert r.status_code == 400 and "unknown clade" in r.get_json()["error"]
    assert post(client, "/api/decisions", {"image_id": 99999, "reviewer": "ann", "decision": "accept"},
                tok).status_code == 404
    r = post(client, "/api/decisions/bulk", {"image_ids": [imgs[1], other], "reviewer": "ann",
                                              "decision": "reject", "reason": "poor_quality"}, tok)
    assert r.status_code == 201 and len(r.get_json()["results"]) == 2
    r = post(client, "/api/undo", {"reviewer": "ann"}, tok)       # latest: the bulk reject of `other`
    assert r.status_code == 201 and r.get_json()["decision"]["image_id"] == other
    detail = client.get(f"/api/images/{imgs[0]}").get_json()
    assert detail["state"]["crop"] == [100, 50, 1400, 900]
    assert detail["sightings"][0]["source"] == "gbif" and "store_path" not in detail
    with catalog.session() as s:
        assert s.get(ReviewState, imgs[1]).reason == "poor_quality"
        assert s.get(ReviewState, other).status == "unreviewed"
        assert rr.check_review_state(s) == []
    assert client.get("/api/clades").get_json()["clades"][0] == "Agnatha"


def test_pages_render(client, catalog, store):
    img = add_image(catalog, store, "Ammonoid")
    add_image(catalog, store, "Bivalve")
    r = client.get("/")
    assert r.status_code == 200 and b"Unreviewed: Ammonoid" in r.data
    client.set_cookie("fid_reviewer", "ann")
    r = client.get("/queue/unreviewed?clade=Ammonoid")
    assert r.status_code == 200 and f'data-id="{img}"'.encode() in r.data
    r = client.get(f"/image/{img}")
    assert r.status_code == 200 and b"images.example.org" in r.data and b"clade-list" in r.data
    assert client.get("/queue/bogus").status_code == 404
    assert client.get("/image/424242").status_code == 404


def test_images_and_thumbnails_by_id_only(client, catalog, store, tmp_path):
    img = add_image(catalog, store, size=(640, 480))
    r = client.get(f"/img/{img}")
    assert r.status_code == 200 and r.data[:2] == b"\xff\xd8"
    r = client.get(f"/thumb/{img}")
    assert r.status_code == 200 and r.mimetype == "image/jpeg"
    from PIL import Image
    import io
    assert max(Image.open(io.BytesIO(r.data)).size) == 256
    assert len(list((tmp_path / "thumbs").rglob("*.jpg"))) == 1       # cached
    assert client.get(f"/thumb/{img}").status_code == 200
    secret = tmp_path / "secret.txt"
    secret.write_text("do not serve")
    for path in ["/img/../../etc/passwd", "/img/..%2F..%2Fetc%2Fpasswd", "/img/%2Fetc%2Fpasswd",
                 "/thumb/..%252F..%252Fsecret.txt", "/img//etc/passwd", f"/img/{secret}",
                 "/static/../../../../etc/passwd", "/static/..%2F..%2Fapp.py", "/img/-1", "/img/999999"]:
        r = client.get(path)
        assert r.status_code == 404, path
        assert b"do not serve" not in r.data and b"root:" not in r.data


def test_store_path_escaping_the_store_is_refused(client, catalog, store, tmp_path):
    """A catalog row pointing outside the store (corrupt or hostile) is not served either."""
    img = add_image(catalog, store)
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(b"\xff\xd8 not in the store")
    from dataset_db.models import Image as ImageRow
    with catalog.session() as s:
        s.get(ImageRow, img).store_path = "../outside.jpg"
    assert client.get(f"/img/{img}").status_code == 404
    with catalog.session() as s:
        s.get(ImageRow, img).store_path = str(outside)
    assert client.get(f"/img/{img}").status_code == 404


def test_token_required_off_loopback(catalog, store, tmp_path):
    with pytest.raises(rr.ReviewError, match="refusing to serve on 0.0.0.0 without an access token"):
        check_bind("0.0.0.0", None)
    with pytest.raises(rr.ReviewError):
        create_app(catalog, store, host="192.168.1.5")
    check_bind("127.0.0.1", None)
    check_bind("::1", None)
    app = create_app(catalog, store, host="0.0.0.0", token="s3cret", thumbs=tmp_path / "t")
    c = app.test_client()
    assert c.get("/api/queues").status_code == 401
    assert c.get("/").status_code == 401
    assert c.get("/api/queues", headers={"Authorization": "Bearer wrong"}).status_code == 401
    h = {"Authorization": "Bearer s3cret"}
    assert c.get("/api/queues", headers=h).status_code == 200
    img = add_image(catalog, store)
    tok = csrf(c, h)
    assert post(c, "/api/decisions", {"image_id": img, "reviewer": "x", "decision": "accept"}, tok).status_code == 401
    assert post(c, "/api/decisions", {"image_id": img, "reviewer": "x", "decision": "accept"}, tok,
                headers=h).status_code == 201
    c2 = app.test_client()     # a browser: ?token= once, then the session remembers it
    assert c2.get("/?token=s3cret").status_code == 302
    assert c2.get("/").status_code == 200


def test_body_size_limit(client, catalog, store):
    tok = csrf(client)
    big = {"image_ids": list(range(1, 60000)), "reviewer": "ann", "decision": "accept"}
    r = post(client, "/api/decisions/bulk", big, tok)
    assert r.status_code == 413


def test_concurrent_http_reviewers(catalog, store, tmp_path):
    """Several reviewers posting at once through the app: nothing fails, nothing is lost."""
    app = create_app(catalog, store, thumbs=tmp_path / "thumbs")
    imgs = [add_image(catalog, store, write_file=False) for _ in range(40)]
    errors, per, n = [], 15, 6
    barrier = threading.Barrier(n)

    def reviewer(r):
        c = app.test_client()
        tok = csrf(c)
        name = f"r{r}"
        seen = set()
        barrier.wait()
        for k in range(per):
            items = c.get(f"/api/queue/unreviewed?reviewer={name}&limit=2").get_json()["items"]
            seen.update(i["id"] for i in items)
            target = items[0]["id"] if items else imgs[(k + r) % len(imgs)]
            kind = "accept" if k % 2 else "reject"
            resp = post(c, "/api/decisions", {"image_id": target, "reviewer": name, "decision": kind,
                                               "reason": "other" if kind == "reject" else None}, tok)
            if resp.status_code != 201:
                errors.append(resp.get_data(as_text=True))
        leased[name] = seen

    leased: dict = {}
    threads = [threading.Thread(target=reviewer, args=(r,)) for r in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    every = [i for ids in leased.values() for i in ids]
    assert len(every) == len(set(every)), "an image was handed to two reviewers"
    with catalog.session() as s:
        assert s.scalar(select(func.count()).select_from(Decision)) == n * per
        assert rr.check_review_state(s) == []


def test_cli_rules_undo_and_csv(catalog, store, tmp_path):
    imgs = [add_image(catalog, store, source="gbif", url=f"https://api.gbif.org/cli{i}.jpg") for i in range(2)]
    spam = add_image(catalog, store, source="bing", url="https://stock.example.com/x.jpg")
    runner = CliRunner()
    db = ["--db", catalog.url, "--store", str(store)]

    def run(*args):
        res = runner.invoke(review, [*args, *db], catch_exceptions=False)
        return res

    r = run("auto-accept", "--source", "gbif")
    assert r.exit_code == 0 and "2 images accepted" in r.output and "auto:source=gbif" in r.output
    r = run("bulk-reject", "--domain", "example.com", "--reason", "watermark_or_text")
    assert r.exit_code == 0 and "1 images rejected" in r.output
    r = run("auto-accept")
    assert r.exit_code != 0 and "at least one of" in r.output
    r = run("undo", "--reviewer", "auto:source=gbif", "--by", "ann")
    assert r.exit_code == 0 and "2 decisions undone" in r.output
    out = tmp_path / "decisions.csv"
    r = run("export-decisions", str(out))
    assert r.exit_code == 0 and "wrote 5 decisions" in r.output
    r = run("import-decisions", str(out))
    assert r.exit_code == 0 and "imported 0 decisions" in r.output and "5 already present" in r.output
    with catalog.session() as s:
        assert s.get(ReviewState, imgs[0]).status == "unreviewed"
        assert s.get(ReviewState, spam).reason == "watermark_or_text"
    r = run("serve", "--host", "0.0.0.0")
    assert r.exit_code != 0 and "refusing to serve on 0.0.0.0" in r.output
    assert len(r.output.strip().splitlines()) == 1
