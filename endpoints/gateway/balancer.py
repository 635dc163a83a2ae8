"""Which instance gets a request: a variant by weight, then the least busy of its instances.

- Variant: at random with probability `weight / sum(weights)` among the variants that have an
  instance to try (SageMaker's rule); a client may name one (`X-Amzn-SageMaker-Target-Variant`).
- Instance: the fewest requests outstanding from this process; ties go round-robin, so an idle
  endpoint still spreads sequential requests over all its instances.
- Passive health: an instance that refused a connection (or dropped one before answering) is
  avoided for `BAD_INSTANCE_SECONDS`, until the health checker has replaced it or seen it
  recover. When every candidate is marked, the marked ones are tried anyway: a mark is a
  guess, and answering 503 without trying would turn one hiccup into an outage.

The counts are per process (each web process balances on its own), and the state is plain
dicts touched only from the event loop.
"""

from __future__ import annotations

import random
import time
from collections.abc import Collection, Iterable

from endpoints.gateway.directory import Instance, Route, Variant

BAD_INSTANCE_SECONDS = 5.0

_outstanding: dict[int, int] = {}  # instance id -> requests in flight from this process
_bad_until: dict[int, float] = {}  # instance id -> monotonic time until which it is avoided
_turn = 0


def pick(
    route: Route, target: Variant | None, tried: Collection[int]
) -> tuple[Variant, Instance] | None:
    """The variant and instance for the next attempt, or None when nothing is left to try."""
    now = time.monotonic()
    candidates = [target] if target is not None else list(route.variants.values())
    usable = [(v, _untried(v.instances, tried)) for v in candidates]
    usable = [(v, instances) for v, instances in usable if instances]
    if not usable:
        return None
    healthy = [(v, [i for i in instances if not _is_bad(i.id, now)]) for v, instances in usable]
    healthy = [(v, instances) for v, instances in healthy if instances]
    variant, instances = _by_weight(healthy or usable)
    return variant, _least_busy(instances)


def started(instance: Instance) -> None:
    _outstanding[instance.id] = _outstanding.get(instance.id, 0) + 1


def finished(instance: Instance) -> None:
    remaining = _outstanding.get(instance.id, 1) - 1
    if remaining > 0:
        _outstanding[instance.id] = remaining
    else:
        _outstanding.pop(instance.id, None)


def mark_bad(instance: Instance) -> None:
    now = time.monotonic()
    if len(_bad_until) > 1000:  # marks of instances long gone are never read again
        for instance_id, until in list(_bad_until.items()):
            if until <= now:
                del _bad_until[instance_id]
    _bad_until[instance.id] = now + BAD_INSTANCE_SECONDS


def outstanding(instance_id: int) -> int:
    return _outstanding.get(instance_id, 0)


def reset() -> None:
    _outstanding.clear()
    _bad_until.clear()


def _untried(instances: Iterable[Instance], tried: Collection[int]) -> list[Instance]:
    return [i for i in instances if i.id not in tried] if tried else list(instances)


def _is_bad(instance_id: int, now: float) -> bool:
    until = _bad_until.get(instance_id)
    if until is None:
        return False
    if until <= now:
        del _bad_until[instance_id]
        return False
    return True


def _by_weight(options: list[tuple[Variant, list[Instance]]]) -> tuple[Variant, list[Instance]]:
    if len(options) == 1:
        return options[0]
    total = sum(variant.weight for variant, _ in options)
    if total <= 0:  # every weight 0: nothing to prefer, share equally
        return random.choice(options)  # noqa: S311 - load balancing, not cryptography
    point = random.random() * total  # noqa: S311 - load balancing, not cryptography
    for option in options:
        point -= option[0].weight
        if point < 0:
            return option
    # Float rounding left a crumb of weight past the last variant.
    return next(option for option in reversed(options) if option[0].weight > 0)


def _least_busy(instances: list[Instance]) -> Instance:
    global _turn
    count = len(instances)
    if count == 1:
        return instances[0]
    start = _turn % count
    _turn += 1
    best = instances[start]
    best_load = _outstanding.get(best.id, 0)
    for step in range(1, count):
        instance = instances[(start + step) % count]
        load = _outstanding.get(instance.id, 0)
        if load < best_load:
            best, best_load = instance, load
    return best
