"""Push on a phone, in Chromium, from the page to the officer: the console's service worker registers from the Push
page; the notifier pages the on-call (in memory: fake clock, recording channels), and the push it sends is
delivered to the worker through the DevTools protocol (``ServiceWorker.deliverPushMessage``, as a push service
would deliver it); the notification shows what the SMS says with an Acknowledge button; its action posts the
page's signed link to the API, which acknowledges the page; the notifier reads that back and tells the officer.
Replayed after that, the action is refused and the phone says someone took it.

DevTools cannot press a notification's button, so the test calls the worker's ``acknowledge`` (what its
``notificationclick`` handler runs for that button) inside the worker itself."""

from __future__ import annotations

import json

import pytest
from pydantic import SecretStr

from deploy.local_stack import free_port
from services import runtime
from services.delivery.channels import DeliveryHttp, WebPushChannel, new_vapid_key
from services.delivery.links import AckLinks
from services.kernel.events import AcknowledgedVia, Channel
from services.kernel.lead import PageAcknowledged
from services.notifier.domain.schedule import on_call_at
from tests.conftest import eventually
from tests.e2e.browser import PHONE, screenshot
from tests.unit.lead.test_notifier_service import REF, T0, Harness
from tests.unit.lead.test_officer_view import officer_texts
from tests.unit.lead.test_push_devices import device

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

NOTIFICATIONS = """async () => (await (await navigator.serviceWorker.ready).getNotifications())
    .map((n) => ({title: n.title, body: n.body, tag: n.tag, actions: n.actions.map((a) => a.action)}))"""


async def test_a_pushed_page_is_acknowledged_from_its_notification_and_the_officer_is_told(
        browser, served, memory_settings) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    everyone_push = REF.model_copy(update={"case_managers": {
        cm_id: cm.model_copy(update={"channels": (Channel.push, Channel.sms)}) for cm_id, cm in REF.case_managers.items()}})
    h = Harness(reference=everyone_push)  # the notifier, in memory; its links lead to the API served below
    h.notifier.links = h.links = AckLinks("test-secret", base, 3600, h.clock)
    settings = memory_settings.model_copy(update={"link_signing_key": SecretStr("test-secret"), "public_base_url": base,
                                                  "push_vapid_private_key": SecretStr(new_vapid_key())})
    app = runtime.build_http_app(settings, everyone_push, h.publisher, h.clock, follow_topics=False)
    await served(app, port)
    site = REF.sites["abq"]
    on_call = on_call_at(site.on_call, site.zone, T0)

    context = await browser.new_context(viewport=PHONE)
    await context.grant_permissions(["notifications"], origin=base)
    page = await context.new_page()
    await page.goto(f"{base}/console/login")
    await page.locator("#token").fill(f"local-dev-token-{on_call}")
    await page.locator("#token").press("Enter")
    await page.wait_for_url(f"{base}/console/**")
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

    # The notifier pages the on-call: push to their device (this browser), SMS beside it.
    h.notifier.push_devices.apply(device(on_call, f"https://push.example.net/{on_call}"))
    await h.notifier.on_referral_event(h.referral)
    [pushed] = h.channels["push"].sent
    async with DeliveryHttp(1, 10.0) as http:
        notification = WebPushChannel(settings, http).notification(pushed)  # what the push service carries
    shown = []
    for _ in range(6):  # a worker still activating (a loaded machine) may miss a push: the push service resends
        await cdp.send("ServiceWorker.deliverPushMessage", {
            "origin": base, "registrationId": registrations[f"{base}/console/"], "data": notification.decode()})
        try:
            shown = await eventually(lambda: page.evaluate(NOTIFICATIONS), timeout=5)
            break
        except AssertionError:
            continue
    sms = next(m for m in h.channels["sms"].sent if m.address == REF.case_managers[on_call].phone)
    assert shown == [{"title": pushed.subject, "body": sms.text, "tag": pushed.attempt_id, "actions": ["ack"]}]
    assert "Zebulon" not in json.dumps(shown)  # the minimum, as the SMS

    [worker] = context.service_workers or [await context.wait_for_event("serviceworker")]
    await worker.evaluate("""async () => {
        const [n] = await self.registration.getNotifications();
        await acknowledge(n);  // what the Acknowledge button runs
    }""")
    [acknowledged] = h.publisher.events(PageAcknowledged)
    assert (acknowledged.referral_id, acknowledged.acknowledged_by, acknowledged.via) == \
        (h.referral.referral_id, on_call, AcknowledgedVia.link)
    answered = [n for n in await page.evaluate(NOTIFICATIONS) if n["tag"].endswith("/answer")]
    assert answered and answered[0]["body"].startswith("Acknowledged.")
    await h.feed_published()  # the notifier reads the acknowledgement back from the pages topic
    told = officer_texts(h)
    assert told and f"{REF.case_managers[on_call].display_name} acknowledged your LEAD referral" in told[-1]

    # The action replayed once the page was taken: refused (409), nothing recorded, and the phone says so.
    app.state.read_model.apply(h.referral)  # as the API's follower would have them
    app.state.read_model.apply(acknowledged)
    ack_url = json.loads(notification)["data"]["ack_url"]
    await worker.evaluate("async (url) => acknowledge({tag: 'replayed', data: {ack_url: url}})", ack_url)
    replayed = [n for n in await page.evaluate(NOTIFICATIONS) if n["tag"] == "replayed/answer"]
    assert replayed and replayed[0]["body"].startswith("Someone took this referral already")
    assert len(h.publisher.events(PageAcknowledged)) == 1
    await context.close()
