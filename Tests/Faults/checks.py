"""What the suite checks after each scenario, from the devices' and the upstream's points of view.

Inputs: every device's view (which events it published, which ones were acked ``stored`` or
``duplicate``, and in which order the ``stored`` acks arrived) and the upstream arrivals in the
order the upstream side received them.

- **accepted**: events acked ``stored`` or ``duplicate`` (a duplicate means "stored earlier").
- **lost**: accepted events that never arrived upstream. Must be 0 (CONTRACTS.md §1 and §2:
  an ack is sent only after the durable commit; delivery upstream is at least once).
- **duplicates**: upstream messages beyond the first of each (device, eventId): allowed (at
  least once), but every repeat must be byte-identical to the first copy (same stored envelope),
  otherwise it counts as a **repeat mismatch** (a failure).
- **phantoms**: upstream events no device ever published (a failure).
- **order violations** (per device): the gateway acks in commit order, so the order in which a
  device received its ``stored`` acks is the order of those events in the outbox (their seq),
  which is the order they must reach the upstream broker in (CONTRACTS.md §2: "in the order the
  gateway stored them, also across outages and restarts"). Store order can differ from publish
  order (an event resent after a crash is stored after events published later), so it, not the
  eventId number, is the reference. Walking the device's upstream arrivals in arrival order:
    * an eventId seen before is a *repeat* (a redelivery after a reconnect or restart starts
      again from the oldest unacknowledged event): never an order violation;
    * a *first arrival* must come later in store order than every first arrival before it,
      otherwise it is an order violation.
  Events the device never got a ``stored`` ack for (the ack was lost in a crash and the resend
  was answered ``duplicate``) have no known store position: they take part in the loss check,
  not in the order check. The number of such events is reported.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from .clients import Arrival, Device


@dataclass
class DeliveryReport:
    published: int = 0
    accepted: int = 0
    stored_acks: int = 0
    received: int = 0                   # distinct (device, eventId) upstream
    upstream_messages: int = 0
    lost: list[str] = field(default_factory=list)
    expected_lost: list[str] = field(default_factory=list)   # e.g. acked events behind a torn WAL
    duplicates: int = 0
    order_violations: list[str] = field(default_factory=list)
    repeat_mismatches: list[str] = field(default_factory=list)
    phantoms: list[str] = field(default_factory=list)
    unranked: int = 0
    unacked: list[str] = field(default_factory=list)
    unexpected_acks: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        out = []
        if self.lost:
            out.append(f"{len(self.lost)} accepted events never arrived upstream: {self.lost[:10]}")
        if self.order_violations:
            out.append(f"{len(self.order_violations)} order violations: {self.order_violations[:5]}")
        if self.repeat_mismatches:
            out.append(f"{len(self.repeat_mismatches)} repeats differ from the first copy: "
                       f"{self.repeat_mismatches[:3]}")
        if self.phantoms:
            out.append(f"{len(self.phantoms)} upstream events never published: {self.phantoms[:5]}")
        if self.unacked:
            out.append(f"{len(self.unacked)} events never acked stored/duplicate despite resends: "
                       f"{self.unacked[:10]}")
        if self.unexpected_acks:
            out.append(f"{len(self.unexpected_acks)} unexpected acks: {self.unexpected_acks[:5]}")
        return out


def check_delivery(devices: list[Device], arrivals: list[Arrival], *,
                   expected_loss: set[tuple[str, str]] | None = None,
                   extra_accepted: dict[str, set[str]] | None = None,
                   extra_published: dict[str, set[str]] | None = None) -> DeliveryReport:
    """Compares what devices had accepted with what arrived upstream (see the module doc).

    ``expected_loss``: (device, eventId) pairs a scenario knows may be gone (reported apart).
    ``extra_accepted``/``extra_published``: events sent by other means than ``Device`` (hostile input).
    """
    report = DeliveryReport()
    expected_loss = expected_loss or set()
    published: dict[str, set[str]] = defaultdict(set)
    accepted: dict[str, set[str]] = defaultdict(set)
    rank: dict[str, dict[str, int]] = {}
    for d in devices:
        with d.lock:
            published[d.id].update(d.events)
            accepted[d.id].update(eid for eid, s in d.events.items() if s.acked is not None)
            rank[d.id] = dict(d.stored_rank)
            report.unacked += [f"{d.id}/{eid}" for eid, s in d.events.items() if s.acked is None]
            report.unexpected_acks += [f"{d.id}: {u}" for u in d.unexpected]
    for dev, ids in (extra_published or {}).items():
        published[dev].update(ids)
    for dev, ids in (extra_accepted or {}).items():
        accepted[dev].update(ids)

    report.published = sum(len(v) for v in published.values())
    report.accepted = sum(len(v) for v in accepted.values())
    report.stored_acks = sum(len(r) for r in rank.values())
    report.upstream_messages = len(arrivals)

    first_copy: dict[tuple[str, str], bytes] = {}
    highest: dict[str, tuple[int, str]] = {}
    for arrival in arrivals:
        dev, eid = arrival.device, arrival.event_id
        if dev is None or eid is None:
            report.phantoms.append(f"unreadable upstream message on {arrival.topic}: {arrival.payload[:100]!r}")
            continue
        key = (dev, eid)
        if key in first_copy:
            report.duplicates += 1
            if arrival.payload != first_copy[key]:
                report.repeat_mismatches.append(f"{dev}/{eid}")
            continue
        first_copy[key] = arrival.payload
        if eid not in published.get(dev, ()):
            report.phantoms.append(f"{dev}/{eid}")
        position = rank.get(dev, {}).get(eid)
        if position is None:
            continue
        before = highest.get(dev)
        if before is not None and position < before[0]:
            report.order_violations.append(
                f"{dev}: {eid} (store position {position}) first arrived after {before[1]} (position {before[0]})")
        else:
            highest[dev] = (position, eid)

    received = set(first_copy)
    report.received = len(received)
    for dev, ids in accepted.items():
        for eid in ids:
            if (dev, eid) not in received:
                (report.expected_lost if (dev, eid) in expected_loss else report.lost).append(f"{dev}/{eid}")
    report.unranked = sum(1 for dev, ids in accepted.items() for eid in ids if eid not in rank.get(dev, {}))
    report.lost.sort()
    return report
