"""The source emulators answer in each source's documented format, page and exhaust, and every bad
image route does what it claims. Everything runs on 127.0.0.0/8."""

from __future__ import annotations

import html
import io
import json
import re
import subprocess
import sys
import time
from collections import Counter
from urllib.parse import urljoin, urlsplit

import numpy as np
import pytest
import requests
from PIL import Image, ImageOps

from crawler.emulators import (
    DEFAULT_TRICKY, SLOW_KINDS, EmulatorError, EmulatorSet, baidu_decode, baidu_encode, bindable,
)
from dataset_db import status as st

UA = "fid/0.1 (+https://github.com/fid-project/fid; tests@example.org)"
KW = "Trilobita fossil"
TOTAL = 45


@pytest.fixture(scope="module")
def emu():
    with EmulatorSet(seed=7, n_hosts=3, total_per_keyword=TOTAL, slow_delay=0.6,
                     totals={"nothing": 0}, broken=["changed layout"]) as e:
        yield e


@pytest.fixture(scope="module")
def http():
    s = requests.Session()
    s.trust_env = False  # never a proxy: loopback only
    s.headers["User-Agent"] = UA
    yield s
    s.close()


def _loopback(url: str) -> bool:
    return (urlsplit(url).hostname or "").startswith("127.")


def _all_loopback(emu):
    urls = [u for k, u in emu.base_urls.items() if k != "images"] + emu.base_urls["images"]
    return all(_loopback(u) for u in urls)


def _img(body: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(body))
    im.load()
    return im


# --------------------------------------------------------------------------- set-up


def test_servers_bind_loopback_only_and_hosts_are_distinct(emu, http):
    assert _all_loopback(emu)
    hosts = emu.base_urls["images"]
    assert len(hosts) == 3
    if bindable("127.0.0.3"):
        assert emu.distinct_addresses
        assert len({urlsplit(h).hostname for h in hosts}) == 3
        assert {urlsplit(h).hostname for h in hosts} == {"127.0.0.2", "127.0.0.3", "127.0.0.4"}
    # the same path gives the same bytes on every host; robots.txt on each disallows /private/
    bodies = {http.get(f"{h}/img/ok/probe-000000000001.jpg").content for h in hosts}
    assert len(bodies) == 1
    for h in hosts:
        r = http.get(f"{h}/robots.txt")
        assert r.status_code == 200 and "Disallow: /private/" in r.text
    assert {r.base for r in emu.requests_to("images")} == set(hosts)


def test_every_entry_points_at_an_image_host_and_has_a_known_status(emu):
    hosts = set(emu.base_urls["images"])
    for source in emu.sources():
        for e in emu.entries(source, KW):
            assert f"{urlsplit(e.url).scheme}://{urlsplit(e.url).netloc}" in hosts
            assert e.expected_status == emu.expected_status(e.url)
            st.lookup(e.expected_status)  # raises on a name outside the shared vocabulary
    assert emu.entries("bing", "nothing") == []
    with pytest.raises(EmulatorError, match="unknown source 'bign'"):
        emu.entries("bign", KW)


def test_plan_is_deterministic_per_seed_and_covers_every_tricky_kind():
    with EmulatorSet(seed=3, n_hosts=2, total_per_keyword=len(DEFAULT_TRICKY) * 3) as a:
        ea = a.entries("gbif", "Ammonoidea")
        assert {e.kind for e in ea} >= set(DEFAULT_TRICKY)
        paths_a = [e.path for e in ea]
    with EmulatorSet(seed=3, n_hosts=2, total_per_keyword=len(DEFAULT_TRICKY) * 3) as b:
        assert [e.path for e in b.entries("gbif", "ammonoidea")] == paths_a  # case-insensitive keyword
    with EmulatorSet(seed=4, n_hosts=2, total_per_keyword=10) as c:
        assert [e.path for e in c.entries("gbif", "Ammonoidea")] != paths_a[:10]


def test_bad_configuration_is_a_one_line_error():
    with pytest.raises(EmulatorError, match="unknown entry kind 'nope'"):
        EmulatorSet(tricky=["nope"])
    with pytest.raises(EmulatorError, match="n_hosts=0"):
        EmulatorSet(n_hosts=0)


