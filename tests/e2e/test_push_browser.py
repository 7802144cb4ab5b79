"""Push on a phone, in Chromium: the console's service worker registers from the Push page; a page pushed to it
through the DevTools protocol (``ServiceWorker.deliverPushMessage``, as a push service would deliver it) shows a
notification with an Acknowledge button and only what the SMS says; its Acknowledge action posts the page's signed
link, which acknowledges the page (PageAcknowledged, via the link), and the notification says so.

DevTools cannot press a notification's button, so the test calls the worker's ``acknowledge`` (what its
``notificationclick`` handler runs for that button) inside the worker itself."""

from __future__ import annotations

import json

import pytest
from pydantic import SecretStr

from deploy.local_stack import free_port
from services import runtime
from services.delivery.channels import new_vapid_key
from services.kernel.events import AcknowledgedVia
from services.kernel.lead import PageAcknowledged
from services.messaging.kafka import InMemoryPublisher
from services.platform.reference_files import load_reference_data
from services.platform.settings import REPO_ROOT
from services.referral_intake.domain.model import open_referral
from tests.conftest import eventually
from tests.e2e.browser import PHONE, screenshot
from tests.factories import NOW, cad_referral

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]
REF = load_reference_data(REPO_ROOT / "config" / "local")

NOTIFICATIONS = """async () => (await (await navigator.serviceWorker.ready).getNotifications())
    .map((n) => ({title: n.title, body: n.body, tag: n.tag, actions: n.actions.map((a) => a.action)}))"""


async def test_a_pushed_page_shows_a_notification_whose_acknowledge_button_acknowledges_it(
        browser, served, memory_settings) -> None:
    port = free_port()
    settings = memory_settings.model_copy(update={
        "link_signing_key": SecretStr("k"), "public_base_url": f"http://127.0.0.1:{port}",
        "push_vapid_private_key": SecretStr(new_vapid_key())})
    publisher = InMemoryPublisher()
    app = runtime.build_http_app(settings, publisher=publisher, follow_topics=False)
    base = await served(app, port)

    context = await browser.new_context(viewport=PHONE)
    await context.grant_permissions(["notifications"], origin=base)
    page = await context.new_page()
    await page.goto(f"{base}/console/login")
    await page.locator("#token").fill("local-dev-token-cm-ana")
    await page.locator("#token").press("Enter")
    await page.wait_for_url(f"{base}/console/my-referrals*")

    await page.goto(f"{base}/console/push")
    await page.get_by_text("This browser can receive push.").wait_for()
    assert await page.evaluate("async () => (await navigator.serviceWorker.ready).scope") == f"{base}/console/"
    await screenshot(page, "push-phone")
    cdp = await context.new_cdp_session(page)
    registrations: dict[str, str] = {}
    cdp.on("ServiceWorker.workerRegistrationUpdated", lambda event: registrations.update(
        {r["scopeURL"]: r["registrationId"] for r in event["registrations"] if not r["isDeleted"]}))
    await cdp.send("ServiceWorker.enable")  # reports the registrations there are
    await eventually(lambda: f"{base}/console/" in registrations, timeout=30)

    referral = open_referral(cad_referral(occurred_at=NOW), REF.sites["abq"], REF.agencies["apd"], NOW)
    app.state.read_model.apply(referral)
    ack_url = app.state.ack_links.url("page", referral.referral_id, "cm-ana")
    pushed = {"title": "LEAD page", "body": "Warm handoff: referral r-push-1. Officer calls back.",
              "tag": "pg-r-push-1/0/0/cm-ana/push-d1",
              "data": {"type": "lead.page", "page_id": "pg-r-push-1", "referral_id": "r-push-1", "ack_url": ack_url}}
    shown = []
    for _ in range(6):  # a worker still activating (a loaded machine) may miss a push: the push service resends
        await cdp.send("ServiceWorker.deliverPushMessage", {
            "origin": base, "registrationId": registrations[f"{base}/console/"], "data": json.dumps(pushed)})
        try:
            shown = await eventually(lambda: page.evaluate(NOTIFICATIONS), timeout=5)
            break
        except AssertionError:
            continue
    assert shown == [{"title": "LEAD page", "body": pushed["body"], "tag": pushed["tag"], "actions": ["ack"]}]

    [worker] = context.service_workers or [await context.wait_for_event("serviceworker")]
    await worker.evaluate("""async () => {
        const [n] = await self.registration.getNotifications();
        await acknowledge(n);  // what the Acknowledge button runs
    }""")
    [acknowledged] = publisher.events(PageAcknowledged)
    assert (acknowledged.referral_id, acknowledged.acknowledged_by, acknowledged.via) == \
        (referral.referral_id, "cm-ana", AcknowledgedVia.link)
    answered = [n for n in await page.evaluate(NOTIFICATIONS) if n["tag"].endswith("/answer")]
    assert answered and answered[0]["body"].startswith("Acknowledged.")

    # The action replayed once the page was taken: refused (409), nothing recorded, and the phone says so.
    app.state.read_model.apply(acknowledged)  # as the API's follower would
    await worker.evaluate("async (url) => acknowledge({tag: 'replayed', data: {ack_url: url}})", ack_url)
    replayed = [n for n in await page.evaluate(NOTIFICATIONS) if n["tag"] == "replayed/answer"]
    assert replayed and replayed[0]["body"].startswith("Someone took this referral already")
    assert len(publisher.events(PageAcknowledged)) == 1
    await context.close()
