"""The composition root: builds each service's worker and the HTTP app from settings.

The only module that knows every service; the CLI, the local stack and the tests go through it.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path

import faust
from fastapi import FastAPI

from services.core.avro import AvroCodec, registry_from_url
from services.core.channels import Channel
from services.core.clock import Clock, SystemClock
from services.core.kafka import KafkaPublisher, Publisher, TopicFollower
from services.core.links import AckLinks
from services.core.logs import get_logger
from services.core.reference import ReferenceData, load_reference_data
from services.core.settings import Settings
from services.core.streams import prepare_and_start
from services.core.topics import PAGES, REFERRALS
from services.core.web import install_error_handlers
from services.handle_with_care.entrypoints import http_api as hwc_http
from services.handle_with_care.entrypoints import worker as hwc_worker
from services.notifier.entrypoints import http_api as notifier_http
from services.notifier.entrypoints import worker as notifier_worker
from services.referral_intake.adapters.read_model import LeadReadModel
from services.referral_intake.entrypoints import http_api as intake_http
from services.referral_intake.entrypoints import staff_api
from services.referral_intake.entrypoints import worker as intake_worker

log = get_logger(__name__)

WORKERS = ("referral-intake", "notifier", "handle-with-care")


def ack_links(settings: Settings) -> AckLinks:
    key = settings.link_signing_key.get_secret_value() if settings.link_signing_key else ""
    return AckLinks(key, settings.public_base_url, settings.ack_link_ttl_minutes * 60)


def reference_data(settings: Settings) -> ReferenceData:
    return load_reference_data(Path(settings.reference_dir))


def build_worker(name: str, settings: Settings, reference: ReferenceData | None = None, clock: Clock | None = None,
                 channels: dict[str, Channel] | None = None) -> faust.App:
    reference = reference or reference_data(settings)
    if name == "referral-intake":
        return intake_worker.build_worker(settings, reference, clock)
    if name == "notifier":
        return notifier_worker.build_worker(settings, reference, ack_links(settings), clock, channels)
    if name == "handle-with-care":
        return hwc_worker.build_worker(settings, reference, ack_links(settings), clock, channels)
    raise ValueError(f"unknown service {name!r}; one of {', '.join(WORKERS)}")


def build_http_app(settings: Settings, reference: ReferenceData | None = None, publisher: Publisher | None = None,
                   clock: Clock | None = None, read_model: LeadReadModel | None = None,
                   follow_topics: bool = True) -> FastAPI:
    """One HTTP app: CAD intake, staff API, page and notice acknowledgement.

    Publishes through Kafka unless given a publisher; keeps its LEAD read model current from the
    referral and page topics unless ``follow_topics`` is off (unit tests feed it directly).
    """
    reference = reference or reference_data(settings)
    clock = clock or SystemClock()
    read_model = read_model if read_model is not None else LeadReadModel()
    owned = publisher is None
    if owned:
        publisher = KafkaPublisher(settings, AvroCodec(registry_from_url(settings.schema_registry_url)))
    follower = TopicFollower(settings, AvroCodec(registry_from_url(settings.schema_registry_url)), (REFERRALS, PAGES),
                             read_model.apply) if follow_topics else None

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        if owned:
            await publisher.start()
        if follower:
            await follower.start()
        try:
            yield
        finally:
            if follower:
                await follower.stop()
            if owned:
                await publisher.stop()

    app = FastAPI(title="Handoff", version="1.0", lifespan=lifespan,
                  description="CAD intake for LEAD referrals and Handle With Care encounters; acknowledgement links.")
    install_error_handlers(app)
    links = ack_links(settings)
    app.include_router(intake_http.create_router(reference, publisher))
    metrics_token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    app.include_router(staff_api.create_router(reference, read_model, publisher, clock, metrics_token))
    app.include_router(notifier_http.create_router(
        links, publisher, clock, reference=reference,
        page_for_reply=lambda cm, code: read_model.page_for_reply(cm, code, links.reply_code),
        sms_auth_token=settings.sms_auth_token.get_secret_value(), public_base_url=settings.public_base_url))
    app.include_router(hwc_http.create_router(links, publisher, clock))
    app.state.read_model = read_model
    app.state.follower = follower

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


async def serve_worker(app: faust.App, settings: Settings, ready: Callable[[], None] | None = None) -> None:
    """Run a Faust app until SIGINT/SIGTERM, then stop it cleanly (commits offsets, flushes the producer)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await prepare_and_start(app, settings)
    log.info("worker_started", app=app.conf.id)
    if ready:
        ready()
    await stop.wait()
    log.info("worker_stopping", app=app.conf.id)
    await app.stop()
