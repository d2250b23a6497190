"""fid's crawler: Scrapy spiders per source, the image pipeline into the catalog, and source emulators."""
