"""Domain errors. Library code raises these; the CLI turns them into one-line messages in one place."""


class FidError(Exception):
    """Base class for every error fid reports to a user as a one-line message."""


class NoCatalogError(FidError):
    def __init__(self, url: str):
        super().__init__(f"no catalog at {url}")
        self.url = url


class CatalogConnectError(FidError):
    pass


class SchemaTooNewError(FidError):
    pass


class SchemaOutdatedError(FidError):
    pass


class UnknownCladeError(FidError):
    def __init__(self, name: str, known: list[str]):
        import difflib

        by_lower = {k.lower(): k for k in known}
        close = [by_lower[m] for m in difflib.get_close_matches(name.lower(), list(by_lower), n=3, cutoff=0.75)]
        hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
        shown = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
        super().__init__(f"unknown clade {name!r}; {hint}choose from: {shown} (see `fid clades list`)")
        self.name = name


class InputFileError(FidError):
    pass


class TaxonomyError(FidError):
    pass


class ConfigError(FidError):
    pass
