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
        shown = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
        super().__init__(f"unknown clade {name!r}; choose from: {shown} (see `fid clades list`)")
        self.name = name


class InputFileError(FidError):
    pass


class TaxonomyError(FidError):
    pass


class ConfigError(FidError):
    pass
