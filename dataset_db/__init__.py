"""fid's catalog: the only thing the crawler, curation and training layers share."""

__version__ = "0.1.0"
