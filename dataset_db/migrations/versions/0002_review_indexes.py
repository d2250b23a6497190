"""review indexes: sightings (clade, url_id) for the per-clade review queue

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 12:30:00

The unreviewed queue of one clade reads the clade's image ids as sightings -> urls; with this
index SQLite reads ``url_id`` from the index instead of each sighting's row (bench/review.py:
the largest clade's page at 400,000 images about twice as fast).
"""
from typing import Sequence, Union

from alembic import op


revision: str = '0002'
down_revision: Union[str, None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_index('ix_sightings_clade_url', 'sightings', ['clade', 'url_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_sightings_clade_url', table_name='sightings')