# --------------------------------------------------------------------------- search engines


def _bing_page(http, emu, q, first, count=35):
    r = http.get(f"{emu.base_urls['bing']}/images/async", params={"q": q, "first": first, "count": count,
                                                                 "async": 1})
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    metas = [json.loads(html.unescape(m)) for m in re.findall(r'<a class="iusc"[^>]* m="([^"]+)"', r.text)]
    sizes = re.findall(r'<span class="nowrap">(\d+) \u00d7 (\d+)', r.text)
    return metas, sizes


def test_bing_pages_until_exhausted(emu, http):
    got, first = [], 1
    while True:
        metas, sizes = _bing_page(http, emu, KW, first)
        if not metas:
            break
        assert len(sizes) == len(metas)
        got += metas
        first += len(metas)
    plan = emu.entries("bing", KW)
    assert [m["murl"] for m in got] == [e.url for e in plan]
    assert [m["purl"] for m in got] == [e.page_url for e in plan]
    assert len(got) == TOTAL and first == TOTAL + 1
    # extensions vary: a ".jpg only" regex would lose results
    assert {urlsplit(m["murl"]).path.rsplit(".", 1)[-1] for m in got} >= {"jpg", "png", "webp"}
    metas, sizes = _bing_page(http, emu, KW, 1, 5)
    assert [(int(w), int(h)) for w, h in sizes] == [(e.width, e.height) for e in plan[:5]]
    thumb = http.get(metas[0]["turl"])
    assert thumb.status_code == 200 and max(_img(thumb.content).size) <= 120
    assert _bing_page(http, emu, "changed layout", 1)[0] == []


def test_duckduckgo_token_then_json_pages(emu, http):
    base = emu.base_urls["duckduckgo"]
    page = http.get(f"{base}/", params={"q": KW})
    vqd = re.search(r'vqd="([\d-]+)"', page.text).group(1)
    assert f"vqd={vqd}&" in page.text
    params = {"o": "json", "q": KW, "l": "us-en", "vqd": vqd, "p": "1", "f": "size:Large,type:photo"}
    assert http.get(f"{base}/i.js", params={**params, "vqd": "4-1"},
                    headers={"Referer": base + "/"}).status_code == 403
    assert http.get(f"{base}/i.js", params=params).status_code == 403  # no Referer
    got, url, pages = [], f"{base}/i.js", 0
    first = http.get(url, params=params, headers={"Referer": base + "/"})
    data = first.json()
    while True:
        pages += 1
        got += data["results"]
        if "next" not in data:
            break
        data = http.get(urljoin(base + "/", data["next"]), headers={"Referer": base + "/"}).json()
    plan = emu.entries("duckduckgo", KW)
    assert [r["image"] for r in got] == [e.url for e in plan]
    assert {"title", "image", "thumbnail", "url", "height", "width", "source"} <= set(got[0])
    # 45 results, 100 per page: one page, no "next"
    assert pages == 1
    with EmulatorSet(seed=7, n_hosts=1, total_per_keyword=230) as big:
        b = big.base_urls["duckduckgo"]
        p = {"o": "json", "q": "x", "vqd": big.vqd("x"), "p": "1"}
        seen, data, n = [], http.get(f"{b}/i.js", params=p, headers={"Referer": b}).json(), 1
        while "next" in data:
            seen += data["results"]
            data = http.get(urljoin(b + "/", data["next"]), headers={"Referer": b}).json()
            n += 1
        seen += data["results"]
        assert n == 3 and [r["image"] for r in seen] == [e.url for e in big.entries("duckduckgo", "x")]


_G_URL = re.compile(r'\["(http[^"]+?)",(\d+),(\d+)\]')


def _google_urls(text: str) -> list[tuple[str, int, int]]:
    out = []
    for u, h, w in _G_URL.findall(text):
        u = u.encode().decode("unicode_escape")
        if "tbn:" not in u:
            out.append((u, int(w), int(h)))
    return out


