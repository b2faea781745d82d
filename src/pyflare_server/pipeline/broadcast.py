"""The live stream's hub: what was stored, handed to the WebSocket clients who asked.

The store writer publishes after each successful write (:meth:`Hub.stored`, from its
own thread); the hub turns the rows into notifications only when someone listens,
and hands each one, encoded once, to every subscription whose channels match.

A channel is ``topic:key``: ``traces:gpt-4o`` (traces that used that model),
``traces:*`` (every trace); the topics are :data:`TOPICS`. Each subscription holds at
most ``max_queue`` messages waiting to be sent. One more and it is cut off: its
messages are dropped and its connection is closed (WebSocket code 1008) instead of
the server holding more and more for a client that does not read.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

import orjson

from pyflare_server.pipeline._notifications import Notification, trace_notifications

if TYPE_CHECKING:
    import pyarrow as pa

    from pyflare_server.receiver.decode import Signal

__all__ = [
    "MAX_CHANNELS",
    "TOPICS",
    "ChannelError",
    "Hub",
    "Notification",
    "Subscription",
    "parse_channel",
]

logger = logging.getLogger(__name__)

#: Topics a client may subscribe to, and the notification ``type`` each carries.
TOPICS: Final = {
    "traces": "trace",
    "costs": "cost",
    "metrics": "metric",
    "alerts": "alert",
    "drift": "drift",
}
#: Channels one subscription may hold.
MAX_CHANNELS: Final = 100
_MAX_KEY_CHARS: Final = 256
ALL: Final = "*"

#: Close codes: the client fell behind (policy), or the server is going away.
CLOSE_TOO_SLOW: Final = 1008
CLOSE_GOING_AWAY: Final = 1001


class ChannelError(ValueError):
    """A channel name that is not ``topic:key`` with a known topic."""


def parse_channel(channel: object) -> tuple[str, str]:
    """``(topic, key)`` of ``channel`` (``"traces:gpt-4o"`` → ``("traces", "gpt-4o")``).

    The key is everything after the first colon, so model ids with colons
    (``traces:ft:gpt-4o:acme``) work; ``*`` means every key.
    """
    if not isinstance(channel, str):
        raise ChannelError(f"a channel is a string such as 'traces:*', got {channel!r}")
    topic, colon, key = channel.partition(":")
    if topic not in TOPICS:
        known = ", ".join(f"{t}:*" for t in TOPICS)
        raise ChannelError(f"unknown channel {channel[:80]!r}: channels are {known} or topic:key")
    if not colon or not key:
        raise ChannelError(f"channel {channel!r} has no key: write {topic}:* or {topic}:<key>")
    if len(key) > _MAX_KEY_CHARS or not key.isprintable():
        raise ChannelError(
            f"the key of channel {channel[:80]!r} must be printable and at most "
            f"{_MAX_KEY_CHARS} characters"
        )
    return topic, key


def timestamp_now() -> str:
    """Now, as the ISO 8601 UTC text messages carry (millisecond digits)."""
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


def encode(message_type: str, payload: object) -> str:
    """One message as the client receives it: ``{"type", "payload", "timestamp"}``."""
    message = {"type": message_type, "payload": payload, "timestamp": timestamp_now()}
    return orjson.dumps(message).decode()


@dataclass(eq=False)
class Subscription:
    """One client's channels and the messages waiting to be sent to it."""

    max_queue: int
    channels: set[str] = field(default_factory=set)
    close_code: int | None = None
    close_reason: str = ""
    _messages: deque[str] = field(default_factory=deque)
    _ready: asyncio.Event = field(default_factory=asyncio.Event)

    def offer(self, message: str) -> bool:
        """Queue ``message``; past ``max_queue`` the subscription is cut off instead."""
        if self.close_code is not None:
            return False
        if len(self._messages) >= self.max_queue:
            self.cut_off(
                CLOSE_TOO_SLOW,
                f"client too slow: over {self.max_queue} messages waiting; read faster",
            )
            return False
        self._messages.append(message)
        self._ready.set()
        return True

    def cut_off(self, code: int, reason: str) -> None:
        """Drop what waits and end :meth:`next` with ``code``."""
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason
        self._messages.clear()
        self._ready.set()

    def waiting(self) -> int:
        return len(self._messages)

    async def next(self) -> str | None:
        """The next message to send, or None once the subscription is cut off."""
        while not self._messages:
            if self.close_code is not None:
                return None
            self._ready.clear()
            await self._ready.wait()
        if self.close_code is not None:
            return None
        return self._messages.popleft()


