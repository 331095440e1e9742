"""Fair scheduling of updates: no chat or user can starve the others, and shutdown is bounded.

:class:`FairScheduler` is python-telegram-bot's update processor. Each update
goes into its chat's queue (bounded: a full queue drops new updates, logged
and told to the chat once per flood); a fixed pool of workers takes the chats
round robin, one update of a chat at a time, so the updates of one chat are handled in order
and a chat with a backlog gets one turn in N, not all of them. Each user has a
token bucket (a burst, then so many updates a minute): an update beyond it is
dropped and the user gets one polite notice per flood. Updates are remembered
by ``update_id`` (the last :data:`REMEMBER`), so one delivered twice (a webhook
retry) is handled once. :meth:`FairScheduler.close` drops what is queued, lets
what is running finish until a deadline, then cancels the rest.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Coroutine, Hashable
from dataclasses import dataclass
from typing import Any

from telegram import Update
from telegram.ext import BaseUpdateProcessor

log = logging.getLogger("citebot.telegram")

#: How many update ids are remembered to recognise a second delivery.
REMEMBER = 10_000
#: Users whose token buckets are kept; beyond it, full buckets are forgotten.
BUCKETS = 10_000
#: PTB's own limit on concurrent updates: never reached, the queues and workers here bound the work.
UNBOUNDED = 1 << 30

Notice = Callable[[Update], Coroutine[Any, Any, Any] | None]


def chat_key(update: object) -> Hashable:
    """Return the queue an update goes to: its chat, else its user (inline queries), else a shared one."""
    if isinstance(update, Update):
        if update.effective_chat is not None:
            return update.effective_chat.id
        if update.effective_user is not None:
            return update.effective_user.id
    return "other"


@dataclass
class Bucket:
    """A user's token bucket: ``tokens`` left at time ``at``, and whether this flood's notice went out
    (a flood ends when the bucket is full again)."""

    tokens: float
    at: float
    noticed: bool = False


class UserLimit:
    """Per-user rate limit: ``burst`` updates at once, refilled at ``per_minute`` a minute."""

    def __init__(self, burst: int, per_minute: int) -> None:
        self.burst = burst
        self.rate = per_minute / 60.0
        self.buckets: dict[int, Bucket] = {}

    def take(self, user_id: int) -> Bucket | None:
        """Take a token for ``user_id``: return ``None`` when admitted, else the user's (empty) bucket."""
        now = time.monotonic()
        bucket = self.buckets.get(user_id)
        if bucket is None:
            if len(self.buckets) >= BUCKETS:
                self._forget_full(now)
            bucket = self.buckets[user_id] = Bucket(float(self.burst), now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        if bucket.tokens >= self.burst:
            bucket.noticed = False  # quiet long enough to refill: a new flood gets a new notice
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        return bucket

    def _forget_full(self, now: float) -> None:
        for user_id, bucket in list(self.buckets.items()):
            if bucket.tokens + (now - bucket.at) * self.rate >= self.burst:
                del self.buckets[user_id]


class FairScheduler(BaseUpdateProcessor):
    """Per-chat bounded queues served round robin by a pool of workers (see the module)."""

    def __init__(
        self,
        workers: int,
        chat_queue: int,
        limit: UserLimit,
        notice: Notice | None = None,
        overflow: Notice | None = None,
        dropped: Callable[[str], None] = lambda kind: None,
    ) -> None:
        super().__init__(UNBOUNDED)
        #: Told of every update dropped, by why: ``"rate_limited"`` (its user) or ``"queue_full"`` (its chat).
        self.dropped = dropped
        self.workers = workers
        self.chat_queue = chat_queue
        self.limit = limit
        self.notice = notice
        self.overflow = overflow
        self._notices: set[asyncio.Task[Any]] = set()
        self._queues: dict[Hashable, deque[Awaitable[Any]]] = {}
        self._ready: asyncio.Queue[Hashable] = asyncio.Queue()
        self._scheduled: set[Hashable] = set()
        self._running: dict[Hashable, asyncio.Task[Any]] = {}
        self._dropped: dict[Hashable, int] = {}
        self._seen: OrderedDict[int, None] = OrderedDict()
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False

    async def initialize(self) -> None:
        """Start the workers."""
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._work(), name=f"citebot-worker-{n}") for n in range(self.workers)]

    async def shutdown(self) -> None:
        """Stop at once whatever :meth:`close` left (nothing, when it ran)."""
        await self.close(time.monotonic())

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        """Queue ``coroutine`` (the handling of ``update``) in its chat's queue, or drop it; return at once."""
        if self._closing:
            _discard(coroutine)
            return
        if isinstance(update, Update):
            if update.update_id in self._seen:
                log.info("update %d was delivered again; handled once", update.update_id)
                _discard(coroutine)
                return
            self._seen[update.update_id] = None
            while len(self._seen) > REMEMBER:
                self._seen.popitem(last=False)
            limited = self._limited(update, coroutine)
            if limited is None:
                return
            coroutine = limited
        key = chat_key(update)
        queue = self._queues.setdefault(key, deque())
        if len(queue) >= self.chat_queue:
            _discard(coroutine)
            self.dropped("queue_full")
            if key not in self._dropped:
                log.warning("chat %s has %d updates waiting: dropping new ones until it catches up", key, len(queue))
                self._tell_overflow(update)
            self._dropped[key] = self._dropped.get(key, 0) + 1
            return
        queue.append(coroutine)
        if key not in self._scheduled:
            self._scheduled.add(key)
            self._ready.put_nowait(key)

    def _tell_overflow(self, update: object) -> None:
        """Send the chat's one notice for this flood, beside its full queue (so it goes out at once)."""
        notice = self.overflow(update) if self.overflow is not None and isinstance(update, Update) else None
        if notice is None:
            return
        task = asyncio.ensure_future(notice)
        self._notices.add(task)
        task.add_done_callback(self._notice_sent)

    def _notice_sent(self, task: asyncio.Task[Any]) -> None:
        """Forget a sent notice; log one that failed."""
        self._notices.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("could not tell a flooded chat that updates are skipped: %s", task.exception())

    def _limited(self, update: Update, coroutine: Awaitable[Any]) -> Awaitable[Any] | None:
        """Return what to queue for ``update`` under its user's rate limit: itself, a notice, or ``None``."""
        user = update.effective_user
        if user is None or update.inline_query is not None:
            return coroutine
        bucket = self.limit.take(user.id)
        if bucket is None:
            return coroutine
        _discard(coroutine)
        self.dropped("rate_limited")
        if bucket.noticed:
            return None
        bucket.noticed = True
        log.warning(
            "user %s sends too fast (over %d at once or %.0f a minute): skipping",
            user.id,
            self.limit.burst,
            self.limit.rate * 60,
        )
        return self.notice(update) if self.notice is not None else None

    async def _work(self) -> None:
        """Take the next ready chat, handle its oldest update, put the chat back at the end if it has more."""
        while True:
            key = await self._ready.get()
            queue = self._queues.get(key)
            if not queue:
                self._scheduled.discard(key)
                continue
            coroutine = queue.popleft()
            task = asyncio.ensure_future(coroutine)
            self._running[key] = task
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                task.cancel()
                raise
            except Exception:
                log.exception("handling an update of chat %s failed", key)
            finally:
                self._running.pop(key, None)
                if queue and not self._closing:
                    self._ready.put_nowait(key)
                else:
                    self._scheduled.discard(key)
                    if not queue:
                        self._queues.pop(key, None)
                    dropped = self._dropped.pop(key, 0)
                    if dropped:
                        log.warning(
                            "chat %s caught up; %d of its updates were dropped while it was flooded", key, dropped
                        )

    async def close(self, deadline: float) -> None:
        """Drop queued updates (one log line), let running ones finish until ``deadline``, cancel the rest."""
        if self._closing and not self._tasks:
            return
        self._closing = True
        queued = [c for queue in self._queues.values() for c in queue]
        chats = sum(1 for queue in self._queues.values() if queue)
        for queue in self._queues.values():
            while queue:
                _discard(queue.popleft())
        if queued:
            log.warning(
                "shutting down: dropped %d queued updates from %d chat%s", len(queued), chats, "s" if chats != 1 else ""
            )
        running = list(self._running.values())
        if running:
            remaining = max(0.0, deadline - time.monotonic())
            _, pending = await asyncio.wait(running, timeout=remaining)
            if pending:
                log.warning(
                    "shutting down: cancelled %d updates still in progress (waiting on Telegram or the network)",
                    len(pending),
                )
        notices = list(self._notices)
        for task in (*self._tasks, *running, *notices):
            task.cancel()
        await asyncio.gather(*self._tasks, *running, *notices, return_exceptions=True)
        self._tasks = []


def _discard(coroutine: Awaitable[Any]) -> None:
    """Close a coroutine that will never run (no "never awaited" warning)."""
    if inspect.iscoroutine(coroutine):
        coroutine.close()
