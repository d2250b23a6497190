"""Alembic environment for fid's catalog (SQLite and PostgreSQL)."""

import os

from alembic import context
from sqlalchemy import create_engine

from dataset_db.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection):
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    engine = config.attributes.get("engine")
    if engine is None:
        url = os.environ.get("FID_DB") or config.get_main_option("sqlalchemy.url")
        from dataset_db.session import make_engine

        engine = make_engine(url) if url else create_engine("sqlite://")
    with engine.begin() as connection:
        _run(connection)


def run_migrations_offline():
    context.configure(
        url=os.environ.get("FID_DB") or config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
