"""Local stand-ins for the outside world's receivers, for the local stack and the tests.

- an SMS provider with Twilio's REST shape: POST /2010-04-01/Accounts/{sid}/Messages.json
- webhook receivers: POST /webhooks/{name}, checking the HMAC signature when a secret is set
- an SMTP server (aiosmtpd) that accepts STARTTLS-less local mail
- GET /messages (JSON) and GET / (a page) to see what arrived
- POST /sms/reply: a text back from a phone ("ACK 123456"), signed as the SMS provider signs it and
  forwarded to Handoff's inbound SMS webhook, so the reply path works locally too
- a voice provider with Twilio's REST shape: POST .../Calls.json places a call, which "answers" at once: it
  fetches the call's TwiML (signed as the provider signs), shows what it says, and offers the keys it gathers;
  POST /voice/{call}/press posts a key back, signed, and then the call's end to its status callback
- a Web Push service with a browser behind it: POST /push/subscriptions makes a subscription (a P-256 key pair
  and an auth secret, as a browser's PushManager does); POST /push/{id} takes a push as a push service does
  (RFC 8030: TTL required; RFC 8292: the VAPID token checked with py-vapid, its audience and expiry too), and
  decrypts it with the subscription's private key (RFC 8291, with http_ece) to show what the phone would; an
  unknown or unsubscribed id answers 410, as a real push service does

Like a real provider, it drops a repeated idempotency key (Twilio's token, the webhook's
Idempotency-Key, the mail's Message-ID) and counts it, so tests can tell a duplicate send apart.
"""

from __future__ import annotations

import asyncio
import html
import itertools
import json
import logging
import threading
import time
from dataclasses import asdict, dataclass, field
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path

import httpx
import uvicorn
from aiosmtpd.controller import Controller
from fastapi import FastAPI, Form, Header, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse

from services.delivery.channels import b64url, from_b64url, twilio_signature, verify_webhook


@dataclass
class Received:
    kind: str            # sms | email | webhook | push | voice
    to: str
    idempotency_key: str | None
    subject: str | None
    body: str
    headers: dict[str, str] = field(default_factory=dict)
    received_at: float = field(default_factory=time.monotonic)  # for latency benchmarks (same-host clock)


class Inbox:
    def __init__(self, webhook_secret: str = "", out_dir: Path | None = None, sms_replies_to: str = "",
                 sms_auth_token: str = "") -> None:
        self.sms_replies_to = sms_replies_to.rstrip("/")  # Handoff's base URL, for replies
        self.sms_auth_token = sms_auth_token
        self.messages: list[Received] = []
        self.duplicates: list[Received] = []
        # Indexes, so a benchmark's hundreds of thousands of messages cost O(1) each, not a scan.
        self._keys: set[str] = set()
        self._by_kind: dict[str, list[Received]] = {}
        self.webhook_secret = webhook_secret
        self.out_dir = out_dir
        # Fault injection for tests: kind -> how many requests to refuse (SMS: HTTP 503, webhook:
        # HTTP 500, email: SMTP 451), and kind (or "kind:address") -> seconds to sit on each request
        # before answering: a recipient that is down, and one that is slow.
        self.fail_next: dict[str, int] = {}
        self.delay: dict[str, float] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.push_subscriptions: dict[str, tuple[object, bytes]] = {}  # id -> (private key, auth secret)
        self.calls: dict[str, Call] = {}  # call sid -> the call as answered

    def add(self, message: Received) -> bool:
        with self._lock:
            if message.idempotency_key:
                if message.idempotency_key in self._keys:
                    self.duplicates.append(message)
                    return False
                self._keys.add(message.idempotency_key)
            self.messages.append(message)
            self._by_kind.setdefault(message.kind, []).append(message)
            if self.out_dir:
                self.out_dir.mkdir(parents=True, exist_ok=True)
                (self.out_dir / f"{next(self._ids):05d}-{message.kind}.json").write_text(json.dumps(asdict(message), indent=2))
            return True

    def take_failure(self, kind: str) -> bool:
        with self._lock:
            if self.fail_next.get(kind, 0) > 0:
                self.fail_next[kind] -= 1
                return True
            return False

    async def stall(self, kind: str, to: str) -> None:
        seconds = self.delay.get(f"{kind}:{to}", self.delay.get(kind, 0))
        if seconds:
            await asyncio.sleep(seconds)

    def of(self, kind: str) -> list[Received]:
        return list(self._by_kind.get(kind, ()))

    def count(self, kind: str) -> int:
        return len(self._by_kind.get(kind, ()))


