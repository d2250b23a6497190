"""The review layer: a small Flask app (``app.create_app``) over ``dataset_db.repo_review``."""
