"""Licence normalisation at ingest: whatever a source says -> an SPDX-style id or ``unknown``.

Inputs seen in the wild: GBIF licence URLs (``http://creativecommons.org/licenses/by-nc/4.0/legalcode``)
and enum names (``CC_BY_NC_4_0``), Commons ``LicenseShortName`` values (``CC BY-SA 4.0``,
``Public domain``, ``CC0``), and iDigBio free-text rights (``Creative Commons Attribution-NonCommercial
3.0``, ``CC BY-NC``). Outputs: ``CC0-1.0``, ``PDM``, ``CC-BY-4.0``, ``CC-BY-NC-SA-3.0`` (``CC-BY-NC``
when no version is given), ``GFDL`` or ``unknown`` (which includes "all rights reserved": no licence
to reuse; the rights holder is kept separately in the sighting).
"""

from __future__ import annotations

import re

UNKNOWN = "unknown"

_CC_URL = re.compile(r"creativecommons\.org/licenses/([a-z\-]+)/(\d(?:\.\d)?)")
_VERSION = re.compile(r"(?<![\d.])(\d)(?:[._](\d))?(?![\d])")
_CC0 = re.compile(r"\bcc[\s_\-]?0\b|\bcc[\s_\-]?zero\b|publicdomain/zero|creative commons zero")
_PDM = re.compile(r"public[\s_\-]?domain|publicdomain/mark|\bpdm\b|^pd\b|^pd-")
_CC = re.compile(r"\bcc\b|creative[\s_\-]?commons|\battribution\b|\bcc[\s_\-]by")


def _parts(text: str) -> list[str]:
    parts = ["BY"]
    if re.search(r"\bnc\b|non[\s\-]?commercial", text):
        parts.append("NC")
    if re.search(r"\bnd\b|no[\s\-]?deriv", text):
        parts.append("ND")
    elif re.search(r"\bsa\b|share[\s\-]?alike", text):
        parts.append("SA")
    return parts


def normalise_license(value: object) -> str:
    """An SPDX-style id for a licence URL, name or rights statement; ``unknown`` when unclear."""
    if value is None:
        return UNKNOWN
    text = str(value).strip().lower()
    if not text or text in {"unknown", "none", "null", "n/a"}:
        return UNKNOWN
    m = _CC_URL.search(text)
    if m:
        code, version = m.group(1), m.group(2)
        if "." not in version:
            version += ".0"
        return "CC-" + "-".join(p.upper() for p in code.split("-") if p) + "-" + version
    if _CC0.search(text.replace("_", " ")):
        return "CC0-1.0"
    if _PDM.search(text):
        return "PDM"
    if "all rights reserved" in text or text in {"copyright", "©"}:
        return UNKNOWN
    if text.startswith("gfdl") or "gnu free documentation" in text:
        return "GFDL"
    words = re.sub(r"[_/]+", " ", text.replace("-", " - "))
    words = re.sub(r"\s*-\s*", " ", words)
    if _CC.search(words) and ("by" in words.split() or "attribution" in words):
        v = _VERSION.search(words)
        version = f"-{v.group(1)}.{v.group(2) or '0'}" if v else ""
        return "CC-" + "-".join(_parts(words)) + version
    return UNKNOWN
