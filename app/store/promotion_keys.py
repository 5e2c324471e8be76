"""Redis keys of a daily promotion. All share the hash tag `{promotion:<id>}`, so its
scripts run unchanged on a Redis Cluster (one slot per promotion), as an item's keys do.
A day's counters are keyed by the day (ISO date, in the campaign's timezone) and expire
a day after it ends."""

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True, slots=True)
class DayKeys:
    """One day's counters of a promotion."""

    taken: str  # string: places taken
    users: str  # hash: user id -> places held
    holders: str  # hash: order id -> user id

    def all(self) -> list[str]:
        return [self.taken, self.users, self.holders]


@dataclass(frozen=True, slots=True)
class PromotionKeys:
    prefix: str
    promotion_id: int

    @property
    def tag(self) -> str:
        return f"{self.prefix}:{{promotion:{self.promotion_id}}}"

    @property
    def promotion(self) -> str:
        """Hash: window, limits, held, frozen, generation: what promotion.lua decides on."""
        return f"{self.tag}:promotion"

    @property
    def takes(self) -> str:
        """Never written: the hot-store check looks for a stream per entity, and a
        promotion has none (every place taken is in Postgres before its answer)."""
        return f"{self.tag}:takes"

    def day(self, day: date) -> DayKeys:
        base = f"{self.tag}:day:{day.isoformat()}"
        return DayKeys(taken=f"{base}:taken", users=f"{base}:users", holders=f"{base}:holders")