class Hub:
    """Subscriptions by topic and key, fed by the store writer."""

    def __init__(self, max_queue: int = 1000) -> None:
        if max_queue < 1:
            raise ValueError(f"max_queue must be at least 1, got {max_queue}")
        self.max_queue = max_queue
        self._subscriptions: set[Subscription] = set()
        # topic -> key -> subscriptions; read from the writer thread to skip idle topics.
        self._index: dict[str, dict[str, set[Subscription]]] = {t: {} for t in TOPICS}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._closed = False

    # -- subscriptions (on the event loop) -------------------------------------

    def subscribe(self) -> Subscription:
        """A new subscription with no channels yet."""
        self._loop = asyncio.get_running_loop()
        subscription = Subscription(self.max_queue)
        if self._closed:
            subscription.cut_off(CLOSE_GOING_AWAY, "the server is shutting down")
        self._subscriptions.add(subscription)
        return subscription

    def add_channels(self, subscription: Subscription, channels: Iterable[str]) -> None:
        """Listen on ``channels`` too (each checked with :func:`parse_channel`)."""
        parsed = [(channel, *parse_channel(channel)) for channel in channels]
        total = len(subscription.channels | {channel for channel, _, _ in parsed})
        if total > MAX_CHANNELS:
            raise ChannelError(f"at most {MAX_CHANNELS} channels per connection, asked for {total}")
        with self._lock:
            for channel, topic, key in parsed:
                subscription.channels.add(channel)
                self._index[topic].setdefault(key, set()).add(subscription)

    def remove_channels(self, subscription: Subscription, channels: Iterable[str]) -> None:
        """Stop listening on ``channels``; ones not subscribed are ignored."""
        with self._lock:
            for channel in channels:
                if channel in subscription.channels:
                    subscription.channels.discard(channel)
                    self._drop(subscription, *parse_channel(channel))

    def unsubscribe(self, subscription: Subscription) -> None:
        """Forget ``subscription`` (its connection ended)."""
        self.remove_channels(subscription, list(subscription.channels))
        self._subscriptions.discard(subscription)

    def _drop(self, subscription: Subscription, topic: str, key: str) -> None:
        keys = self._index[topic]
        listeners = keys.get(key)
        if listeners is not None:
            listeners.discard(subscription)
            if not listeners:
                del keys[key]

    def subscriptions(self) -> int:
        return len(self._subscriptions)

    def wants(self, topic: str) -> bool:
        """Whether anyone listens on ``topic`` (safe from any thread)."""
        return bool(self._index[topic])

    def close(self) -> None:
        """Cut every subscription off (the server is stopping); take no new ones."""
        self._closed = True
        for subscription in list(self._subscriptions):
            subscription.cut_off(CLOSE_GOING_AWAY, "the server is shutting down")

    # -- publishing ------------------------------------------------------------

    def publish(self, notifications: Sequence[Notification]) -> None:
        """Hand ``notifications`` to their subscribers (on the event loop)."""
        for notification in notifications:
            with self._lock:
                keys = self._index[notification.topic]
                targets = set(keys.get(ALL, ()))
                for key in notification.keys:
                    targets.update(keys.get(key, ()))
            if not targets:
                continue
            message = encode(TOPICS[notification.topic], notification.payload)
            for subscription in targets:
                subscription.offer(message)

    def publish_threadsafe(self, notifications: Sequence[Notification]) -> None:
        """:meth:`publish` from any thread (the loop runs it, all in one go)."""
        loop = self._loop
        if not notifications or loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self.publish, notifications)
        except RuntimeError:  # the loop closed meanwhile: nobody is left to tell
            return

    def stored(self, signal: Signal, table: pa.Table) -> None:
        """Called by the store writer (any thread) with rows it just made durable.

        Never raises: the live stream must not fail a write that succeeded.
        """
        try:
            notifications: list[Notification] = []
            if signal == "traces" and (self.wants("traces") or self.wants("costs")):
                notifications = trace_notifications(
                    table, traces=self.wants("traces"), costs=self.wants("costs")
                )
            self.publish_threadsafe(notifications)
        except Exception:
            logger.exception("building live-stream notifications failed; the rows are stored")
