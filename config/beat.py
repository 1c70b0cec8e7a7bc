"""Exactly one scheduler: RedBeat, surviving a Redis outage.

RedBeat keeps beat's schedule in Redis and sends due jobs only from the beat that holds
its lock there; another beat waits for the lock, and takes over once it expires
(``BEAT_LOCK_TIMEOUT_SECONDS``) after its holder dies. As shipped, a beat whose lock
cannot be renewed dies: Redis unreachable for a moment, or restarted empty (lock and
schedule gone). Here it stands by and retries instead: while Redis is unreachable it
sends nothing; once Redis answers and the lock is free, it takes the lock again and
installs the schedule again; if another beat took the lock meanwhile, it stays a standby.
"""

from __future__ import annotations

import logging

from redbeat import RedBeatScheduler
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import LockNotOwnedError

logger = logging.getLogger(__name__)


class SingleBeatScheduler(RedBeatScheduler):
    def tick(self, **kwargs) -> float:
        try:
            return super().tick(**kwargs)
        except LockNotOwnedError:
            return self._take_the_lock_again()
        except RedisConnectionError as exc:
            logger.warning("beat: Redis unreachable, nothing sent (%s)", exc)
            return self.max_interval

    def _take_the_lock_again(self) -> float:
        try:
            taken = self.lock.acquire(blocking=False)
        except RedisConnectionError:
            taken = False
        if not taken:
            logger.info("beat: another beat holds the lock; standing by")
            return self.max_interval
        logger.warning("beat: the lock was lost (Redis restarted?); took it again")
        self.setup_schedule()
        return 0
