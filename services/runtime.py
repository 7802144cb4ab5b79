"""The composition root: builds each service's worker and the HTTP app from settings.

The only module that knows every service; the CLI, the local stack and the tests go through it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import signal
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from services.cad_gateway.entrypoints import http_api as eido_http
from services.cad_gateway.entrypoints import worker as gateway_worker
from services.delivery.channels import Channel, WebhookChannel, delivery_http_client
from services.delivery.links import AckLinks
from services.handle_with_care.adapters.metrics import HwcCollector
from services.handle_with_care.domain.figures import HwcReadModel
from services.handle_with_care.entrypoints import console as hwc_console
from services.handle_with_care.entrypoints import http_api as hwc_http
from services.handle_with_care.entrypoints import worker as hwc_worker
from services.handle_with_care.topics import HWC_NOTICES, HWC_TRIAGE
from services.kernel.clock import Clock, SystemClock
from services.kernel.events import all_events
from services.kernel.fhir import ClientSubscriptions
from services.kernel.lead import PageRequested
from services.kernel.pathways import Pathway
from services.kernel.push import PushDevices
from services.kernel.reference import (
    ReferenceData,
    Site,
)
from services.kernel.topics import (
    AUDIT,
    CAD_CHILD_ENCOUNTERS,
    CAD_OVERDOSES,
    CAD_REFERRALS,
    CAD_WALK_INS,
    CONSOLE_SESSIONS,
    FHIR_SUBSCRIPTIONS,
    PAGES,
    PUSH_SUBSCRIPTIONS,
    REFERRALS,
    TopicSpec,
    all_topics,
)
from services.messaging.avro import AvroCodec, registry_from_url
from services.messaging.kafka import KafkaPublisher, Publisher, TopicFollower, ensure_topics
from services.messaging.reference_feed import ReferenceFeed
from services.messaging.sealing import Sealer
from services.messaging.streams import Worker, prepare_and_start
from services.messaging.subject_keys import SubjectKeys
from services.notifier.domain.officer_view import HandoffProgress
from services.notifier.entrypoints import calendar as notifier_calendar
from services.notifier.entrypoints import http_api as notifier_http
from services.notifier.entrypoints import push_api, voice_api
from services.notifier.entrypoints import worker as notifier_worker
from services.platform.crypto import key_provider
from services.platform.logs import get_logger
from services.platform.reference_files import load_reference_data
from services.platform.settings import Settings
from services.quick_response.domain import figures as qrt_figures
from services.quick_response.domain.figures import QrtReadModel
from services.quick_response.entrypoints import console as qrt_console
from services.quick_response.entrypoints import http_api as qrt_http
from services.quick_response.entrypoints import worker as qrt_worker
from services.quick_response.topics import OVERDOSE_REPORTS, QRT_FOLLOW_UPS
from services.referral_intake.adapters.fhir import refusal_outcome
from services.referral_intake.adapters.metrics import LeadCollector
from services.referral_intake.adapters.read_model import HandoffDetails, LeadReadModel
from services.referral_intake.domain.pathways import lead_pathways
from services.referral_intake.entrypoints import console as lead_console
from services.referral_intake.entrypoints import fhir_api, staff_api
from services.referral_intake.entrypoints import http_api as intake_http
from services.referral_intake.entrypoints import worker as intake_worker
from services.self_referral.domain import figures as walk_in_figures
from services.self_referral.domain.figures import WalkInReadModel
from services.self_referral.entrypoints import console as walk_in_console
from services.self_referral.entrypoints import http_api as walk_in_http
from services.self_referral.entrypoints import worker as walk_in_worker
from services.self_referral.topics import WALK_INS
from services.web import api_docs, console, machine_clients, metrics, oidc, sso
from services.web.deps import IntakeLimits
from services.web.web import RequestLimits, install_error_handlers

log = get_logger(__name__)
# Every wire event: the kernel's and each service's own, all registered by the imports above (the schema files,
# the registry and every operator's command that reads a topic use this list).
EVENTS = all_events()
TOPICS = all_topics()  # every topic, each service's own among them: this module imports them all
API = "api"  # the HTTP app's service name: its broker principal (services.access)
# The API's read models, each with what it follows; and what its routes write (the intakes, staff commands,
# acknowledgements, sessions, audit). Its principal is granted these and nothing else.
API_READ_MODELS = {"lead": (REFERRALS, PAGES), "hwc": (HWC_NOTICES, HWC_TRIAGE),
                   "qrt": (QRT_FOLLOW_UPS, OVERDOSE_REPORTS, CAD_OVERDOSES), "walk_ins": (WALK_INS,),
                   "sessions": (CONSOLE_SESSIONS, FHIR_SUBSCRIPTIONS, PUSH_SUBSCRIPTIONS)}  # small topics, one follower
API_FOLLOWS = tuple(spec for topics in API_READ_MODELS.values() for spec in topics)
API_WRITES = (CAD_REFERRALS, CAD_CHILD_ENCOUNTERS, CAD_OVERDOSES, CAD_WALK_INS, REFERRALS, PAGES, HWC_NOTICES,
              HWC_TRIAGE, QRT_FOLLOW_UPS, WALK_INS, CONSOLE_SESSIONS, FHIR_SUBSCRIPTIONS, PUSH_SUBSCRIPTIONS, AUDIT)

# Every HTTP router, each service's own and the shared ones (the console's sign-in, the API docs, /metrics).
ROUTERS = (api_docs.router, intake_http.router, staff_api.router, fhir_api.router, notifier_http.router,
           push_api.router, voice_api.router, notifier_calendar.router, hwc_http.router, eido_http.router, qrt_http.router, walk_in_http.router,
           metrics.router, console.router, sso.router, lead_console.router, hwc_console.router, qrt_console.router,
           walk_in_console.router)
WORKERS = ("referral-intake", "notifier", "handle-with-care", "quick-response", "self-referral", "cad-gateway")
STOP_TIMEOUT_SECONDS = 30


def ack_links(settings: Settings, clock: Clock | None = None) -> AckLinks:
    key = settings.link_signing_key.get_secret_value() if settings.link_signing_key else ""
    return AckLinks(key, settings.public_base_url, settings.ack_link_ttl_minutes * 60, clock)


def walk_in_links(settings: Settings, clock: Clock | None = None) -> AckLinks:
    """Volunteers' links: they accept, then record milestones and expenses until placement (a day or more)."""
    key = settings.link_signing_key.get_secret_value() if settings.link_signing_key else ""
    return AckLinks(key, settings.public_base_url, settings.walk_in_link_hours * 3600, clock)


