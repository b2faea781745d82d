"""The live stream: WebSocket /api/v1/ws (spec §6.3).

A client sends JSON text messages::

    {"action": "subscribe", "channels": ["traces:gpt-4o", "alerts:*"]}
    {"action": "unsubscribe", "channels": ["traces:gpt-4o"]}

and receives ``{"type", "payload", "timestamp"}`` messages: ``subscribed`` /
``unsubscribed`` (payload ``{"channels": [...]}``, every channel now held) answering
its own, ``error`` (payload ``{"code", "message"}``) for a message it can't act on,
and the notifications (``trace``, ``cost``, ``metric``, ``alert``, ``drift``) of its
channels; see :mod:`pyflare_server.pipeline.broadcast` for channels and
:mod:`pyflare_server.pipeline._notifications` for what a ``trace`` or ``cost`` says.

A bad message is answered with an ``error`` and the connection stays open; a bad
subscribe changes nothing. Connecting needs ``traces:read``; with auth on, each topic
also needs its own read permission (``costs:read`` for ``costs:*``: a viewer's
``costs:read:own`` is not enough, since cost notifications are everyone's;
``alerts:read``, ``metrics:read``, ``drift:read``), checked against the permissions
of the ``state.principal`` the auth middleware sets. A client that lets more than
``server.api.ws_max_queue`` messages wait is closed with code 1008 and a reason;
on shutdown clients get 1001.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection
from typing import TYPE_CHECKING, Any, Final

import orjson
from starlette.routing import WebSocketRoute

from pyflare_server.auth.permissions import allows, requires
from pyflare_server.pipeline.broadcast import ChannelError, Hub, Subscription, encode, parse_channel

if TYPE_CHECKING:
    from starlette.websockets import WebSocket

__all__ = ["MAX_MESSAGE_CHARS", "TOPIC_PERMISSIONS", "routes"]

logger = logging.getLogger(__name__)

MAX_MESSAGE_CHARS: Final = 64 * 1024
TOPIC_PERMISSIONS: Final = {
    "traces": "traces:read",
    "costs": "costs:read",
    "metrics": "metrics:read",
    "alerts": "alerts:read",
    "drift": "drift:read",
}
_ACTIONS: Final = ("subscribe", "unsubscribe")
_EXAMPLE: Final = '{"action": "subscribe", "channels": ["traces:*"]}'


def routes(hub: Hub) -> list[WebSocketRoute]:
    """WebSocket /api/v1/ws, fed by ``hub``."""

    @requires("traces:read")
    async def stream(websocket: WebSocket) -> None:
        await websocket.accept()
        subscription = hub.subscribe()
        try:
            await _serve(websocket, hub, subscription, _granted(websocket))
        finally:
            hub.unsubscribe(subscription)

    return [WebSocketRoute("/api/v1/ws", stream, name="ws")]


def _granted(websocket: WebSocket) -> Collection[str] | None:
    """The caller's permissions, or None when no auth middleware ran (everything allowed)."""
    principal = getattr(websocket.state, "principal", None)
    if principal is None:
        return None
    return tuple(principal.permissions)


async def _serve(
    websocket: WebSocket, hub: Hub, subscription: Subscription, granted: Collection[str] | None
) -> None:
    # The client's messages are read here; a task sends, and closes the connection
    # itself when the subscription is cut off (the reader then sees the disconnect).
    writer = asyncio.create_task(_write(websocket, subscription))
    try:
        await _read(websocket, hub, subscription, granted)
    finally:
        writer.cancel()
        for outcome in await asyncio.gather(writer, return_exceptions=True):
            if isinstance(outcome, Exception):
                logger.debug("live-stream connection ended: %r", outcome)


async def _write(websocket: WebSocket, subscription: Subscription) -> None:
    while (message := await subscription.next()) is not None:
        await websocket.send_text(message)
    await websocket.close(subscription.close_code or 1000, subscription.close_reason)


async def _read(
    websocket: WebSocket, hub: Hub, subscription: Subscription, granted: Collection[str] | None
) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        try:
            if text is None:
                raise _BadMessage("send text frames holding JSON, such as " + _EXAMPLE)
            action, channels = _parse(text)
            if action == "subscribe":
                _check_permissions(channels, granted)
                hub.add_channels(subscription, channels)
            else:
                hub.remove_channels(subscription, channels)
        except (_BadMessage, ChannelError) as exc:
            subscription.offer(encode("error", {"code": "invalid_message", "message": str(exc)}))
            continue
        reply = {"channels": sorted(subscription.channels)}
        subscription.offer(encode(f"{action}d", reply))


class _BadMessage(ValueError):
    """A client message the stream can't act on (answered with an error message)."""


def _parse(text: str) -> tuple[str, list[str]]:
    if len(text) > MAX_MESSAGE_CHARS:
        raise _BadMessage(
            f"the message is {len(text):,} characters; the limit is {MAX_MESSAGE_CHARS:,}"
        )
    try:
        data: Any = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise _BadMessage(f"the message is not JSON ({exc}); send e.g. {_EXAMPLE}") from None
    if not isinstance(data, dict):
        raise _BadMessage(f"the message must be a JSON object such as {_EXAMPLE}")
    unknown = sorted(set(data) - {"action", "channels"})
    if unknown:
        raise _BadMessage(
            f"unknown field(s) {', '.join(map(repr, unknown))}; use action and channels"
        )
    action = data.get("action")
    if action not in _ACTIONS:
        raise _BadMessage(f"action must be subscribe or unsubscribe, got {action!r}")
    channels = data.get("channels")
    if not isinstance(channels, list) or not channels:
        raise _BadMessage(
            f'channels must be a non-empty list such as ["traces:*"], got {channels!r}'
        )
    for channel in channels:
        parse_channel(channel)
    return action, channels


def _check_permissions(channels: list[str], granted: Collection[str] | None) -> None:
    if granted is None:
        return
    for channel in channels:
        needed = TOPIC_PERMISSIONS[parse_channel(channel)[0]]
        if not allows(granted, needed):
            raise _BadMessage(f"channel {channel!r} needs the {needed} permission, which you lack")
