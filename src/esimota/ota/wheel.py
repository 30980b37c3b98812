"""A hashed timing wheel: one deadline per channel, O(1) set/cancel, expiry by sweeping slots (DESIGN §5.5)."""

from __future__ import annotations


class TimingWheel:
    """Deadlines in seconds (floats, the caller's clock), bucketed by `resolution`.

    A deadline further than the wheel's span waits in its slot for later turns: a swept entry whose
    deadline is still ahead is simply left in place.

    A slot emptied is cleared: a Python set never gives back the table it grew to, so without it every
    slot kept the table of its busiest moment, and a worker under a storm of short channels grew by
    megabytes of empty tables per turn of the wheel (4096 slots; RELIABILITY.md).
    """

    def __init__(self, resolution: float = 0.25, slots: int = 4096) -> None:
        self.resolution = resolution
        self.nslots = slots
        self.slots: list[set] = [set() for _ in range(slots)]
        self.deadline: dict = {}
        self.slot_of: dict = {}
        self.cursor_tick: int | None = None

    def _tick(self, t: float) -> int:
        return int(t / self.resolution)

    def set(self, key, when: float) -> None:
        """Arm (or re-arm) the single deadline of `key`."""
        old = self.slot_of.get(key)
        if old is not None:
            self._drop(old, key)
        tick = self._tick(when)
        if self.cursor_tick is not None and tick < self.cursor_tick:
            tick = self.cursor_tick  # already past: swept at the next expire
        slot = tick % self.nslots
        self.deadline[key] = when
        self.slot_of[key] = slot
        self.slots[slot].add(key)

    def cancel(self, key) -> None:
        slot = self.slot_of.pop(key, None)
        if slot is not None:
            del self.deadline[key]
            self._drop(slot, key)

    def _drop(self, slot: int, key) -> None:
        keys = self.slots[slot]
        keys.discard(key)
        if not keys:
            keys.clear()  # frees a grown table (discard never shrinks one); nothing to do on a small one

    def __len__(self) -> int:
        return len(self.deadline)

    def expire(self, now: float) -> list:
        """Remove and return the keys whose deadline is at or before `now`."""
        end = self._tick(now)
        start = end - self.nslots + 1 if self.cursor_tick is None else self.cursor_tick
        if end - start >= self.nslots:  # asleep for longer than a turn: sweep every slot once
            start = end - self.nslots + 1
        due = []
        for t in range(start, end + 1):
            slot = self.slots[t % self.nslots]
            if not slot:
                continue
            for key in [k for k in slot if self.deadline[k] <= now]:
                slot.discard(key)
                del self.deadline[key]
                del self.slot_of[key]
                due.append(key)
            if not slot:
                slot.clear()
        self.cursor_tick = end
        return due