def overdose_report_key(settings: Settings) -> bytes:
    key = settings.overdose_report_key or settings.link_signing_key
    return key.get_secret_value().encode() if key else b""


def reference_data(settings: Settings) -> ReferenceData:
    return load_reference_data(Path(settings.reference_dir))


def build_worker(name: str, settings: Settings, reference: ReferenceData | None = None, clock: Clock | None = None,
                 channels: dict[str, Channel] | None = None) -> Worker:
    reference = reference or reference_data(settings)
    if name == "referral-intake":
        return intake_worker.build_worker(settings, reference, clock)
    if name == "notifier":
        return notifier_worker.build_worker(settings, reference, ack_links(settings, clock), clock, channels)
    if name == "handle-with-care":
        return hwc_worker.build_worker(settings, reference, ack_links(settings, clock), clock, channels)
    if name == "quick-response":
        return qrt_worker.build_worker(settings, reference, overdose_report_key(settings), clock, channels)
    if name == "cad-gateway":
        return gateway_worker.build_worker(settings, reference, clock, channels)
    if name == "self-referral":
        links = walk_in_links(settings, clock)
        return walk_in_worker.build_worker(settings, reference, lambda case_id, volunteer_id: walk_in_console.link_for(
            links, case_id, volunteer_id), clock, channels)
    raise ValueError(f"unknown service {name!r}; one of {', '.join(WORKERS)}")


