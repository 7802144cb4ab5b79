"""Who may reach which topic on the broker: each service's Kafka principal, and the ACLs that let it read and
write only its own topics and groups (KRaft's ``StandardAuthorizer`` refuses the rest). What a service reads is
what it subscribes to and follows (its worker module's ``SUBSCRIPTIONS`` and ``FOLLOWS``); what it writes, its
``WRITES``; and every process reads the reference data and the subject keys and writes audit records, dead
letters (with their keys) and subject keys. The API (``runtime.API``) reads what its read models follow and writes
what its routes publish. ``handoff topics acls`` grants them, as the broker's administrator."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from services.cad_gateway.entrypoints import worker as gateway_worker
from services.handle_with_care.entrypoints import worker as hwc_worker
from services.kernel.topics import AUDIT, DEAD_LETTER, DEAD_LETTER_KEYS, REFERENCE_DATA, SUBJECT_KEYS, TopicSpec
from services.notifier.entrypoints import worker as notifier_worker
from services.quick_response.entrypoints import worker as qrt_worker
from services.referral_intake.entrypoints import worker as intake_worker
from services.runtime import API, API_FOLLOWS, API_WRITES
from services.self_referral.entrypoints import worker as walk_in_worker

WORKERS = (intake_worker, notifier_worker, hwc_worker, qrt_worker, walk_in_worker, gateway_worker)
EVERY_PROCESS_READS = (REFERENCE_DATA, SUBJECT_KEYS)
EVERY_PROCESS_WRITES = (AUDIT, DEAD_LETTER, DEAD_LETTER_KEYS, SUBJECT_KEYS)


# The Kafka protocol's codes (org.apache.kafka.common.acl / resource).
class Resource(IntEnum):
    TOPIC = 2
    GROUP = 3


class Pattern(IntEnum):
    LITERAL = 3
    PREFIXED = 4


class Operation(IntEnum):
    ALL = 2
    READ = 3
    WRITE = 4
    DESCRIBE = 8


@dataclass(frozen=True, order=True)
class Grant:
    """One ALLOW ACL binding."""

    principal: str
    resource: Resource
    name: str
    pattern: Pattern
    operation: Operation


@dataclass(frozen=True)
class ServiceAccess:
    service: str
    reads: tuple[TopicSpec, ...]
    writes: tuple[TopicSpec, ...]

    @property
    def principal(self) -> str:
        return f"User:{self.service}"

    def grants(self, prefix: str = "") -> list[Grant]:
        """Read (and describe) what it reads, write what it writes, and everything under its own name: its
        consumer group, and its tables' changelogs and Faust's leader topic (``<prefix>handoff-<service>-...``)."""
        app = f"{prefix}handoff-{self.service}"
        out = {Grant(self.principal, Resource.TOPIC, spec.qualified(prefix), Pattern.LITERAL, op)
               for spec in self.reads for op in (Operation.READ, Operation.DESCRIBE)}
        out |= {Grant(self.principal, Resource.TOPIC, spec.qualified(prefix), Pattern.LITERAL, op)
                for spec in self.writes for op in (Operation.WRITE, Operation.DESCRIBE)}
        out |= {Grant(self.principal, Resource.TOPIC, f"{app}-", Pattern.PREFIXED, Operation.ALL),
                Grant(self.principal, Resource.GROUP, app, Pattern.LITERAL, Operation.ALL)}
        return sorted(out)


def service_access() -> dict[str, ServiceAccess]:
    """Every service's access: each worker's, and the API's (its read models and what its routes write)."""
    workers = {
        module.SERVICE: ServiceAccess(
            module.SERVICE,
            reads=_unique((*(s.topic for s in module.SUBSCRIPTIONS), *module.FOLLOWS, *EVERY_PROCESS_READS)),
            writes=_unique((*module.WRITES, *moved_to_their_keys_partition(module.SUBSCRIPTIONS),
                            *EVERY_PROCESS_WRITES)))
        for module in WORKERS}
    api = ServiceAccess(API, reads=_unique((*API_FOLLOWS, *EVERY_PROCESS_READS)),
                        writes=_unique((*API_WRITES, *EVERY_PROCESS_WRITES)))
    return {**workers, API: api}


def moved_to_their_keys_partition(subscriptions: tuple) -> tuple[TopicSpec, ...]:
    """The topics outside producers write that a worker reads: it writes a record another client's partitioner put
    on the wrong partition back to its key's (``streams.on_its_keys_partition``), so it writes those too."""
    return tuple(s.topic for s in subscriptions if s.topic.plain_from_outside)


def _unique(specs: tuple[TopicSpec, ...]) -> tuple[TopicSpec, ...]:
    return tuple({spec.name: spec for spec in specs}.values())
