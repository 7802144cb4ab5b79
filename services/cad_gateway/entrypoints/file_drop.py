"""``handoff connect watch DIR``: one file per call from a CAD's landing folder (an SFTP drop or a share).

Each file is read (NENA EIDO JSON, or the agency's CSV or XML layout), mapped through the agency's
call-type table and published to the intakes' CAD topics, then moved to ``done/``; a file that cannot
be read goes to ``rejected/`` with ``<name>.reason.txt`` beside it, and one with nothing to act on to
``done/`` with its reason too. Nothing valid waits behind a bad file.

Exactly once: a file's SHA-256 goes into a ledger (``.handoff/ingested.jsonl`` in the folder) once its
events are on the broker, so the same file again (a re-upload, a copy under another name, a restart
after publishing but before moving) is not published again; a crash between publishing and the
ledger publishes again the same event ids, which the intakes drop. A file still being written (changed
in the last ``settle_seconds``) is left for the next round. Lag (the oldest waiting file's age) and
outcomes are Prometheus metrics.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge

from services.cad_gateway.domain.calls import CallRecord, map_calls
from services.cad_gateway.domain.eido import NothingToMap, read_eido
from services.cad_gateway.domain.layouts import MAX_FILE_BYTES, Layout
from services.cad_gateway.service import publish_mapped
from services.kernel.clock import Clock, EventTimeWindow
from services.kernel.errors import Rejected
from services.kernel.reference import Agency, ReferenceData
from services.messaging.kafka import Publisher
from services.platform.logs import correlation_of, correlation_scope, get_logger

log = get_logger(__name__)
STATE_DIR = ".handoff"


@dataclass(frozen=True)
class Outcome:
    file: str
    result: str  # "ingested", "duplicate", "nothing_to_map", "rejected", "retry"
    reason: str = ""


def eido_reader(data: bytes) -> list[CallRecord]:
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise Rejected("file", "not JSON") from None
    return read_eido(document)


class FileDrop:
    def __init__(self, folder: Path, agency_id: str, reader: Callable[[bytes], list[CallRecord]], reference: ReferenceData,
                 publisher: Publisher, clock: Clock, window: EventTimeWindow = EventTimeWindow(),
                 settle_seconds: float = 2.0, registry: CollectorRegistry | None = None) -> None:
        self.inbox = Path(folder)
        self.done, self.rejected = self.inbox / "done", self.inbox / "rejected"
        self.ledger = self.inbox / STATE_DIR / "ingested.jsonl"
        for path in (self.done, self.rejected, self.ledger.parent):
            path.mkdir(parents=True, exist_ok=True)
        self.agency_id = agency_id
        self.reader = reader
        self.reference = reference
        self.publisher = publisher
        self.clock = clock
        self.window = window
        self.settle_seconds = settle_seconds
        self.seen = self._read_ledger()
        registry = registry or CollectorRegistry()
        self.lag = Gauge("handoff_file_drop_lag_seconds", "Age of the oldest file waiting in the folder",
                         ["agency"], registry=registry)
        self.files = Counter("handoff_file_drop_files", "Files handled, by outcome", ["agency", "outcome"],
                             registry=registry)
        self.registry = registry

    @property
    def agency(self) -> Agency:
        agency = self.reference.agencies.get(self.agency_id)
        if agency is None:
            raise ValueError(f"unknown agency {self.agency_id!r}")
        return agency

    def waiting(self) -> list[Path]:
        """Files in the folder, oldest first (hidden files and the outcome folders are not calls)."""
        files = [Path(e.path) for e in os.scandir(self.inbox) if e.is_file() and not e.name.startswith(".")]
        return sorted(files, key=lambda p: (p.stat().st_mtime, p.name))

    async def run_once(self) -> list[Outcome]:
        now = time.time()
        files = self.waiting()
        self.lag.labels(self.agency_id).set(max((now - f.stat().st_mtime for f in files), default=0.0))
        outcomes = []
        for path in files:
            if now - path.stat().st_mtime < self.settle_seconds:
                continue  # still being written
            outcome = await self._handle(path)
            self.files.labels(self.agency_id, outcome.result).inc()
            outcomes.append(outcome)
        return outcomes

    async def watch(self, interval: float, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.run_once()
            except OSError as exc:  # the share went away: try again, do not die
                log.warning("file_drop_folder_error", agency_id=self.agency_id, error=type(exc).__name__)
            try:
                await asyncio.wait_for(stop.wait(), interval)
            except TimeoutError:
                pass

    # --- one file ------------------------------------------------------------------------------------------
    async def _handle(self, path: Path) -> Outcome:
        data = await asyncio.to_thread(_read_bounded, path)  # a share can be slow: not on the event loop
        if data is None:
            return self._reject(path, f"file: larger than {MAX_FILE_BYTES} bytes, not one call")
        digest = hashlib.sha256(data).hexdigest()
        if digest in self.seen:
            first = self.seen[digest]
            if first == path.name and not (self.done / path.name).exists():
                # Published, then a crash before the move: this is the file itself, not a copy of it.
                return self._move(path, self.done, "ingested", "published before a restart; moved now, not published again")
            earlier = "an earlier upload of this name" if first == path.name else first
            return self._move(path, self.done, "duplicate", f"the same content as {earlier} (already ingested)")
        try:
            mapped = map_calls(self.reader(data), self.agency, self.reference.sites, self.clock.now(), self.window)
        except NothingToMap as nothing:
            return self._move(path, self.done, "nothing_to_map", nothing.reason)
        except Rejected as exc:
            return self._reject(path, f"{exc.field}: {exc.detail}")
        if mapped.nothing:
            return self._move(path, self.done, "nothing_to_map", "; ".join(mapped.skipped))
        try:
            with correlation_scope(correlation_of(mapped.events[0][2])):  # the incident's
                published = await publish_mapped(mapped, self.publisher)
        except Exception as exc:  # the broker is away: the file stays and is tried again next round
            log.warning("file_drop_publish_failed", agency_id=self.agency_id, file=path.name,
                        error=type(exc).__name__)
            return Outcome(path.name, "retry", type(exc).__name__)
        self._remember(digest, path.name, published)
        log.info("file_drop_ingested", agency_id=self.agency_id, file=path.name, events=len(published))
        return self._move(path, self.done, "ingested", "; ".join(mapped.skipped))

    def _reject(self, path: Path, reason: str) -> Outcome:
        log.info("file_drop_rejected", agency_id=self.agency_id, file=path.name, reason=reason)
        return self._move(path, self.rejected, "rejected", reason)

    def _move(self, path: Path, folder: Path, result: str, reason: str) -> Outcome:
        target = folder / path.name
        n = 1
        while target.exists():  # a later file of the same name keeps the earlier one's record
            target = folder / f"{path.stem}.{n}{path.suffix}"
            n += 1
        if reason:
            (folder / f"{target.name}.reason.txt").write_text(f"{result}: {reason}\n")
        os.replace(path, target)
        return Outcome(path.name, result, reason)

    # --- the ledger -----------------------------------------------------------------------------------------
    def _read_ledger(self) -> dict[str, str]:
        seen: dict[str, str] = {}
        if self.ledger.exists():
            for line in self.ledger.read_text().splitlines():
                try:
                    entry = json.loads(line)
                    seen[entry["sha256"]] = entry["file"]
                except (ValueError, KeyError):
                    continue  # a line torn by a crash: its file is published again, and dropped downstream
        return seen

    def _remember(self, digest: str, name: str, published: list[dict[str, str]]) -> None:
        entry = {"sha256": digest, "file": name, "at": datetime.now(UTC).isoformat(), "events": published}
        with self.ledger.open("a") as ledger:
            ledger.write(json.dumps(entry) + "\n")
            ledger.flush()
            os.fsync(ledger.fileno())
        self.seen[digest] = name


def _read_bounded(path: Path) -> bytes | None:
    """The file's bytes, or None when it is too large to be one call (never read whole)."""
    with path.open("rb") as file:
        data = file.read(MAX_FILE_BYTES + 1)
    return None if len(data) > MAX_FILE_BYTES else data


def reader_for(fmt: str, layout_file: Path | None) -> Callable[[bytes], list[CallRecord]]:
    """EIDO needs no layout; CSV and XML read through the agency's mapping file."""
    if fmt == "eido":
        return eido_reader
    if layout_file is None:
        raise ValueError(f"--layout is required for --format {fmt}")
    import tomllib

    layout = Layout.model_validate(tomllib.loads(Path(layout_file).read_text()))
    if layout.format != fmt:
        raise ValueError(f"the layout file describes {layout.format}, not {fmt}")
    return lambda data: [layout.read(data)]
