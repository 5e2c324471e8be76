"""items' terms versions drawn from a sequence: never reused

`event_items.terms_version` becomes a bigint set from the new sequence
`event_item_terms_versions` by every mid-sale change (pause and resume included). A
change is applied to Redis before its transaction commits; if the transaction then rolls
back, its version stays in Redis, and a per-item counter would hand the same version to
the next change, which Redis would then ignore. The sequence starts above every version
already in use.

Revision ID: i17_5
Revises: i17_1
Create Date: 2026-12-06 06:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "i17_5"
down_revision: str | None = "i17_1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.alter_column(
        "event_items", "terms_version", type_=sa.BigInteger(), existing_type=sa.Integer()
    )
    op.execute(sa.schema.CreateSequence(sa.Sequence("event_item_terms_versions")))
    op.execute(
        "SELECT setval('event_item_terms_versions', "
        "(SELECT COALESCE(MAX(terms_version), 0) + 1 FROM event_items), false)"
    )


def downgrade() -> None:
    op.execute(sa.schema.DropSequence(sa.Sequence("event_item_terms_versions")))
    op.alter_column(
        "event_items", "terms_version", type_=sa.Integer(), existing_type=sa.BigInteger()
    )