@dataclass(frozen=True)
class LeadPagesRead:
    """The notifier's acknowledgement routes read the LEAD pages (``notifier_http.PagesRead``) through the read
    models intake keeps: the composition root joins the two services, neither imports the other."""

    read_model: LeadReadModel
    details: HandoffDetails
    links: AckLinks
    reference: ReferenceData

    def request_of(self, referral_id: str) -> PageRequested | None:
        return self.details.pages.get(referral_id)

    def acknowledgement_of(self, referral_id: str) -> tuple[str, datetime] | None:
        view = self.read_model.views.get(referral_id)
        return (view.acknowledged_by, view.acknowledged_at) if view is not None and view.acknowledged_at else None

    def page_for_reply(self, case_manager_id: str, code: str) -> str | None:
        view = self.read_model.page_for_reply(case_manager_id, code, self.links.reply_code)
        return view.referral_id if view is not None else None

    def missed_at(self, referral_id: str) -> datetime | None:
        view = self.read_model.views.get(referral_id)
        return view.handoff_missed_at if view is not None and view.acknowledged_at is None else None

    def reply_codes_waiting(self, case_manager_id: str) -> list[str]:
        return [self.links.reply_code(v.referral_id, case_manager_id)
                for v in self.read_model.pages_waiting_for(case_manager_id)]

    def progress_of(self, referral_id: str) -> HandoffProgress | None:
        view = self.read_model.views.get(referral_id)
        if view is None:
            return None
        site = self.reference.site(view.site_id)

        def named(case_manager_id: str) -> str:
            person = self.reference.case_managers.get(case_manager_id)
            return person.display_name if person else "a case manager"

        return HandoffProgress(
            site_id=view.site_id, received_at=view.referred_at, paged_at=view.paged_at, tried_now=[named(cm) for cm in view.tried_now],
            escalated=view.paging_step not in (None, (0, 0)),
            acknowledged_by=named(view.acknowledged_by) if view.acknowledged_by else None,
            acknowledged_at=view.acknowledged_at, missed_at=view.handoff_missed_at, late=view.late,
            window_minutes=site.warm_handoff_window_minutes if site else Site.model_fields[
                "warm_handoff_window_minutes"].default)


# APIs that speak a standard's own error shape: the FHIR API answers every refusal as an OperationOutcome.
ERROR_DIALECTS = {"/fhir": refusal_outcome}


def takes_json(path: str) -> bool:
    """The routes whose bodies are JSON: the /v1 API, except the SMS and voice provider's form-encoded callbacks."""
    return path.startswith("/v1/") and not path.startswith(("/v1/sms/", "/v1/voice/"))


