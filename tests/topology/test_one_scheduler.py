"""Exactly one scheduler: two beat processes on one broker (a second one started by
mistake, or the new one of a deployment before the old one stops) send each periodic job
once, and the survivor takes over when the active one dies."""

from __future__ import annotations

import json
import time

import pytest
import redis

from tests.processes import Beat, wait_for

pytestmark = pytest.mark.slow
TICK = "issuance.tick"
LOCK_SECONDS = 3
WINDOW = 6


def ticks_sent(broker: redis.Redis) -> int:
    """Tick messages waiting in the broker: no worker consumes them here, so each is one
    run of the job the scheduler ordered."""
    return sum(json.loads(message)["headers"]["task"] == TICK
               for message in broker.lrange("celery", 0, -1))


def ticks_during(broker: redis.Redis, seconds: float) -> int:
    before = ticks_sent(broker)
    time.sleep(seconds)
    return ticks_sent(broker) - before


def test_two_beats_run_the_one_second_tick_once_a_second_and_the_survivor_takes_over(
        private_redis, tmp_path):
    env = {"DEBUG": "1", "CELERY_BROKER_URL": private_redis.url(0),
           "REDIS_URL": private_redis.url(1), "ISSUANCE_TICK_SECONDS": "1",
           "BEAT_LOCK_TIMEOUT_SECONDS": str(LOCK_SECONDS)}
    broker = redis.Redis.from_url(private_redis.url(0))
    beats = [Beat(env, tmp_path, "beat-a"), Beat(env, tmp_path, "beat-b")]
    try:
        wait_for(lambda: all("beat: Starting" in beat.text() for beat in beats)
                 and ticks_sent(broker) >= 2, timeout=30,
                 what="both beats to start and ticks to be sent\n"
                      + "\n".join(beat.tail() for beat in beats), interval=0.2)
        sent = ticks_during(broker, WINDOW)
        assert WINDOW - 1 <= sent <= WINDOW + 1, f"{sent} ticks in {WINDOW} s"

        active = [beat for beat in beats if "Acquired lock" in beat.text()]
        assert len(active) == 1, "\n".join(beat.tail() for beat in beats)
        active[0].kill()
        survivor = next(beat for beat in beats if beat is not active[0])
        wait_for(lambda: "Acquired lock" in survivor.text(), timeout=LOCK_SECONDS + 10,
                 what=f"the survivor to take the lock\n{survivor.tail()}", interval=0.2)
        sent = ticks_during(broker, 4)
        assert 3 <= sent <= 5, f"{sent} ticks in 4 s after the takeover"
    finally:
        for beat in beats:
            beat.kill()
