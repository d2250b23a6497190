"""Baidu images: ``/search/acjson?tn=resultjson_com&ipn=rj&word=&pn=&rn=30`` (JSON, obfuscated objURL)."""

from __future__ import annotations

import json

from . import FidSpider

_TOKENS = (("_z2C$q", ":"), ("_z&e3B", "."), ("AzdH3F", "/"))
_TABLE = str.maketrans("wkv1ju2it3hs4g5rq6fp7eo8dn9cm0bla", "abcdefghijklmnopqrstuvw1234567890")


def decode_objurl(s: str) -> str:
    """Baidu's objURL obfuscation undone (tokens first, then the character map)."""
    for token, ch in _TOKENS:
        s = s.replace(token, ch)
    return s.translate(_TABLE)


def _image_url(rec: dict) -> str | None:
    obj = rec.get("objURL")
    if obj:
        url = obj if obj.startswith(("http://", "https://")) else decode_objurl(obj)
        if url.startswith(("http://", "https://")):
            return url
    return rec.get("hoverURL") or rec.get("thumbURL") or None


class BaiduSpider(FidSpider):
    name = "baidu"
    page_size = 30
    headers = {"Accept-Language": "zh-CN,zh;q=0.9"}

    def page(self, qi: int, pn: int):
        params = {"tn": "resultjson_com", "ipn": "rj", "word": self.queries[qi]["keyword"], "pn": pn,
                  "rn": self.page_size}
        return self.request(self.url("/search/acjson", params), qi, self.parse, pn=pn)

    def first_requests(self, qi):
        yield self.page(qi, 0)

    def parse(self, response):
        qi, pn = response.meta["qi"], response.meta["pn"]
        if self.bad_status(response, qi):
            return
        text = response.text
        try:
            data = json.loads(text)
        except ValueError:
            try:  # Baidu escapes single quotes, which JSON does not allow
                data = json.loads(text.replace("\\'", "'"))
            except ValueError as exc:
                self.parse_error(response, qi, f"not JSON: {exc}")
                return
        self.page_seen(qi)
        records = [r for r in (data.get("data") or []) if r]
        for r in records:
            fr = r.get("fromURL") or ""
            if fr and not fr.startswith("http"):
                fr = decode_objurl(fr)
            item = self.emit(qi, _image_url(r), page_url=fr if fr.startswith("http") else "",
                             title=r.get("fromPageTitleEnc") or r.get("fromPageTitle") or "",
                             width=r.get("width"), height=r.get("height"))
            if item is not None:
                yield item
        if not self.check_first_page(response, qi, len(records), pn == 0):
            return
        if self.remaining(qi) > 0:
            yield self.page(qi, pn + len(records))