def build_http_app(settings: Settings, reference: ReferenceData | None = None, publisher: Publisher | None = None,
                   clock: Clock | None = None, read_model: LeadReadModel | None = None,
                   follow_topics: bool = True) -> FastAPI:
    """One HTTP app: CAD intake, staff API, page and notice acknowledgement.

    Publishes through Kafka unless given a publisher; keeps its LEAD read model current from the
    referral and page topics unless ``follow_topics`` is off (unit tests feed it directly).
    """
    feed = None
    if reference is None and settings.reference_source == "kafka":
        feed = ReferenceFeed(settings)  # started in the lifespan; the routes read it live
        reference = feed.live
    reference = reference or reference_data(settings)
    clock = clock or SystemClock()
    read_model = read_model if read_model is not None else LeadReadModel()
    handoff_details = HandoffDetails()
    fhir_subscriptions = ClientSubscriptions()
    push_devices = PushDevices()
    webhook_client = delivery_http_client(settings)
    hwc_model = HwcReadModel(lambda school_id: getattr(reference.schools.get(school_id), "district_id", None))
    qrt_model = QrtReadModel(overdose_report_key(settings))
    walk_in_model = WalkInReadModel()
    sessions = console_sessions(settings, reference, clock)
    owned = publisher is None
    # The subject keys: what the intakes write is sealed, what the read models read is opened.
    keys = SubjectKeys(settings, key_provider(settings)) if (owned or follow_topics) and settings.seal_personal_values \
        else None
    codec = AvroCodec(registry_from_url(settings.schema_registry_url),
                      sealer=Sealer(keys, settings.topic_prefix) if keys else None)
    if owned:
        publisher = KafkaPublisher(settings, codec)
        if keys:
            keys.writes_with(publisher)
    # A consumer per read model: merged into one, every fetch carried every partition of every model's topics,
    # busy or idle, and aiokafka encodes and decodes each in Python (measured: +0.25 ms of the API's CPU an item).
    followers = [
        TopicFollower(settings, codec, topics, apply, personal=personal)
        for topics, apply, personal in (
            (API_READ_MODELS["lead"], both(read_model.apply, handoff_details.apply), True),
            (API_READ_MODELS["hwc"], hwc_model.apply, True),
            (API_READ_MODELS["qrt"], qrt_model.apply, True),
            (API_READ_MODELS["walk_ins"], walk_in_model.apply, True),
            # the console lists a person's devices by name: their endpoints and keys stay sealed here
            (API_READ_MODELS["sessions"], both(sessions.apply, fhir_subscriptions.apply, push_devices.apply), False))
    ] if follow_topics else []

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        if feed:
            await feed.start()
        if keys:
            await keys.start()
        if owned:
            await publisher.start()
        # At once: each connects, finds its partitions and their ends, and that is round trips, not work.
        await asyncio.gather(*(follower.start() for follower in followers))
        freeze_start_up_objects()
        try:
            yield
        finally:
            for follower in followers:
                await follower.stop()
            await app.state.providers.close()
            await webhook_client.aclose()
            if keys:  # first: the keys still being written go through the publisher
                await keys.stop()
            if owned:
                await publisher.stop()
            if feed:
                await feed.stop()

    # The docs are served by the routes below, behind authentication like every other endpoint.
    app = FastAPI(title="Handoff", version="1.0", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None,
                  description="CAD intake for LEAD referrals and Handle With Care encounters; acknowledgement links.")
    install_error_handlers(app)
    app.state.error_dialects = ERROR_DIALECTS
    app.add_middleware(RequestLimits, max_body_bytes=settings.http_max_body_bytes, json_route=takes_json,
                       dialects=ERROR_DIALECTS)
    # What the routes depend on (services.web.deps): the routers are module-level and read these per request.
    state = app.state
    state.reference, state.clock, state.publisher = reference, clock, publisher
    state.limits = IntakeLimits(settings.intake_publish_timeout_seconds, settings.event_time_window)
    state.read_model, state.handoff_details, state.hwc_model = read_model, handoff_details, hwc_model
    state.qrt_model, state.walk_in_model, state.sessions, state.followers = qrt_model, walk_in_model, sessions, followers
    state.keys = keys  # started in the lifespan (or by a test that serves the app without one)
    state.caught_up = lambda *written: caught_up(followers, written, settings.topic_prefix)
    if keys:
        keys.on_destroyed.append(handoff_details.erase)
    # Who calls: the identity providers' keys (people's sign-in, machine clients' access tokens) and the audit
    # of every door, shared by the console and the APIs.
    state.providers = oidc.KnownProviders()
    state.access_tokens = machine_clients.AccessTokens(reference, state.providers, clock)
    state.access_log = console.AccessLog(publisher, clock, settings.intake_publish_timeout_seconds)
    key = settings.link_signing_key.get_secret_value() if settings.link_signing_key else ""
    state.sso = sso.SingleSignOn(sessions, state.access_log, settings.public_base_url, clock, f"sso:{key}",
                                 state.providers)
    state.sign_ins, state.sign_out_there = console.SignInLimiter(), state.sso.end_session_url
    state.ack_links, state.walk_in_links = ack_links(settings, clock), walk_in_links(settings, clock)
    state.calendar_links = notifier_calendar.CalendarLinks(key, settings.public_base_url, settings.calendar_months_ahead)
    state.sms_webhook = notifier_http.SmsWebhook(settings.sms_auth_token.get_secret_value(), settings.public_base_url)
    state.fhir_base = f"{settings.public_base_url.rstrip('/')}/fhir"
    state.fhir_subscriptions, state.push_devices, state.settings = fhir_subscriptions, push_devices, settings
    state.webhooks = WebhookChannel(settings, webhook_client)  # a new FHIR Subscription's handshake
    state.metrics = metrics_scrape(settings, read_model, hwc_model, clock)
    # Where one service's pages show another's figures: joined here, so that no service imports another.
    state.pages_read = LeadPagesRead(read_model, handoff_details, state.ack_links, reference)
    state.children_at_incident = lambda agency_id, incident_id: [
        dataclasses.asdict(outcome) for outcome in hwc_model.for_incident(agency_id, incident_id)]
    state.beside_lead = lead_console.BesideLead(
        hwc_rates=lambda districts: hwc_console.hwc_rates_chart(hwc_model, districts, clock.now()),
        other_pathways=lambda site, month: [
            *([qrt_model.month_figures(site.site_id, month, site.zone, site.quick_response)]
              if site.quick_response else []),
            *([walk_in_model.month_figures(site.site_id, month, site.zone, site.self_referral)]
              if site.self_referral else [])],
        catalogue=pathway_catalogue)
    console.install_console_handlers(app, sessions, state.access_log)
    for router in ROUTERS:
        app.include_router(router)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


