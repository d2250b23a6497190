"""Errors the training layer reports as one-line messages (the CLI turns FidError into click errors)."""

from dataset_db.errors import FidError


class TrainingError(FidError):
    pass