def test_google_embeds_escaped_urls_in_scripts(emu, http):
    base = emu.base_urls["google"]
    got, ijn = [], 0
    while True:
        r = http.get(f"{base}/search", params={"q": KW, "tbm": "isch", "ijn": ijn})
        assert "AF_initDataCallback" in r.text
        urls = _google_urls(r.text)
        if not urls:
            break
        got += urls
        ijn += 1
    plan = emu.entries("google", KW)
    assert [u for u, _, _ in got] == [e.url for e in plan]
    assert [(w, h) for _, w, h in got] == [(e.width, e.height) for e in plan]
    assert ijn == 3  # 45 results, 20 per page
    r = http.get(f"{base}/search", params={"q": KW, "tbm": "isch", "start": 40})
    assert "\\u003d" in r.text and "\\u0026" in r.text  # query strings arrive escaped
    assert [u for u, _, _ in _google_urls(r.text)] == [e.url for e in plan[40:]]


def test_baidu_obfuscated_objurl_with_fallbacks(emu, http):
    assert baidu_decode("ippr_z2C$qAzdH3FAzdH3Fkwthj_z&e3Bkwt17_z&e3Bv54") == "http://baike.baidu.com"
    for e in emu.entries("baidu", KW)[:5]:
        assert baidu_decode(baidu_encode(e.url)) == e.url
    base = emu.base_urls["baidu"]
    got, pn, fallbacks = [], 0, 0
    while True:
        r = http.get(f"{base}/search/acjson", params={"tn": "resultjson_com", "ipn": "rj", "word": KW,
                                                      "pn": pn, "rn": 30},
                     headers={"Accept-Language": "zh-CN"})
        data = r.json()["data"]
        assert data[-1] == {}
        if len(data) == 1:
            break
        for d in data[:-1]:
            u = baidu_decode(d["objURL"]) if "objURL" in d else ""
            if not u.startswith("http"):
                u = d["hoverURL"]
                fallbacks += 1
            got.append(u)
        pn += 30
    assert got == [e.url for e in emu.entries("baidu", KW)]
    assert fallbacks >= 2 and pn == 60
    assert "antiFlag" in http.get(f"{base}/search/acjson", params={"word": KW}).json()


# --------------------------------------------------------------------------- open collections


_LICENCE_IDS = {
    "creativecommons.org/licenses/by/4.0": "CC-BY-4.0", "creativecommons.org/licenses/by-nc/4.0": "CC-BY-NC-4.0",
    "creativecommons.org/licenses/by-sa/4.0": "CC-BY-SA-4.0", "creativecommons.org/publicdomain/zero/1.0": "CC0-1.0",
    "creativecommons.org/publicdomain/mark/1.0": "PDM",
}


def _lic(url: str) -> str:
    key = re.sub(r"^https?://", "", url).replace("/legalcode", "").rstrip("/")
    return _LICENCE_IDS[key]


def test_gbif_match_then_occurrence_pages(emu, http):
    base = emu.base_urls["gbif"]
    m = http.get(f"{base}/v1/species/match", params={"name": "Trilobita"}).json()
    assert m["matchType"] == "EXACT" and m["rank"] == "CLASS" and m["usageKey"] == emu.gbif_taxon_key("trilobita")
    assert http.get(f"{base}/v1/species/match", params={"name": "Nosuch 2"}).json()["matchType"] == "NONE"
    got, offset = [], 0
    while True:
        d = http.get(f"{base}/v1/occurrence/search", params={
            "basisOfRecord": "FOSSIL_SPECIMEN", "mediaType": "StillImage", "taxonKey": m["usageKey"],
            "limit": 20, "offset": offset}).json()
        assert d["count"] == TOTAL and d["offset"] == offset
        got += d["results"]
        if d["endOfRecords"]:
            break
        offset += 20
    assert offset == 40
    plan = emu.entries("gbif", "trilobita")
    images = [[x for x in rec["media"] if x["type"] == "StillImage"] for rec in got]
    assert all(len(x) == 1 for x in images)
    assert [x[0]["identifier"] for x in images] == [e.url for e in plan]
    assert any(len(rec["media"]) > 1 for rec in got)  # non-image media to skip
    missing = 0
    for rec, (img,), e in zip(got, images, plan):
        assert rec["basisOfRecord"] == "FOSSIL_SPECIMEN" and rec["catalogNumber"] and rec["institutionCode"]
        lic = img.get("license") or rec["license"]
        missing += "license" not in img
        assert _lic(lic) == e.licence
    assert missing > 0  # some media fall back to the record's licence
    empty = http.get(f"{base}/v1/occurrence/search", params={"taxonKey": 42}).json()
    assert empty["count"] == 0 and empty["results"] == [] and empty["endOfRecords"]
    assert http.get(f"{base}/v1/occurrence/search", params={"taxonKey": 1, "offset": 200000}).status_code == 400


