"""The offline sample source (crawler/emulators/sample.py, `fid sample-source serve`), its pictures
(crawler/emulators/fossils.py), the review API client (curation/review/client.py) and `fid report`
on a catalog that has nothing past the crawl yet."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from crawler.emulators import sample
from crawler.emulators.fossils import CLADE_DRAWERS, render_specimen
from crawler.emulators.imagegen import rng_for

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def http():
    s = requests.Session()
    s.trust_env = False
    yield s
    s.close()


def _histograms(tint=None, per_clade=60, side=96):
    X, y = [], []
    for ci, clade in enumerate(CLADE_DRAWERS):
        for i in range(per_clade):
            a = np.asarray(render_specimen(rng_for("hist", clade, i), CLADE_DRAWERS[clade], side, side), np.float32)
            if tint is not None and ci == tint:
                a = np.clip(a * np.array([1.2, 1.0, 0.85], np.float32), 0, 255)
            X.append(np.concatenate([np.histogram(a[..., k], bins=16, range=(0, 256))[0] / (side * side)
                                     for k in range(3)]))
            y.append(ci)
    return np.array(X), np.array(y)


def _cv_accuracy(X, y) -> float:
    pytest.importorskip("sklearn")
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
    return float(cross_val_score(clf, X, y, cv=StratifiedKFold(5, shuffle=True, random_state=0)).mean())


def test_colour_histograms_do_not_tell_the_clades_apart():
    chance = 1 / len(CLADE_DRAWERS)
    acc = _cv_accuracy(*_histograms())
    assert acc < chance + 0.12, f"a colour-histogram classifier reaches {acc:.2f} (chance {chance:.2f})"
    # control: the same classifier notices when one clade's palette is a little warmer than the rest
    tinted = _cv_accuracy(*_histograms(tint=0))
    assert tinted > acc + 0.1, (acc, tinted)


def test_every_query_of_the_six_clades_draws_its_clade():
    table = sample.label_table()
    queries = sample.clade_queries()
    assert set(queries) == set(sample.CLADES) == {"Ammonoid", "Trilobite", "Shark teeth", "Pteridophyte",
                                                  "Belemnite", "Starfish"}
    from crawler.emulators.plan import label_for

    for clade, per_engine in queries.items():
        assert per_engine["bing"], clade
        for eng, qs in per_engine.items():
            for q in qs:
                assert table[label_for(q)] == (clade, eng == "gbif"), q
    assert sample.pick(rng_for(0, "content", "zzz-000000000000"), "zzz").kind == "junk"


def test_collection_is_trusted_and_engine_has_junk_copies_and_wrong_labels():
    src = sample.SampleSource("small")
    picks = {"gbif": [], "bing": []}
    for clade, eng, e in _entries_without_start(src):
        p = sample.truth(e.url, src.seed)
        if p is not None and sample.label_of(sample.ident_of(e.url)) != sample.SHARED_LABEL:
            picks[eng].append((clade, p))
    assert picks["gbif"] and all(p.kind in ("specimen", "copy") and p.clade == c for c, p in picks["gbif"])
    kinds = {p.kind for _, p in picks["bing"]}
    assert {"specimen", "copy", "junk"} <= kinds
    assert any(p.clade != c and p.kind == "copy" for c, p in picks["bing"])  # a wrong label to relabel


def _entries_without_start(src):
    """The plan's entries need image-host addresses only to build URLs: use a plan on a dummy host."""
    from crawler.emulators.plan import Plan

    kw = sample.emulator_kwargs(src.size, src.seed)
    plan = Plan(["http://127.0.0.2:9"], seed=kw["seed"], total_per_keyword=kw["total_per_keyword"],
                totals=kw["totals"], tricky=kw["tricky"], tricky_every=kw["tricky_every"],
                shared_pool=kw["shared_pool"])
    for clade, per_engine in sample.clade_queries().items():
        for eng in sample.ENGINES:
            for q in per_engine[eng]:
                for e in plan.entries(eng, q):
                    yield clade, eng, e


def test_served_pictures_match_the_plan_and_the_answer_key(http):
    with sample.SampleSource("tiny") as src:
        assert set(src.base_urls) == {"bing", "gbif"}
        assert src.engine_urls == [f"bing={src.base_urls['bing']}", f"gbif={src.base_urls['gbif']}"]
        ok = [(c, e) for c, eng, e in src.entries() if e.kind == "ok"][:12]
        for _, e in ok:
            r = http.get(e.url, timeout=10)
            assert r.status_code == 200
            assert Image.open(io.BytesIO(r.content)).size == (e.width, e.height) == (128, 128)
        broken = [e for _, _, e in src.entries() if e.expected_status == "not_image"]
        assert broken and all(http.get(e.url, timeout=10).status_code == 200 for e in broken[:3])
        rows = sample.answer_key(src)
    assert rows
    for r in rows:
        p = sample.truth(r["url"], 0)
        if r["decision"] == "reject":
            assert (p.kind, r["reason"]) in (("junk", "not_fossil"), ("drawing", "drawing_or_reconstruction"))
        elif r["decision"] == "relabel":
            assert p.kind == "copy" and r["clade"] == p.clade
        else:
            assert r["decision"] == "crop" and p.kind == "specimen" and len(r["crop"].split(",")) == 4
    assert {r["decision"] for r in rows} == {"reject", "relabel", "crop"}


