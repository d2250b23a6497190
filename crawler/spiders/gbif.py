"""GBIF: clade -> taxon key (``/v1/species/match``), then fossil-specimen occurrences with still
images (``/v1/occurrence/search``); one item per StillImage media entry."""

from __future__ import annotations

from ..licenses import normalise_license
from . import FidSpider

RECORD_FIELDS = ("key", "datasetKey", "scientificName", "taxonKey", "catalogNumber", "institutionCode",
                 "collectionCode", "locality", "country", "stateProvince", "formation", "group", "member",
                 "bed", "earliestEraOrLowestErathem", "earliestPeriodOrLowestSystem",
                 "earliestEpochOrLowestSeries", "earliestAgeOrLowestStage", "latestAgeOrHighestStage",
                 "year", "basisOfRecord", "references", "license")
MAX_OFFSET = 100_000


class GbifSpider(FidSpider):
    name = "gbif"
    page_size = 300

    def first_requests(self, qi):
        q = self.queries[qi]
        yield self.request(self.url("/v1/species/match", {"name": q.get("taxon") or q["clade"]}), qi,
                           self.parse_match)

    def parse_match(self, response):
        qi = response.meta["qi"]
        if self.bad_status(response, qi):
            return
        data = self.json(response, qi)
        if data is None:
            return
        key = data.get("usageKey")
        if key is None or data.get("matchType") == "NONE":
            self.parse_error(response, qi, f"no GBIF taxon matches {self.queries[qi].get('taxon')!r}")
            return
        yield self.page(qi, key, 0)

    def page(self, qi, key, offset):
        limit = min(self.page_size, max(1, self.remaining(qi)))
        params = {"basisOfRecord": "FOSSIL_SPECIMEN", "mediaType": "StillImage", "taxonKey": key,
                  "limit": limit, "offset": offset}
        return self.request(self.url("/v1/occurrence/search", params), qi, self.parse, key=key, offset=offset)

    def parse(self, response):
        qi, key, offset = response.meta["qi"], response.meta["key"], response.meta["offset"]
        data = self.json_page(response, qi)
        if data is None:
            return
        results = data.get("results") or []
        for occ in results:
            record = {k: occ[k] for k in RECORD_FIELDS if occ.get(k) is not None}
            for media in occ.get("media") or []:
                if media.get("type", "StillImage") != "StillImage":
                    continue
                item = self.emit(
                    qi, media.get("identifier"),
                    page_url=media.get("references") or occ.get("references") or
                    f"https://www.gbif.org/occurrence/{occ.get('key')}",
                    title=media.get("title") or occ.get("scientificName") or "",
                    license=normalise_license(media.get("license") or occ.get("license")),
                    rights_holder=media.get("rightsHolder") or media.get("creator") or media.get("publisher") or "",
                    record=record)
                if item is not None:
                    yield item
        if not self.check_first_page(response, qi, len(results), offset == 0):
            return
        nxt = offset + len(results)
        if not data.get("endOfRecords", True) and self.remaining(qi) > 0 and nxt < MAX_OFFSET:
            yield self.page(qi, key, nxt)