def test_idigbio_search_and_media_roles(emu, http):
    base = emu.base_urls["idigbio.search"]
    rq = json.dumps({"basisofrecord": "fossilspecimen", "class": "trilobita"})
    got, offset = [], 0
    while True:
        d = http.get(f"{base}/v2/search/media/", params={"rq": rq, "limit": 20, "offset": offset}).json()
        assert d["itemCount"] == TOTAL
        if not d["items"]:
            break
        got += d["items"]
        offset += 20
    plan = emu.entries("idigbio", "trilobita")
    assert [i["indexTerms"]["accessuri"] for i in got] == [e.url for e in plan]
    assert [i["data"]["ac:accessURI"] for i in got] == [e.url for e in plan]
    assert [i["indexTerms"]["rights"] for i in got] == [e.licence_raw for e in plan]
    it = got[0]["indexTerms"]
    assert {"accessuri", "rights", "format", "xpixels", "ypixels", "records"} <= set(it)
    # the media role serves the same bytes as the access URI
    ok = next(e for e in plan if e.kind == "ok")
    assert ok.media_url.startswith(emu.base_urls["idigbio.media"])
    a, b = http.get(ok.media_url), http.get(ok.url)
    assert a.status_code == 200 and a.content == b.content
    assert emu.expected_status(ok.media_url) == "stored"
    bad = next(e for e in plan if e.expected_status == "not_image")
    assert emu.expected_status(bad.media_url) == "not_image"
    with pytest.raises(OSError):
        _img(http.get(bad.media_url).content)
    assert http.get(f"{emu.base_urls['idigbio.media']}/v2/media/{'0' * 8}-0000-0000-0000-{'0' * 12}").status_code == 404
    assert http.get(f"{base}/v2/search/media/", params={"rq": rq, "limit": 5000, "offset": 5001}).status_code == 400
    assert http.get(f"{base}/v2/search/media/", params={"rq": "{bad"}).status_code == 400


def test_wikimedia_continue_and_extmetadata(emu, http):
    base = emu.base_urls["wikimedia"]
    params = {"action": "query", "format": "json", "formatversion": "2", "generator": "search",
              "gsrsearch": f"{KW} filetype:bitmap", "gsrnamespace": "6", "gsrlimit": "20",
              "prop": "imageinfo", "iiprop": "url|size|mime|extmetadata", "iiurlwidth": "200"}
    assert http.get(f"{base}/w/api.php", params=params, headers={"User-Agent": "python-requests/2"}).status_code == 403
    pages, cont, calls = [], {}, 0
    while True:
        d = http.get(f"{base}/w/api.php", params={**params, **cont}).json()
        calls += 1
        pages += sorted(d["query"]["pages"], key=lambda p: p["index"])
        if "continue" not in d:
            break
        cont = d["continue"]
    assert calls == 3
    plan = emu.entries("wikimedia", KW)
    infos = [p["imageinfo"][0] for p in pages]
    assert [i["url"] for i in infos] == [e.url for e in plan]
    for p, i, e in zip(pages, infos, plan):
        assert p["title"].startswith("File:") and p["ns"] == 6
        md = i["extmetadata"]
        assert md["LicenseShortName"]["value"] == e.licence_raw
        assert re.sub(r"<[^>]+>", "", md["Artist"]["value"]) == e.rights_holder
        assert i["thumburl"] and i["thumbwidth"] <= 200 and (i["width"], i["height"]) == (e.width, e.height)
    assert any("<a " in i["extmetadata"]["Artist"]["value"] for i in infos)
    err = http.get(f"{base}/w/api.php", params={"action": "query", "format": "json", "generator": "search"}).json()
    assert err["error"]["code"] == "missingparam"