def create_http(inbox: Inbox) -> FastAPI:
    app = FastAPI(title="Handoff dev inbox")

    @app.post("/2010-04-01/Accounts/{sid}/Messages.json", status_code=201)
    async def sms(sid: str, To: str = Form(...), From: str = Form(...), Body: str = Form(...),
                  token: str | None = Header(None, alias="I-Twilio-Idempotency-Token")) -> Response:
        await inbox.stall("sms", To)
        if inbox.take_failure("sms"):
            return JSONResponse({"message": "temporarily unavailable"}, status_code=503)
        inbox.add(Received("sms", To, token, None, Body, {"From": From}))
        return JSONResponse({"sid": f"SM{token or ''}"[:34], "status": "queued", "to": To}, status_code=201)

    @app.post("/webhooks/{name}")
    async def webhook(name: str, request: Request) -> Response:
        await inbox.stall("webhook", name)
        if inbox.take_failure("webhook"):
            return JSONResponse({"error": "internal error"}, status_code=500)
        body = await request.body()
        if inbox.webhook_secret and not verify_webhook(inbox.webhook_secret, request.headers.get("X-Handoff-Signature", ""), body):
            return JSONResponse({"error": "bad signature"}, status_code=401)
        inbox.add(Received("webhook", name, request.headers.get("Idempotency-Key"), None, body.decode(),
                           {"X-Handoff-Signature": request.headers.get("X-Handoff-Signature", "")}))
        return JSONResponse({"ok": True})

    @app.post("/2010-04-01/Accounts/{sid}/Calls.json", status_code=201)
    async def call(sid: str, To: str = Form(...), From: str = Form(...), Url: str = Form(...),
                   StatusCallback: str = Form(""),
                   token: str | None = Header(None, alias="I-Twilio-Idempotency-Token")) -> Response:
        await inbox.stall("voice", To)
        if inbox.take_failure("voice"):
            return JSONResponse({"message": "temporarily unavailable"}, status_code=503)
        call_sid = f"CA{next(inbox._ids):032d}"
        placed = Call(call_sid, To, From, Url, StatusCallback)
        if not inbox.add(Received("voice", To, token, None, "", {"CallSid": call_sid})):
            return JSONResponse({"sid": call_sid, "status": "queued", "to": To}, status_code=201)  # a repeat: no call
        inbox.calls[call_sid] = placed
        await answer(inbox, placed)
        return JSONResponse({"sid": call_sid, "status": "queued", "to": To}, status_code=201)

    @app.post("/voice/{call_sid}/press")
    async def press(call_sid: str, Digit: str = Form(...)) -> Response:
        placed = inbox.calls.get(call_sid)
        if placed is None or not placed.gather_action:
            return JSONResponse({"error": "no call is waiting for a key"}, status_code=404)
        said = await post_signed(inbox.sms_auth_token, placed.gather_action, placed.form("in-progress", Digits=Digit))
        placed.pressed, placed.answer = Digit, said.text
        if placed.status_callback:
            await post_signed(inbox.sms_auth_token, placed.status_callback, placed.form("completed"))
        return Response(said.content, status_code=said.status_code, media_type=said.headers.get("content-type"))

    @app.post("/push/subscriptions", status_code=201)
    async def push_subscribe(request: Request) -> dict:
        """What a browser's ``PushManager.subscribe()`` gives a page: an endpoint and the keys to encrypt for."""
        subscription_id, subscription = new_push_subscription()
        inbox.push_subscriptions[subscription_id] = subscription
        return push_subscription_json(str(request.base_url).rstrip("/"), subscription_id, subscription)

    @app.delete("/push/subscriptions/{subscription_id}", status_code=204)
    async def push_unsubscribe(subscription_id: str) -> Response:
        inbox.push_subscriptions.pop(subscription_id, None)
        return Response(status_code=204)

    @app.post("/push/{subscription_id}", status_code=201)
    async def push(subscription_id: str, request: Request) -> Response:
        await inbox.stall("push", subscription_id)
        if inbox.take_failure("push"):
            return JSONResponse({"error": "temporarily unavailable"}, status_code=503)
        subscription = inbox.push_subscriptions.get(subscription_id)
        if subscription is None:
            return JSONResponse({"error": "no such subscription"}, status_code=410)
        refused = push_refused(request.headers, str(request.base_url).rstrip("/"))
        if refused:
            return JSONResponse({"error": refused[1]}, status_code=refused[0])
        try:
            notification = json.loads(decrypt_push(await request.body(), *subscription))
        except Exception:
            return JSONResponse({"error": "does not decrypt for this subscription"}, status_code=400)
        inbox.add(Received("push", subscription_id, request.headers.get("Topic"), notification.get("title"),
                           notification.get("body", ""), {h: request.headers.get(h, "") for h in ("Urgency", "TTL")}
                           | {"notification": json.dumps(notification)}))
        return Response(status_code=201, headers={"Location": f"/push/messages/{len(inbox.messages)}"})

    @app.post("/sms/reply")
    async def sms_reply(From: str = Form(...), Body: str = Form(...)) -> Response:
        """A phone's text back, delivered as the SMS provider would: signed, to the inbound webhook."""
        if not inbox.sms_replies_to:
            return JSONResponse({"error": "started without --sms-replies-to"}, status_code=409)
        resp = await forward_sms_reply(inbox.sms_replies_to, inbox.sms_auth_token, From, Body)
        return Response(resp.content, status_code=resp.status_code, media_type=resp.headers.get("content-type"))

    @app.get("/messages")
    async def messages() -> dict:
        return {"messages": [asdict(m) for m in inbox.messages], "duplicates": len(inbox.duplicates)}

    @app.get("/", response_class=HTMLResponse)
    async def page() -> HTMLResponse:
        def reply(m: Received) -> str:
            if m.kind == "voice" and m.headers.get("Gather"):
                call_sid = html.escape(m.headers["CallSid"])
                return "".join(f'<form method=post action="/voice/{call_sid}/press" style="display:inline">'
                               f'<input type=hidden name=Digit value="{d}"><button type=submit>Press {d}</button></form>'
                               for d in ("1", "2"))
            if m.kind != "sms" or not inbox.sms_replies_to:
                return ""
            return (f'<form method=post action="/sms/reply"><input type=hidden name=From value="{html.escape(m.to)}">'
                    f'<label>Reply as {html.escape(m.to)} <input name=Body value="ACK "></label>'
                    "<button type=submit>Send</button></form>")

        rows = "".join(f"<li><b>{html.escape(m.kind)}</b> to {html.escape(m.to)}: {html.escape(m.subject or '')}"
                       f"<pre>{html.escape(m.body)}</pre>{reply(m)}</li>" for m in reversed(inbox.messages))
        return HTMLResponse(f"<!doctype html><title>Handoff dev inbox</title><h1>Dev inbox</h1><ol>{rows}</ol>")

    return app


