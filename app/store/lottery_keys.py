"""Redis keys of a lottery. All share the hash tag `{lottery:<id>}`, so its scripts run
unchanged on a Redis Cluster (one slot per lottery), as an item's keys do. A day's keys
carry the day (ISO date in `business_timezone`) and expire a while after it."""

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True, slots=True)
class LotteryKeys:
    prefix: str
    lottery_id: int

    @property
    def tag(self) -> str:
        return f"{self.prefix}:{{lottery:{self.lottery_id}}}"

    @property
    def lottery(self) -> str:
        """Hash: window, draws a day, weights, generation: what lottery_draw.lua decides on."""
        return f"{self.tag}:lottery"

    @property
    def stock(self) -> str:
        """Hash: prize id -> units left to win."""
        return f"{self.tag}:stock"

    @property
    def draws(self) -> str:
        """Stream of draws (won or not), consumed by the order writer."""
        return f"{self.tag}:draws"

    @property
    def queued(self) -> str:
        """Hash: draw id -> "prize id|day|drawn ms|user id", until the draw is stored."""
        return f"{self.tag}:queued"

    @property
    def failures(self) -> str:
        """Hash: stream entry id -> times Postgres refused its data (as an item's)."""
        return f"{self.draws}:failures"

    @property
    def loading(self) -> str:
        """String: held while one process loads the lottery from Postgres."""
        return f"{self.tag}:loading"

    def drawn(self, day: date) -> str:
        """Hash: user id -> draws made that day."""
        return f"{self.tag}:drawn:{day.isoformat()}"

    def checked_in(self, day: date) -> str:
        """Hash: user id -> "1" for each user who checked in that day (one more draw)."""
        return f"{self.tag}:checked_in:{day.isoformat()}"

    def all(self) -> list[str]:
        return [self.lottery, self.stock, self.draws, self.queued, self.failures]


def lotteries_registry(prefix: str) -> str:
    """Set of lottery ids that have a draws stream (the order writer reads these)."""
    return f"{prefix}:lotteries"
