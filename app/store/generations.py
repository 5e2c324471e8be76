"""What this process has seen of each item's sale in Redis: its generation (the moment
warmup.lua built the item's counters, in Redis ms) and the highest acceptance sequence
number within it. purchase.lua is given both and freezes the item if Redis is behind
them: Redis came back from an older snapshot, so stock and buyers' counts there predate
orders this process saw accepted (selling on them would oversell). A missing sale that
this process has seen means Redis lost it: the purchase answers `recovering`, not 404,
until the order writer's check (app/flows/freshness.py) rebuilds it."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, order=True)
class Generation:
    epoch: int = 0  # when warmup.lua built the counters (Redis ms); 0: built before epochs
    seq: int = 0  # acceptances within the epoch


UNSEEN = Generation()


class SeenGenerations:
    """In memory, per process; each item's newest (epoch, seq) seen in an accept."""

    def __init__(self) -> None:
        self._seen: dict[int, Generation] = {}

    def known(self, item_id: int) -> Generation:
        return self._seen.get(item_id, UNSEEN)

    def has_seen(self, item_id: int) -> bool:
        return item_id in self._seen

    def saw(self, item_id: int, generation: Generation) -> None:
        # Replies of concurrent purchases arrive in any order: keep the newest.
        if generation > self._seen.get(item_id, UNSEEN):
            self._seen[item_id] = generation
