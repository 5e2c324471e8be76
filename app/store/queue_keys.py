"""Redis keys of an event's waiting room. All share the hash tag `{queue:<event id>}`, so
its scripts run unchanged on a Redis Cluster (one slot per queue), as an item's keys do."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class QueueKeys:
    prefix: str
    event_id: int

    @property
    def tag(self) -> str:
        return f"{self.prefix}:{{queue:{self.event_id}}}"

    @property
    def queue(self) -> str:
        """Hash: start, end, admission rate, closed, generation: what queue.lua decides on."""
        return f"{self.tag}:queue"

    @property
    def places(self) -> str:
        """Sorted set: user id -> score (the queue's order)."""
        return f"{self.tag}:places"

    @property
    def admitted(self) -> str:
        """Hash: user id -> when first admitted (Unix ms)."""
        return f"{self.tag}:admitted"

    @property
    def joins(self) -> str:
        """Stream of new places, consumed by the order writer."""
        return f"{self.tag}:joins"

    @property
    def queued(self) -> str:
        """Hash: user id -> "score|joined ms", until the place is stored."""
        return f"{self.tag}:queued"

    @property
    def failures(self) -> str:
        """Hash: stream entry id -> times Postgres refused its data (as an item's)."""
        return f"{self.joins}:failures"

    @property
    def loading(self) -> str:
        """String: held while one process loads the queue from Postgres."""
        return f"{self.tag}:loading"

    def all(self) -> list[str]:
        return [self.queue, self.places, self.admitted, self.joins, self.queued, self.failures]


def queues_registry(prefix: str) -> str:
    """Set of event ids whose waiting room has a joins stream (the order writer reads
    these)."""
    return f"{prefix}:queues"