def test_rate_limited_source_sends_retry_after(http):
    with EmulatorSet(seed=1, n_hosts=1, total_per_keyword=5, rate_limit={"gbif": 2}, retry_after=2) as e:
        codes = [http.get(f"{e.base_urls['gbif']}/v1/occurrence/search", params={"q": "x"}) for _ in range(4)]
        assert [r.status_code for r in codes] == [200, 429, 200, 429]
        assert codes[1].headers["Retry-After"] == "2"


# --------------------------------------------------------------------------- image hosts


def _url(emu, path, host=0):
    return emu.base_urls["images"][host] + path


@pytest.mark.parametrize("path,mode,fmt", [
    ("/img/ok/t-000000000001.jpg", "RGB", "JPEG"),
    ("/img/ok/t-000000000001.png", "RGB", "PNG"),
    ("/img/ok/t-000000000001", "RGB", "JPEG"),
    ("/img/webp/t-000000000001.webp", "RGB", "WEBP"),
    ("/img/cmyk/t-000000000001.jpg", "CMYK", "JPEG"),
    ("/img/palette/t-000000000001.png", "P", "PNG"),
    ("/img/png16/t-000000000001.png", "I;16", "PNG"),
])
def test_good_variants_decode_with_the_claimed_mode(emu, http, path, mode, fmt):
    r = http.get(_url(emu, path))
    assert r.status_code == 200
    im = _img(r.content)
    assert (im.format, im.mode) == (fmt, mode)
    assert emu.expected_status(_url(emu, path)) == "stored"


def test_special_good_images(emu, http):
    ok = _img(http.get(_url(emu, "/img/ok/t-000000000002.jpg")).content)
    pal = _img(http.get(_url(emu, "/img/palette/t-000000000002.png")).content)
    assert "transparency" in pal.info
    png16 = http.get(_url(emu, "/img/png16/t-000000000002.png")).content
    assert png16[24] == 16  # IHDR bit depth
    gif = Image.open(io.BytesIO(http.get(_url(emu, "/img/gif/t-000000000002.gif")).content))
    assert gif.is_animated and gif.n_frames >= 2
    exif = _img(http.get(_url(emu, "/img/exif/t-000000000002.jpg")).content)
    assert exif.getexif()[0x0112] == 6 and exif.size == ok.size[::-1]
    upright = ImageOps.exif_transpose(exif)
    assert upright.size == ok.size
    small = [np.asarray(x.convert("L").resize((16, 16)), dtype=float) for x in (upright, ok)]
    diff = float(np.abs(small[0] - small[1]).mean())
    assert diff < 12  # same picture once the orientation is applied
    r = http.get(_url(emu, "/img/octet/t-000000000002"))
    assert r.headers["content-type"] == "application/octet-stream" and _img(r.content).format == "JPEG"
    for near in ("resized", "cropped", "recompressed"):
        b = http.get(_url(emu, f"/img/{near}/t-000000000002.jpg")).content
        assert b != http.get(_url(emu, "/img/ok/t-000000000002.jpg")).content and _img(b).format == "JPEG"


def test_bad_images_fail_as_claimed(emu, http):
    r = http.get(_url(emu, "/img/truncated/t-000000000003.jpg"))
    assert r.headers["content-type"] == "image/jpeg"
    im = Image.open(io.BytesIO(r.content))  # the header parses...
    with pytest.raises(OSError, match="truncated"):
        im.load()  # ...the pixels do not
    for kind, ext in (("html", "jpg"), ("empty", "jpg"), ("svg", "svg")):
        r = http.get(_url(emu, f"/img/{kind}/t-000000000003.{ext}"))
        assert r.status_code == 200 and r.headers["content-type"].startswith("image/")
        with pytest.raises(Image.UnidentifiedImageError):
            Image.open(io.BytesIO(r.content))
        assert emu.expected_status(r.url) == "not_image"
    assert http.get(_url(emu, "/img/empty/t-000000000003.jpg")).content == b""
    assert http.get(_url(emu, "/img/html/t-000000000003.jpg")).text.lstrip().startswith("<!DOCTYPE html>")
    bomb = http.get(_url(emu, "/img/bomb/t-000000000003.png")).content
    assert len(bomb) < 200_000
    assert int.from_bytes(bomb[16:20], "big") * int.from_bytes(bomb[20:24], "big") > 2 * Image.MAX_IMAGE_PIXELS
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(bomb))
    assert emu.expected_status(_url(emu, "/img/bomb/t-000000000003.png")) == "too_large"
    assert _img(http.get(_url(emu, "/img/tiny/t-000000000003.gif")).content).size == (1, 1)
    assert max(_img(http.get(_url(emu, "/img/small/t-000000000003.jpg")).content).size) < 64
    assert emu.expected_status(_url(emu, "/img/tiny/t-000000000003.gif")) == "too_small"


