from datetime import datetime

from sqlalchemy import BigInteger, DateTime, String, func
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class CounterGeneration(Base):
    """The newest generation of one entity's live counters built in Redis (an item's sale,
    a coupon's claims, ...): written once they are built, so that a Redis without them
    later is known to have lost them ("never loaded" is not "lost"), and a Redis holding
    an older generation is known to be behind."""

    __tablename__ = "counter_generations"

    # Which counter family: "sale" (an item), "claims" (a coupon), ...
    family: Mapped[str] = mapped_column(String(32), primary_key=True)
    entity_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    # warmup's epoch: Redis ms when the counters were built (app/store/generations.py)
    epoch: Mapped[int] = mapped_column(BigInteger)
    built_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
