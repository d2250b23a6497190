"""Spiders against the source emulators (real Scrapy crawls on 127.0.0.x, each in a fresh process),
plus the small pure parts: licences, Baidu's objURL, Google's script extraction, --engine-url."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from crawler.emulators import EmulatorSet, baidu_encode
from crawler.licenses import normalise_license
from crawler.middlewares import retry_after_seconds
from crawler.settings import ENGINES, EngineUrlError, UnknownEngineError, parse_engine_urls
from crawler.spiders.baidu import decode_objurl
from crawler.spiders.google import extract_image_urls

REPO = Path(__file__).resolve().parents[1]
PAGE = 4  # small pages so every source pages several times


def fid(*args, cwd, timeout=90):
    """`fid ARGS` in a fresh process (Twisted's reactor cannot restart in one process)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FID_")}
    env["FID_CONTACT"] = "tests@example.org"
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run([sys.executable, "-m", "crawler.runner", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def sample(emu, tmp_path, keyword, engines=ENGINES, max_items=9, taxon=None):
    args = ["sample-source", "--keyword", keyword, "--engines", ",".join(engines), "--max", max_items, "--json",
            "--timeout", 5, "--set", "FID_PAGE_SIZES=" + json.dumps({e: PAGE for e in ENGINES}),
            "--set", "DOWNLOAD_SLOTS={}"]
    if taxon:
        args += ["--taxon", taxon]
    for u in emu.engine_urls():
        args += ["--engine-url", u]
    r = fid(*args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout), r.stderr


@pytest.fixture(scope="module")
def emu():
    with EmulatorSet(seed=7, n_hosts=2, total_per_keyword=11, page_sizes={"duckduckgo": PAGE, "google": PAGE},
                     broken=("brokenword",)) as e:
        yield e


# ---- real crawls -------------------------------------------------------------------------------

def test_every_spider_pages_to_the_limit_and_yields_what_the_source_lists(emu, tmp_path):
    res, _ = sample(emu, tmp_path, "trilobita", max_items=9)
    by_source = {}
    for it in res["items"]:
        by_source.setdefault(it["source"], []).append(it)
    for source in ENGINES:
        want = emu.entries(source, "trilobita")[:9]
        got = by_source.get(source, [])
        assert [i["image_url"] for i in got] == [e.url for e in want], source
        assert all(i["keyword"] == "trilobita" and i["clade"] == "unassigned" for i in got)
        row = next(r for r in res["rows"] if r["source"] == source)
        assert row["items"] == 9 and row["parse_errors"] == 0, row
        assert row["pages"] >= 3, row  # 9 results in pages of 4: paging happened and stopped at the limit
        if source in ("gbif", "idigbio", "wikimedia"):
            assert [i["license"] for i in got] == [e.licence for e in want], source
            assert all(i["record"] for i in got)
            assert [i["rights_holder"] for i in got] == [e.rights_holder for e in want], source
        if source in ("bing", "duckduckgo", "gbif"):
            assert [i["page_url"] for i in got] == [e.page_url for e in want], source
        if source in ("bing", "duckduckgo", "baidu", "wikimedia", "idigbio"):
            assert [(i["width"], i["height"]) for i in got] == [(e.width, e.height) for e in want], source
    gbif = by_source["gbif"][0]["record"]
    assert {"catalogNumber", "institutionCode", "locality"} <= set(gbif)


def test_sources_are_exhausted_before_the_limit(emu, tmp_path):
    res, _ = sample(emu, tmp_path, "crinoidea", engines=("bing", "gbif", "wikimedia"), max_items=50)
    for source in ("bing", "gbif", "wikimedia"):
        got = [i["image_url"] for i in res["items"] if i["source"] == source]
        assert got == [e.url for e in emu.entries(source, "crinoidea")], source  # all 11, then stop


def test_a_first_page_without_results_is_a_logged_parse_error(emu, tmp_path):
    engines = ("bing", "duckduckgo", "google", "baidu", "gbif")
    res, log = sample(emu, tmp_path, "brokenword", engines=engines)
    assert res["items"] == []
    for source in engines:
        row = next(r for r in res["rows"] if r["source"] == source)
        assert row["parse_errors"] >= 1, row
    assert "parse error on http://" in log


# ---- pure parts ---------------------------------------------------------------------------------

@pytest.mark.parametrize("raw,spdx", [
    ("http://creativecommons.org/licenses/by-nc/4.0/legalcode", "CC-BY-NC-4.0"),
    ("https://creativecommons.org/licenses/by/4.0/", "CC-BY-4.0"),
    ("http://creativecommons.org/publicdomain/zero/1.0/", "CC0-1.0"),
    ("https://creativecommons.org/publicdomain/mark/1.0/", "PDM"),
    ("CC_BY_NC_4_0", "CC-BY-NC-4.0"), ("CC0_1_0", "CC0-1.0"),
    ("CC BY-SA 4.0", "CC-BY-SA-4.0"), ("CC BY 2.5", "CC-BY-2.5"), ("Public domain", "PDM"), ("CC0", "CC0-1.0"),
    ("Creative Commons Attribution-NonCommercial-ShareAlike 3.0", "CC-BY-NC-SA-3.0"),
    ("CC BY-NC", "CC-BY-NC"), ("All rights reserved", "unknown"),
    ("", "unknown"), (None, "unknown"), ("see website", "unknown"),
])
def test_licences_normalise_to_spdx_style_ids(raw, spdx):
    assert normalise_license(raw) == spdx


def test_baidu_objurl_decoding():
    assert decode_objurl("ippr_z2C$qAzdH3FAzdH3Fkwthj_z&e3Bkwt17_z&e3Bv54") == "http://baike.baidu.com"
    url = "http://127.0.0.2:8080/img/ok/trilobita-0123456789ab.jpg?x=1"
    assert decode_objurl(baidu_encode(url)) == url


def test_google_extraction_unescapes_and_skips_google_hosts():
    html = ('<script>var a=["https://www.gstatic.com/x.png",["https://ex.org/a.jpg",10,20],'
            '"https://ex.org/b.webp?w\\u003d2\\u0026h\\u003d3","https://ex.org/a.jpg"]</script>'
            '<script>["http://ex.net/c.PNG"]</script>')
    assert extract_image_urls(html) == ["https://ex.org/a.jpg", "https://ex.org/b.webp?w=2&h=3", "http://ex.net/c.PNG"]


def test_engine_urls():
    got = parse_engine_urls(["bing=http://127.0.0.1:1/", "idigbio.media=http://127.0.0.3:2", "idigbio=http://h:3"])
    assert got == {"bing": {"search": "http://127.0.0.1:1"},
                   "idigbio": {"search": "http://h:3", "media": "http://h:3"}}
    assert parse_engine_urls(["idigbio.media=http://m:1"]) == {"idigbio": {"media": "http://m:1"}}
    with pytest.raises(UnknownEngineError, match="unknown engine 'bign'; choose from: bing, duckduckgo"):
        parse_engine_urls(["bign=http://x"])
    with pytest.raises(EngineUrlError, match="unknown role 'api' for engine 'idigbio'; choose from: search, media"):
        parse_engine_urls(["idigbio.api=http://x"])
    with pytest.raises(EngineUrlError, match="expected ENGINE=BASE_URL"):
        parse_engine_urls(["bing"])


def test_retry_after():
    assert retry_after_seconds(b"7") == 7.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert retry_after_seconds(b"soon") is None and retry_after_seconds(None) is None