@pytest.mark.parametrize("code", [403, 404, 429, 500, 503])
def test_status_routes(emu, http, code):
    url = _url(emu, f"/status/{code}/t-000000000004.jpg")
    r = http.get(url)
    assert r.status_code == code
    assert ("Retry-After" in r.headers) == (code in (429, 503))
    assert emu.expected_status(url) == f"http_{code}"
    assert st.lookup(f"http_{code}").retryable == (code in st.RETRYABLE_HTTP)


def test_redirects_flaky_robots_noai(emu, http):
    r = http.get(_url(emu, "/redirect/t-000000000005.jpg"))
    assert r.history and r.url.endswith("/img/ok/t-000000000005.jpg") and _img(r.content)
    with pytest.raises(requests.TooManyRedirects):
        http.get(_url(emu, "/redirect-loop/t-000000000005.jpg"))
    first = http.get(_url(emu, "/redirect-loop/t-000000000005.jpg"), allow_redirects=False)
    second = http.get(urljoin(first.url, first.headers["Location"]), allow_redirects=False)
    assert urljoin(second.url, second.headers["Location"]) == first.url  # a true loop, two URLs
    assert emu.expected_status(first.url) == "redirect_loop"
    flaky = _url(emu, "/flaky/2/t-000000000005.jpg", host=1)
    codes = [http.get(flaky) for _ in range(3)]
    assert [c.status_code for c in codes] == [429, 429, 200] and codes[0].headers["Retry-After"] == "1"
    assert emu.expected_status(flaky) == "stored"
    robots = http.get(_url(emu, "/robots.txt", host=2)).text
    from urllib.robotparser import RobotFileParser

    rp = RobotFileParser()
    rp.parse(robots.splitlines())
    assert not rp.can_fetch("fid", _url(emu, "/private/t-000000000005.jpg", 2))
    assert rp.can_fetch("fid", _url(emu, "/img/ok/t-000000000005.jpg", 2))
    assert http.get(_url(emu, "/private/t-000000000005.jpg", 2)).status_code == 200  # robots is advice
    assert emu.expected_status(_url(emu, "/private/t-000000000005.jpg")) == "robots_denied"
    noai = http.get(_url(emu, "/img/noai/t-000000000005.jpg"))
    assert "noai" in noai.headers["X-Robots-Tag"] and _img(noai.content)
    assert emu.expected_status(noai.url) == "stored"
    assert emu.expected_status(noai.url, respect_noai=True) == "noai_denied"


def test_slow_and_drip_pass_a_timeout(emu, http):
    t0 = time.monotonic()
    with pytest.raises(requests.Timeout):
        http.get(_url(emu, "/slow/t-000000000006.jpg?delay=5"), timeout=0.2)
    assert time.monotonic() - t0 < 1
    t0 = time.monotonic()
    r = http.get(_url(emu, "/drip/t-000000000006.jpg?delay=0.5"), timeout=5)
    assert time.monotonic() - t0 >= 0.4 and _img(r.content)  # headers at once, body over the delay
    assert emu.expected_status(r.url) == "timeout"