READ_YOUR_WRITES_SECONDS = 3.0  # a confirmation waits at most this long for the read models to show its effect


async def caught_up(followers: list[TopicFollower], written: tuple[TopicSpec, ...], prefix: str = "",
                    timeout: float = READ_YOUR_WRITES_SECONDS) -> bool:
    """The read models that follow the topics ``written`` have everything written to them before this call (False
    when that took longer than ``timeout``: the page then shows what they had by then)."""
    names = {spec.qualified(prefix) for spec in written}
    results = await asyncio.gather(*(f.sync(timeout, names) for f in followers if f.running and names & set(f.names)))
    return all(results)


def both(*appliers: Callable) -> Callable:
    def apply(event) -> None:
        for applier in appliers:
            applier(event)
    return apply


def console_sessions(settings: Settings, reference: ReferenceData, clock: Clock) -> console.Sessions:
    key = settings.link_signing_key.get_secret_value() if settings.link_signing_key else ""
    return console.Sessions(f"console:{key}", reference, secure_cookies=settings.public_base_url.startswith("https"),
                            clock=clock, idle=timedelta(minutes=settings.console_idle_minutes),
                            lifetime=timedelta(hours=settings.console_session_hours),
                            access_codes=settings.console_access_codes)


def pathway_catalogue(site: Site) -> list[Pathway]:
    """Every pathway the site runs, as the dashboard lists them: LEAD's routes, then each other service's."""
    others = (qrt_figures.pathway_of(site), walk_in_figures.pathway_of(site))
    return lead_pathways(site) + [p for p in others if p is not None]


def metrics_scrape(settings: Settings, lead: LeadReadModel, hwc: HwcReadModel, clock: Clock) -> metrics.Scrape:
    """What /metrics reads: the LEAD and HWC collectors in one registry, and the metrics token."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LeadCollector(lead))
    registry.register(HwcCollector(hwc, clock.now))
    return metrics.Scrape(registry, settings.metrics_token.get_secret_value() if settings.metrics_token else None)


async def reference_to_serve(settings: Settings) -> tuple[ReferenceData, ReferenceFeed | None]:
    """The reference data a process serves with: from files, or live from the reference topic (then the feed that
    keeps it current, for the caller to stop)."""
    if settings.reference_source != "kafka":
        return reference_data(settings), None
    await ensure_topics(settings, TOPICS)
    feed = ReferenceFeed(settings)
    return await feed.start(), feed


async def serve(service: str, settings: Settings, ready: Callable[[], None] | None = None) -> None:
    """Run one worker with its reference data from files or, live, from the reference topic."""
    reference, feed = await reference_to_serve(settings)
    try:
        await serve_worker(build_worker(service, settings, reference), settings, ready)
    finally:
        if feed:
            await feed.stop()


def as_service(settings: Settings, name: str) -> Settings:
    """``settings`` for service ``name`` (or the API) in a process that runs several: it signs in to the broker as
    itself where ``kafka_sasl_password_dir`` holds its password, else as the one principal the settings name."""
    folder = settings.kafka_sasl_password_dir
    if folder is None:
        return settings
    return settings.model_copy(update={"kafka_sasl_username": name,
                                       "kafka_sasl_password": SecretStr((folder / name).read_text().strip())})


async def serve_all(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Every service in one process, for a small site (``handoff run all``): one event loop running each worker's
    Faust app (its own consumer group and producer, as in a process of its own) and the API, with the reference data
    read once. Separate processes stay the way to scale out: the same services, the same topics and groups, so the
    layout is a choice at deploy time, not in code. Ready when ``/healthz`` answers. Runs until SIGINT/SIGTERM, then
    stops the API, then the workers (or once ``stop`` is set: a test's, or an embedding program's)."""
    import uvicorn

    reference, feed = await reference_to_serve(as_service(settings, API))  # read once, for every service
    started: list[Worker] = []
    try:
        # At once, as separate processes start: a start is mostly round trips (topics, read models, the group's
        # join), and for a small site the time to start is the time nothing is taken in, after a deploy or a crash.
        async def start(name: str) -> None:
            worker = build_worker(name, as_service(settings, name), reference)
            await prepare_and_start(worker, as_service(settings, name), TOPICS)
            started.append(worker)  # stopped below, whatever else fails
            log.info("worker_started", app=worker.app.conf.id)

        for failed in await asyncio.gather(*(start(name) for name in WORKERS), return_exceptions=True):
            if isinstance(failed, BaseException):
                raise failed
        app = build_http_app(as_service(settings, API), reference)
        server = uvicorn.Server(uvicorn.Config(app, host=settings.http_host, port=settings.http_port, log_config=None,
                                               access_log=False))
        if stop is not None:
            asyncio.get_running_loop().create_task(_exit_when(stop, server))
        freeze_start_up_objects()
        await server.serve()  # until SIGINT/SIGTERM (uvicorn's own signal handling ends it), or ``stop``
    finally:
        for worker in reversed(started):
            try:
                await asyncio.wait_for(worker.app.stop(), timeout=STOP_TIMEOUT_SECONDS)
            except TimeoutError:
                log.error("worker_stop_timed_out", app=worker.app.conf.id, seconds=STOP_TIMEOUT_SECONDS)
        if feed:
            await feed.stop()