def test_serve_command_writes_urls_and_stops_on_sigterm(tmp_path, http):
    urls, info, answers = tmp_path / "urls.txt", tmp_path / "info.json", tmp_path / "answers.csv"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "dataset_db.cli", "sample-source", "serve", "--size", "tiny",
                             "--urls-file", str(urls), "--info-file", str(info), "--answers", str(answers)],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while not urls.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert urls.exists(), proc.stdout.read() if proc.poll() is not None else "no urls file"
        lines = urls.read_text().split("\n")
        assert [x.split("=")[0] for x in lines if x] == ["--engine-url bing", "--engine-url gbif"]
        meta = json.loads(info.read_text())
        assert meta["clades"] == list(sample.CLADES) and meta["answer_rows"] > 0
        bing = meta["base_urls"]["bing"]
        assert lines[0] == f"--engine-url bing={bing}" and bing.startswith("http://127.")
        r = http.get(f"{bing}/images/async", params={"q": "trilobite fossil", "first": 1, "count": 5}, timeout=10)
        assert r.status_code == 200 and r.text.count('class="iusc"') == 5
        assert answers.read_text().startswith("url,decision,reason,clade,crop,note")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out


def test_old_sample_source_form_still_means_probe(cli):
    res = cli("sample-source", "--keyword", "trilobite", "--help")
    assert res.exit_code == 0 and "Run sources for one keyword" in res.output
    res = cli("sample-source", "serve", "--size", "huge")
    assert res.exit_code == 2 and "huge" in res.output


# ---- the review API client -----------------------------------------------------------------------


@pytest.fixture
def review_server(catalog, tmp_path):
    from werkzeug.serving import make_server

    sys.path.insert(0, str(Path(__file__).parent))
    from review_helpers import add_image

    from curation.review.app import create_app

    store = catalog.settings.store
    store.mkdir(parents=True, exist_ok=True)
    ids = [add_image(catalog, store, "Ammonoid", size=(400, 300), source="bing",
                     url=f"http://127.0.0.2:1/img/ok/x-{i}.jpg") for i in range(5)]
    srv = make_server("127.0.0.1", 0, create_app(catalog, store, thumbs=tmp_path / "thumbs"), threaded=True)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_port}", catalog, ids
    srv.shutdown()


def _states(cat, ids):
    from dataset_db import repo_review as rr

    with cat.session() as s:
        return {i: rr.image_state(s, i) for i in ids}


def test_client_posts_a_csv_by_id_and_by_url(review_server, tmp_path):
    from curation.review.client import ReviewClient, main, post_decisions, read_decisions

    base, cat, ids = review_server
    f = tmp_path / "decisions.csv"
    f.write_text("image_id,url,decision,reason,clade,crop,note\n"
                 f"{ids[0]},,reject,not_fossil,,,junk\n"
                 f",http://127.0.0.2:1/img/ok/x-1.jpg,relabel,,Trilobite,,\n"
                 f",http://127.0.0.2:1/img/ok/x-2.jpg,crop,,,\"10,20,300,250\",\n"
                 f"{ids[3]},,accept,,,,\n"
                 f",http://127.0.0.2:1/img/ok/missing.jpg,accept,,,,\n", encoding="utf-8")
    assert main(["--server", base, "--reviewer", "script", "--json", str(f)]) == 0
    st = _states(cat, ids)
    assert st[ids[0]]["status"] == "rejected" and st[ids[0]]["reason"] == "not_fossil"
    assert st[ids[1]]["clade"] == "Trilobite"
    assert st[ids[2]]["crop"] == [10, 20, 300, 250]
    assert st[ids[3]]["status"] == "accepted" and st[ids[4]]["status"] == "unreviewed"
    # a refused decision is reported, not fatal; the rest still go through
    with ReviewClient(base, "script2") as rc:
        res = post_decisions(rc, [{"image_id": ids[4], "decision": "relabel", "clade": "Nonexistent"},
                                  {"image_id": ids[4], "decision": "reject", "reason": "poor_quality"}])
    assert res.posted == 1 and len(res.errors) == 1 and "Nonexistent" in res.errors[0]
    bad = tmp_path / "bad.csv"
    bad.write_text("image_id,decision\n1,maybe\n", encoding="utf-8")
    with pytest.raises(Exception, match=r"line 2: decision 'maybe'; choose from"):
        read_decisions(bad)
    assert main(["--server", "http://127.0.0.1:9", "--reviewer", "x", str(f)]) == 2


# ---- fid report on a catalog with nothing past the crawl -----------------------------------------


def test_report_degrades_gracefully(catalog, tmp_path):
    sys.path.insert(0, str(Path(__file__).parent))
    from review_helpers import add_image

    from curation.report import build_report

    store = catalog.settings.store
    store.mkdir(parents=True, exist_ok=True)
    add_image(catalog, store, "Trilobite", source="bing")
    res = build_report(catalog, store, tmp_path / "report")
    html = (tmp_path / "report" / "index.html").read_text()
    assert res["catalog"]["totals"]["images"] == 1 and res["catalog"]["clades"]["Trilobite"]["images"] == 1
    present = {k for k, v in res["sections"].items() if v["present"]}
    assert present == {"catalog", "crawl"}
    for text in ("No training run yet", "No export yet", "No evaluation yet", "No duplicate search yet",
                 "No review decisions yet", "No Grad-CAM pictures yet", "No suspects yet"):
        assert text in html
    assert json.loads((tmp_path / "report" / "report.json").read_text())["crawl"]["statuses"] == {"stored": 1}