@dataclass
class Call:
    """A call the stand-in provider placed and answered: what it was told to say, and where a key goes."""

    sid: str
    to: str
    caller: str
    url: str
    status_callback: str
    said: str = ""
    gather_action: str = ""
    pressed: str = ""
    answer: str = ""

    def form(self, status: str, **more: str) -> dict[str, str]:
        return {"CallSid": self.sid, "From": self.caller, "To": self.to, "CallStatus": status, **more}


async def post_signed(auth_token: str, url: str, form: dict[str, str]) -> httpx.Response:
    """A request as the provider makes it: form-encoded, with its X-Twilio-Signature over the URL and form."""
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.post(url, data=form, headers={"X-Twilio-Signature": twilio_signature(auth_token, url, form)})


async def answer(inbox: Inbox, placed: Call) -> None:
    """Pick up: fetch the call's TwiML and keep what it says and where its Gather posts the key."""
    from urllib.parse import urljoin

    from defusedxml import ElementTree

    try:
        twiml = await post_signed(inbox.sms_auth_token, placed.url, placed.form("in-progress"))
        root = ElementTree.fromstring(twiml.content)
    except Exception as exc:  # the call's owner did not answer with TwiML: the call says so
        placed.said = f"(no TwiML: {type(exc).__name__})"
        return
    placed.said = " ".join((say.text or "").strip() for say in root.iter("Say"))
    gather = root.find("Gather")
    placed.gather_action = urljoin(placed.url, gather.get("action", "")) if gather is not None else ""
    with inbox._lock:
        for message in inbox.messages:
            if message.kind == "voice" and message.headers.get("CallSid") == placed.sid:
                message.body = placed.said
                message.headers["Gather"] = placed.gather_action


def new_push_subscription() -> tuple[str, tuple[object, bytes]]:
    """A subscription as a browser makes one: a P-256 key pair and a 16-byte auth secret (RFC 8291)."""
    import os
    import secrets as _secrets

    from cryptography.hazmat.primitives.asymmetric import ec

    return _secrets.token_urlsafe(12), (ec.generate_private_key(ec.SECP256R1()), os.urandom(16))


def push_subscription_json(base_url: str, subscription_id: str, subscription: tuple[object, bytes]) -> dict:
    from cryptography.hazmat.primitives import serialization

    private_key, auth = subscription
    point = private_key.public_key().public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return {"endpoint": f"{base_url}/push/{subscription_id}", "expirationTime": None,
            "keys": {"p256dh": b64url(point), "auth": b64url(auth)}}