async def _exit_when(stop: asyncio.Event, server) -> None:
    await stop.wait()
    server.should_exit = True


GC_FREEZE_AFTER_SECONDS = 5.0


def freeze_start_up_objects(delay: float = GC_FREEZE_AFTER_SECONDS) -> asyncio.TimerHandle:
    """A few seconds after start-up, put everything alive then (modules, the app, reference data,
    recovered tables) out of the garbage collector's reach. Full collections then scan only what came
    after: measured, they stalled a worker 47–68 ms two or three times in 17 s at 20 referrals/s, and
    under 2 ms once frozen. Garbage from start-up is collected first, so nothing dead is kept."""

    def freeze() -> None:
        gc.collect()
        gc.freeze()
        log.info("gc_frozen", objects=gc.get_freeze_count())

    return asyncio.get_running_loop().call_later(delay, freeze)


async def serve_worker(worker: Worker, settings: Settings, ready: Callable[[], None] | None = None) -> None:
    """Run a worker until SIGINT/SIGTERM, then stop it cleanly (commits offsets, flushes the producer)."""
    app = worker.app
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info("worker_starting", app=app.conf.id)
    # A stop asked for while starting ends the start: with the broker away a start waits for ever, and a worker
    # that took SIGTERM then outlived whatever started it.
    starting, stopping = asyncio.ensure_future(prepare_and_start(worker, settings, TOPICS)), asyncio.ensure_future(stop.wait())
    await asyncio.wait((starting, stopping), return_when=asyncio.FIRST_COMPLETED)
    if starting.done():
        if starting.exception() is not None:
            stopping.cancel()
        starting.result()  # a start that failed fails the process
        log.info("worker_started", app=app.conf.id)
        freeze_start_up_objects()
        if ready:
            ready()
        await stopping
    else:
        starting.cancel()
        await asyncio.gather(starting, return_exceptions=True)
        log.warning("worker_stopped_while_starting", app=app.conf.id)
    log.info("worker_stopping", app=app.conf.id)
    try:
        # Bounded: with the broker gone a clean stop can wait forever; uncommitted work is redone
        # on restart (deliveries are idempotent), so giving up here loses nothing.
        await asyncio.wait_for(app.stop(), timeout=STOP_TIMEOUT_SECONDS)
    except TimeoutError:
        log.error("worker_stop_timed_out", app=app.conf.id, seconds=STOP_TIMEOUT_SECONDS)
