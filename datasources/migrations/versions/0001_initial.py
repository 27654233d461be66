"""The registry as `create_all` made it before migrations: centres, grids, cameras, base data, users.

Revision ID: 0001
Revises:
Created: 2026-11-30

Written out by hand (not imported from datasources.registry, whose tables will move on): the
same columns, types, nullability, keys and index names that `Base.metadata.create_all` gave,
so a database it made is recognised as this revision and stamped (datasources.migrations).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "centres",
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("parent", sa.String(32), nullable=True),
        sa.Column("conference", sa.String(512), nullable=True),
        sa.Column("geometry", sa.Text(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("code"),
        sa.ForeignKeyConstraint(["parent"], ["centres.code"], ondelete="RESTRICT"),
    )
    op.create_index("ix_centres_level", "centres", ["level"])
    op.create_index("ix_centres_parent", "centres", ["parent"])

    op.create_table(
        "users",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("scope", sa.String(32), nullable=False),
        sa.Column("password_hash", sa.String(256), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )

    op.create_table(
        "base_data",
        sa.Column("centre", sa.String(32), nullable=False),
        sa.Column("registered_population", sa.Integer(), nullable=False),
        sa.Column("floating_population", sa.Integer(), nullable=False),
        sa.Column("houses", sa.Integer(), nullable=False),
        sa.Column("rentals", sa.Integer(), nullable=False),
        sa.Column("special_populations", sa.Integer(), nullable=False),
        sa.Column("organisations", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("centre"),
        sa.ForeignKeyConstraint(["centre"], ["centres.code"]),
    )

    op.create_table(
        "grids",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("centre", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("workers", sa.Integer(), nullable=False),
        sa.Column("geometry", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.ForeignKeyConstraint(["centre"], ["centres.code"]),
    )
    op.create_index("ix_grids_centre", "grids", ["centre"])

    op.create_table(
        "cameras",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("centre", sa.String(32), nullable=False),
        sa.Column("grid", sa.String(64), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.ForeignKeyConstraint(["centre"], ["centres.code"]),
        sa.ForeignKeyConstraint(["grid"], ["grids.id"]),
    )
    op.create_index("ix_cameras_centre", "cameras", ["centre"])


def downgrade() -> None:
    op.drop_index("ix_cameras_centre", table_name="cameras")
    op.drop_table("cameras")
    op.drop_index("ix_grids_centre", table_name="grids")
    op.drop_table("grids")
    op.drop_table("base_data")
    op.drop_table("users")
    op.drop_index("ix_centres_parent", table_name="centres")
    op.drop_index("ix_centres_level", table_name="centres")
    op.drop_table("centres")
