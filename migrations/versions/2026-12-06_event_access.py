"""events.access: how buyers get in (open, a waiting room, a raffle)

Revision ID: i20_1
Revises: i19_1
Create Date: 2026-12-06 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "i20_1"
down_revision: str | None = "i19_1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "events",
        sa.Column(
            "access",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("""'{"mode": "open"}'::jsonb"""),
            nullable=False,
        ),
    )


def downgrade() -> None:
    op.drop_column("events", "access")
