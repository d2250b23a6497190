"""Curation: the shared image pipeline (validate, normalise, hash, store), perceptual hashing,
near-duplicate groups, review and exports. Nothing here imports TensorFlow."""
