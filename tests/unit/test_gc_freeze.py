"""Long-running services put their start-up objects out of the garbage collector's reach."""

from __future__ import annotations

import asyncio
import gc

from services.runtime import freeze_start_up_objects


async def test_start_up_objects_are_frozen_after_the_delay() -> None:
    gc.unfreeze()
    try:
        handle = freeze_start_up_objects(delay=0)
        assert gc.get_freeze_count() == 0  # not at once: start-up is still going on
        for _ in range(10):  # a few turns of the loop run the timer
            await asyncio.sleep(0)
        assert not handle.cancelled() and gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
