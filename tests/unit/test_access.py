"""Each service's broker principal reaches only its own topics (services/access.py): what it subscribes to
and follows, what it writes, what every process shares, and what carries its own name."""

from __future__ import annotations

from pydantic import SecretStr

from services.access import EVERY_PROCESS_READS, EVERY_PROCESS_WRITES, Operation, Pattern, Resource, service_access
from services.handle_with_care.topics import HWC_NOTICES, HWC_TRIAGE
from services.kernel.topics import AUDIT, CAD_CHILD_ENCOUNTERS, CAD_REFERRALS, PAGES, REFERENCE_DATA, REFERRALS
from services.platform.reference_files import load_reference_data
from services.platform.settings import REPO_ROOT, Settings
from services.runtime import API, API_FOLLOWS, TOPICS, build_http_app

REFERENCE = load_reference_data(REPO_ROOT / "config" / "local")

PREFIX = "t1."


def reachable(service: str, operation: Operation) -> set[str]:
    return {g.name for g in service_access()[service].grants(PREFIX)
            if g.resource is Resource.TOPIC and g.pattern is Pattern.LITERAL and g.operation is operation}


def test_the_notifier_reads_the_lead_topics_and_nothing_of_handle_with_care() -> None:
    reads, writes = reachable("notifier", Operation.READ), reachable("notifier", Operation.WRITE)
    assert {REFERRALS.qualified(PREFIX), PAGES.qualified(PREFIX)} <= reads
    assert writes >= {PAGES.qualified(PREFIX)} and REFERRALS.qualified(PREFIX) not in writes
    for child_data in (HWC_NOTICES, HWC_TRIAGE, CAD_CHILD_ENCOUNTERS):
        assert child_data.qualified(PREFIX) not in reads | writes


def test_only_handle_with_care_reads_the_childrens_topics() -> None:
    children = {spec.qualified(PREFIX) for spec in TOPICS if spec.child_data}
    assert children
    for service in service_access():
        if service not in ("handle-with-care", "cad-gateway", API):  # the gateway follows every CAD feed's heartbeat
            assert not children & reachable(service, Operation.READ), service
    assert not children & reachable("cad-gateway", Operation.READ) - {CAD_CHILD_ENCOUNTERS.qualified(PREFIX)}
    # The API serves Handle With Care's screens (a school's acknowledgement page, coordinators' triage): it reads
    # the notices and triage its read model follows, never the CAD encounters the notices came from.
    assert children & reachable(API, Operation.READ) == {HWC_NOTICES.qualified(PREFIX), HWC_TRIAGE.qualified(PREFIX)}


def test_the_api_reads_what_its_read_models_follow_and_writes_what_its_routes_publish() -> None:
    app = build_http_app(Settings(schema_registry_url="memory://", seal_personal_values=False,
                                  link_signing_key=SecretStr("k")), REFERENCE)
    followed = {name for follower in app.state.followers for name in follower.names}  # no prefix: Settings' own
    assert followed == {spec.qualified("") for spec in API_FOLLOWS}
    assert {spec.qualified(PREFIX) for spec in API_FOLLOWS} <= reachable(API, Operation.READ)
    writes = reachable(API, Operation.WRITE)
    assert {spec.qualified(PREFIX) for spec in (CAD_REFERRALS, CAD_CHILD_ENCOUNTERS, REFERRALS, PAGES, AUDIT)} <= writes
    assert REFERENCE_DATA.qualified(PREFIX) not in writes  # reference data is the administrator's to load


def test_every_service_has_its_group_its_own_internal_topics_and_the_shared_ones_and_nothing_broader() -> None:
    for service, access in service_access().items():
        grants = access.grants(PREFIX)
        assert {(g.resource, g.name, g.pattern) for g in grants if g.operation is Operation.ALL} == {
            (Resource.GROUP, f"{PREFIX}handoff-{service}", Pattern.LITERAL),
            (Resource.TOPIC, f"{PREFIX}handoff-{service}-", Pattern.PREFIXED)}
        assert {s.qualified(PREFIX) for s in EVERY_PROCESS_READS} <= reachable(service, Operation.READ)
        assert {s.qualified(PREFIX) for s in EVERY_PROCESS_WRITES} <= reachable(service, Operation.WRITE)
        assert all(g.principal == f"User:{service}" for g in grants)
