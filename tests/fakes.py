"""Test doubles for the outside world: channels that record instead of sending."""

from __future__ import annotations

from services.core.channels import DeliveryFailed, Outgoing


class RecordingChannel:
    """Records every message; fails the first ``fail_times`` sends (or always, with ``fail_times=-1``)."""

    def __init__(self, name: str, fail_times: int = 0, permanent: bool = False) -> None:
        self.name = name
        self.fail_times = fail_times
        self.permanent = permanent
        self.sent: list[Outgoing] = []
        self.tries = 0

    async def send(self, message: Outgoing) -> None:
        self.tries += 1
        if self.fail_times == -1 or self.tries <= self.fail_times:
            raise DeliveryFailed(f"{self.name} down", permanent=self.permanent)
        self.sent.append(message)


def recording_channels(**failures: int) -> dict[str, RecordingChannel]:
    return {name: RecordingChannel(name, failures.get(name, 0)) for name in ("sms", "email", "webhook")}