def push_refused(headers, base_url: str, now: float | None = None) -> tuple[int, str] | None:
    """Why a push service refuses this request, or None: no TTL (RFC 8030), a VAPID token that py-vapid does not
    verify, or one for another audience or past its expiry (RFC 8292)."""
    from py_vapid import Vapid02

    if "TTL" not in headers:
        return 400, "TTL header required"
    if headers.get("Content-Encoding") != "aes128gcm":
        return 415, "Content-Encoding must be aes128gcm"
    authorization = headers.get("Authorization", "")
    try:
        verified = Vapid02.verify(authorization)
        token = authorization.split("t=", 1)[1].split(",", 1)[0]
        claims = json.loads(from_b64url(token.split(".")[1]))
    except Exception:
        verified, claims = False, {}
    if not verified:
        return 401, "VAPID token missing or not verified"
    now = now or time.time()
    if claims.get("aud") != base_url or not now < claims.get("exp", 0) <= now + 24 * 3600:
        return 403, "VAPID token for another audience, or expired, or for longer than 24 hours"
    return None


def decrypt_push(body: bytes, private_key: object, auth: bytes) -> bytes:
    """A push body as the browser decrypts it (RFC 8291, aes128gcm), by http_ece."""
    import http_ece

    return http_ece.decrypt(body, private_key=private_key, auth_secret=auth, version="aes128gcm")


async def forward_sms_reply(handoff_url: str, auth_token: str, sender: str, body: str,
                            transport: httpx.AsyncBaseTransport | None = None) -> httpx.Response:
    """POST the reply to ``handoff_url``/v1/sms/inbound with Twilio's form fields and signature."""
    url = f"{handoff_url.rstrip('/')}/v1/sms/inbound"
    form = {"From": sender, "Body": body, "To": "+15055550000", "MessageSid": f"SMdev{next(_reply_ids)}"}
    async with httpx.AsyncClient(transport=transport, timeout=10) as client:
        return await client.post(url, data=form, headers={"X-Twilio-Signature": twilio_signature(auth_token, url, form)})


_reply_ids = itertools.count(1)


class _SmtpHandler:
    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    async def handle_DATA(self, server, session, envelope) -> str:
        await self.inbox.stall("email", ",".join(envelope.rcpt_tos))
        if self.inbox.take_failure("email"):
            return "451 4.3.0 try again later"
        mail = message_from_bytes(envelope.content, policy=default_policy)
        body = mail.get_body(preferencelist=("plain",))
        for rcpt in envelope.rcpt_tos:
            self.inbox.add(Received("email", rcpt, f"{mail['Message-ID']}/{rcpt}", mail["Subject"],
                                    body.get_content() if body else "", {"X-Handoff-Delivery": mail["X-Handoff-Delivery"] or ""}))
        return "250 OK"


class DevInbox:
    """Runs the HTTP receivers (in a thread with its own loop) and the SMTP server; ``stop()`` ends both."""

    def __init__(self, http_port: int, smtp_port: int, webhook_secret: str = "", out_dir: Path | None = None,
                 host: str = "127.0.0.1", sms_replies_to: str = "", sms_auth_token: str = "") -> None:
        self.inbox = Inbox(webhook_secret, out_dir, sms_replies_to, sms_auth_token)
        self.http_port, self.smtp_port = http_port, smtp_port
        self._server = uvicorn.Server(uvicorn.Config(create_http(self.inbox), host=host, port=http_port,
                                                     log_level="warning", lifespan="off",
                                                     timeout_graceful_shutdown=1))
        self._smtp = Controller(_SmtpHandler(self.inbox), hostname=host, port=smtp_port)
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> DevInbox:
        # aiosmtpd logs every RCPT TO at INFO: recipients are personal data, even in a stand-in.
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        self._smtp.start()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._server.serve()), daemon=True)
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"dev inbox HTTP server failed to start on port {self.http_port}")
            threading.Event().wait(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread:
            self._thread.join(timeout=10)
        self._smtp.stop()

    def __enter__(self) -> DevInbox:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    import argparse
    import signal

    parser = argparse.ArgumentParser(prog="python -m deploy.dev_inbox", description="Local SMS/webhook/SMTP receivers")
    parser.add_argument("--http-port", type=int, default=8025)
    parser.add_argument("--smtp-port", type=int, default=8026)
    parser.add_argument("--webhook-secret", default="")
    parser.add_argument("--out-dir", type=Path, default=None)
    parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 only inside a container")
    parser.add_argument("--sms-replies-to", default="", help="Handoff's base URL: where texts back are forwarded")
    parser.add_argument("--sms-auth-token-file", type=Path, default=None, help="the SMS auth token Handoff checks")
    args = parser.parse_args(argv)
    token = args.sms_auth_token_file.read_text().strip() if args.sms_auth_token_file else ""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    with DevInbox(args.http_port, args.smtp_port, args.webhook_secret, args.out_dir, args.host,
                  args.sms_replies_to, token) as inbox:
        print(f"dev inbox: {inbox.base_url} (SMTP on 127.0.0.1:{args.smtp_port})", flush=True)
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
