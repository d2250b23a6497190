"""`make demo` end to end at a small size (the sample source's `small` plan, a few epochs): every
artefact of the report exists, its numbers match the catalog, and it renders in headless Chromium
without console errors (screenshot: test-artifacts/report.png)."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
SECTIONS = ("catalog", "crawl", "duplicates", "review", "export", "training", "metrics", "confusion", "roc",
            "gradcam", "embedding", "suspects")


def _fid(project: Path, *args) -> str:
    fid = Path(sys.executable).parent / "fid"
    res = subprocess.run([str(fid), *args], cwd=project, capture_output=True, text=True, timeout=300,
                         env={k: v for k, v in os.environ.items() if not k.startswith("FID_")})
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    if shutil.which("make") is None:
        pytest.skip("needs make")
    out = tmp_path_factory.mktemp("demo")
    venv = Path(sys.executable).parent.parent
    env = {k: v for k, v in os.environ.items() if not k.startswith("FID_")}
    res = subprocess.run(["make", "--no-print-directory", "demo-run", "DEMO_SIZE=small", "DEMO_EPOCHS=3",
                          f"DEMO_DIR={out}", f"VENV={venv}"], cwd=ROOT, capture_output=True, text=True,
                         timeout=900, env=env)
    assert res.returncode == 0, (res.stdout[-6000:], res.stderr[-4000:])
    return out, res.stdout


@pytest.mark.slow
def test_demo_prints_where_to_look(demo):
    out, stdout = demo
    assert f"report: {out}/report/index.html" in stdout
    assert re.search(r"test top-1 [01]\.\d{3}, top-3 [01]\.\d{3} on \d+ test images", stdout)
    assert f"cd {out}/project && fid review serve" in stdout
    assert "decisions posted as demo-curator" in stdout


@pytest.mark.slow
def test_every_report_artefact_exists(demo):
    out, _ = demo
    rep = out / "report"
    data = json.loads((rep / "report.json").read_text())
    assert [k for k in SECTIONS if not data["sections"][k]["present"]] == []
    html = (rep / "index.html").read_text()
    srcs = re.findall(r'<img src="([^"]+)"', html)
    links = re.findall(r'<a href="([^"#]+)"', html)
    assert srcs and all(not s.startswith(("/", "http:", "https:", "file:")) for s in srcs + links)
    assert all((rep / s).is_file() for s in srcs + links), [s for s in srcs + links if not (rep / s).is_file()]
    assert sorted(set(data["pictures"])) == sorted({s for s in srcs + links})
    for name in ("curves.png", "confusion_matrix.png", "roc.png", "embedding.png", "DATASHEET.md"):
        assert (rep / "img" / name).is_file(), name
    assert {"Ammonoid.png", "Trilobite.png", "Starfish.png"} <= set(data["gradcam"]["files"])
    for sid in SECTIONS:  # every section says in one sentence what it shows
        m = re.search(rf'<section id="{sid}"[^>]*><h2>[^<]+</h2><p class="what">([^<]+)</p>', html)
        assert m and m.group(1).count(". ") == 0 and m.group(1).endswith("."), sid


@pytest.mark.slow
def test_report_numbers_match_the_catalog(demo):
    out, _ = demo
    project = out / "project"
    data = json.loads((out / "report" / "report.json").read_text())
    status = json.loads(_fid(project, "status", "--json"))
    assert data["catalog"]["totals"] == status["totals"]
    for row in status["clades"]:
        if row["urls"] or row["images"]:
            assert data["catalog"]["clades"][row["clade"]] == {k: v for k, v in row.items() if k != "clade"}
    assert set(data["catalog"]["clades"]) == {"Ammonoid", "Trilobite", "Shark teeth", "Pteridophyte", "Belemnite",
                                              "Starfish"}
    # crawl outcomes: every URL once, the same buckets as fid status
    st = data["crawl"]["statuses"]
    assert sum(st.values()) == status["totals"]["urls"]
    assert st.get("stored", 0) == status["totals"]["images"]
    assert {"not_image", "duplicate", "http_404"} <= set(st)  # broken files and copies were served
    # duplicates and conflicts
    assert data["duplicates"]["groups"] > 0 and data["duplicates"]["conflicts"] > 0
    # review: the scripted curator's decisions and the rule's accepts
    rev = data["review"]
    _fid(project, "review", "export-decisions", str(out / "history.csv"))
    with (out / "history.csv").open(newline="") as fh:
        history = list(csv.DictReader(fh))
    assert rev["decisions"]["total"] == len(history)
    assert {"accept", "reject", "relabel", "crop"} <= set(rev["decisions"]["by_decision"])
    assert set(rev["reject_reasons"]) >= {"not_fossil"}
    # export datasheet = the export's catalog rows
    ds = json.loads((project / "exports" / "demo" / "datasheet.json").read_text())
    assert data["export"]["datasheet"]["per_clade"] == ds["per_clade"]
    with (project / "exports" / "demo" / "manifest.csv").open(newline="") as fh:
        manifest = list(csv.DictReader(fh))
    assert sum(r["total"] for r in ds["per_clade"]) == len(manifest)
    # evaluation = the model folder's metrics, and the page shows the same headline
    metrics = json.loads((project / "runs" / "demo" / "eval-test" / "metrics.json").read_text())
    ev = data["evaluation"]
    assert (ev["top1"], ev["top3"], ev["n"]) == (metrics["top1"], metrics["top3"], metrics["n"])
    assert ev["n"] == ds["counts"]["test"]
    html = (out / "report" / "index.html").read_text()
    assert f'<b id="top1">{metrics["top1"]:.3f}</b>' in html and f'<b id="top3">{metrics["top3"]:.3f}</b>' in html
    assert f'<b id="n-test">{metrics["n"]:,}</b>' in html
    assert data["training"]["epochs"] == 3 and data["training"]["export"] == "demo"
    # suspects shown are the catalog's top suspects of that run
    assert data["suspects"]["shown"] and all(s["given_clade"] != s["predicted_clade"]
                                             for s in data["suspects"]["shown"])
    scores = [s["score"] for s in data["suspects"]["shown"]]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.slow
def test_report_renders_in_chromium(demo, browser):
    out, _ = demo
    errors: list[str] = []
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto((out / "report" / "index.html").as_uri())
    page.wait_for_load_state("load")
    broken = page.evaluate("[...document.images].filter(i => !(i.complete && i.naturalWidth > 0))"
                           ".map(i => i.getAttribute('src'))")
    n_images = page.evaluate("document.images.length")
    headline = page.inner_text("#top1")
    page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
    assert errors == []
    assert broken == [] and n_images > 10
    assert all(u.startswith("file://") for u in requests), [u for u in requests if not u.startswith("file://")]
    assert re.fullmatch(r"[01]\.\d{3}", headline)
    assert (ARTIFACTS / "report.png").stat().st_size > 50_000