def test_expected_summary_counts_duplicates(emu, http):
    urls = [e.url for s in ("bing", "gbif", "wikimedia") for e in emu.entries(s, KW)]
    summary = emu.expected_summary(urls)
    keys = {emu.content_key(u) for u in urls if emu.expected_status(u) == "stored"}
    assert summary["stored"] == len(keys)
    assert sum(summary.values()) == len(set(urls))
    with EmulatorSet(seed=2, n_hosts=2, total_per_keyword=12, tricky=["dup", "xdup", "html"],
                     tricky_every=2, shared_pool=2) as e:
        plan = e.entries("bing", "a") + e.entries("gbif", "b")
        dups = [x for x in plan if x.kind == "dup"]
        assert dups
        for d in dups:
            prev = plan[plan.index(d) - 1]
            assert d.url != prev.url and e.content_key(d.url) == e.content_key(prev.url)
            assert http.get(d.url).content == http.get(prev.url).content
        summary = e.expected_summary(x.url for x in plan)
        n_ok = sum(x.kind == "ok" for x in plan)
        assert summary["stored"] == n_ok + len({x.path for x in plan if x.kind == "xdup"})
        good_urls = {x.url for x in plan if x.kind != "html"}
        assert summary["duplicate"] == len(good_urls) - summary["stored"] >= len(dups)
        assert summary["not_image"] == sum(x.kind == "html" for x in plan)
    with pytest.raises(EmulatorError, match="not one the emulators serve"):
        emu.expected_status("http://127.0.0.2:1/elsewhere")


def test_fast_plan_without_slow_kinds():
    fast = [k for k in DEFAULT_TRICKY if k not in SLOW_KINDS]
    with EmulatorSet(seed=0, n_hosts=2, total_per_keyword=60, tricky=fast) as e:
        statuses = Counter(x.expected_status for x in e.entries("bing", "a"))
        assert "timeout" not in statuses and statuses["stored"] > 30


def test_module_serves_until_interrupted():
    proc = subprocess.Popen([sys.executable, "-m", "crawler.emulators", "--hosts", "2", "--total", "5"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("serving"):
                break
        text = "".join(lines)
        bases = json.loads(text[: text.index("}") + 1])
        assert len(bases["images"]) == 2 and "--engine-url bing=" in text
        s = requests.Session()
        s.trust_env = False
        assert s.get(bases["images"][1] + "/robots.txt", timeout=5).status_code == 200
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def test_fossil_content_is_pluggable_and_deterministic(http):
    from crawler.emulators.fossils import DRAWERS, drawer_for, fossil_content

    assert drawer_for("trilobita") is not drawer_for("ammonoidea") and drawer_for("junk") is None
    with EmulatorSet(seed=5, n_hosts=1, total_per_keyword=3, tricky_every=0, content=fossil_content,
                     size_range=(96, 128)) as e:
        urls = [x.url for x in e.entries("gbif", "Trilobita")] + [x.url for x in e.entries("gbif", "Asteroidea")]
        bodies = [http.get(u).content for u in urls]
        assert len(set(bodies)) == 6
        assert all(_img(b).size == (x.width, x.height)
                   for b, x in zip(bodies, e.entries("gbif", "Trilobita") + e.entries("gbif", "Asteroidea")))
    with EmulatorSet(seed=5, n_hosts=1, total_per_keyword=3, tricky_every=0, content=fossil_content,
                     size_range=(96, 128)) as again:
        assert http.get(again.entries("gbif", "Trilobita")[0].url).content == bodies[0]
    assert len(set(DRAWERS.values())) == 6


def test_child_process_mode_serves_the_same_plan(http):
    kw = dict(seed=9, n_hosts=2, total_per_keyword=8, tricky=["html", "http_404"], size_range=(80, 120),
              content="crawler.emulators.fossils:fossil_content")
    with EmulatorSet(in_process=False, **kw) as child, EmulatorSet(**kw) as local:
        assert child._proc is not None and child._proc.poll() is None
        ce, le = child.entries("bing", "trilobita"), local.entries("bing", "trilobita")
        assert [e.path for e in ce] == [e.path for e in le]
        for c, l in zip(ce, le):
            rc, rl = http.get(c.url), http.get(l.url)
            assert (rc.status_code, rc.content) == (rl.status_code, rl.content)
            assert child.expected_status(c.url) == c.expected_status
        metas, _ = _bing_page(http, child, "trilobita", 1)
        assert [m["murl"] for m in metas] == [e.url for e in ce]
        with pytest.raises(EmulatorError, match="only available with in_process=True"):
            child.hits(ce[0].url)
        proc = child._proc
    assert proc.poll() is not None  # stopped with the context
    with pytest.raises(EmulatorError, match="module:function"):
        EmulatorSet(content="no_such_module:f")
