"""Local emulators of every image source, for tests, benchmarks and the offline demo.

Loopback HTTP servers that answer like Bing, DuckDuckGo, Google, Baidu, GBIF, iDigBio (search and
media roles) and Wikimedia Commons, with result URLs pointing at image hosts on 127.0.0.2, 127.0.0.3,
... that generate images at request time, good and bad (see :mod:`crawler.emulators.plan`)::

    from crawler.emulators import EmulatorSet

    with EmulatorSet(seed=0, n_hosts=3, total_per_keyword=40) as emu:
        emu.base_urls            # {"bing": "http://127.0.1.1:PORT", ..., "images": [...]}
        emu.entries("bing", "trilobita")          # what a correct spider yields, in order
        emu.expected_status(url)                  # "stored", "not_image", "http_404", ...

``python -m crawler.emulators --port 8000`` serves them until Ctrl-C.
"""

from .emulator import ROLES, EmulatorSet, LoggedRequest, bindable
from .imagegen import IMAGE_KINDS, ImageGen, abstract_content
from .plan import COLLECTIONS, DEFAULT_TRICKY, ENGINES, KINDS, SLOW_KINDS, SOURCES, EmulatorError, Entry, Plan
from .sources import baidu_decode, baidu_encode, gbif_taxon_key

__all__ = [
    "COLLECTIONS", "DEFAULT_TRICKY", "ENGINES", "IMAGE_KINDS", "KINDS", "ROLES", "SLOW_KINDS", "SOURCES",
    "EmulatorError", "EmulatorSet", "Entry", "ImageGen", "LoggedRequest", "Plan", "abstract_content",
    "baidu_decode", "baidu_encode", "bindable", "gbif_taxon_key",
]
