"""The faye/DOM-style event API: ``on``/``off``, ``onopen``... and event objects."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import ClassVar, TypeVar, overload

import anyio.abc

__all__ = ["Event", "EventEmitter", "Listener", "peer_of"]

logger = logging.getLogger("faye_websocket")


def peer_of(stream: object) -> str:
    """``host:port`` of the peer behind an anyio stream, or ``""``."""
    extra = getattr(stream, "extra", None)
    if extra is None:
        return ""
    address = extra(anyio.abc.SocketAttribute.remote_address, None)
    if isinstance(address, tuple) and len(address) >= 2:
        host = str(address[0])
        return f"[{host}]:{address[1]}" if ":" in host else f"{host}:{address[1]}"
    return str(address) if address else ""

#: A listener takes the event; it may be a plain or an async function.
Listener = Callable[["Event"], "Awaitable[object] | object"]
_L = TypeVar("_L", bound=Listener)


class Event:
    """An event passed to listeners, shaped like faye's (and the DOM's).

    Attributes:
        type: ``"open"``, ``"message"``, ``"error"`` or ``"close"``.
        target: the object that fired it.
        data: the message (``str`` or ``bytes``) for ``message`` events.
        code: the close code for ``close`` events.
        reason: the close reason for ``close`` events.
        message: the error text for ``error`` events.
    """

    CAPTURING_PHASE: ClassVar[int] = 1
    AT_TARGET: ClassVar[int] = 2
    BUBBLING_PHASE: ClassVar[int] = 3

    __slots__ = ("code", "data", "message", "reason", "target", "type")

    def __init__(self, type: str, target: object = None, *, data: str | bytes | None = None,
                 code: int | None = None, reason: str = "", message: str = "") -> None:
        self.type = type
        self.target = target
        self.data = data
        self.code = code
        self.reason = reason
        self.message = message

    @property
    def current_target(self) -> object:
        return self.target

    event_phase = AT_TARGET
    bubbles = False
    cancelable = False

    def stop_propagation(self) -> None:
        """No-op, as in faye: events never propagate."""

    def prevent_default(self) -> None:
        """No-op, as in faye: events have no default action."""

    def __repr__(self) -> str:
        fields = {"data": self.data, "code": self.code, "reason": self.reason,
                  "message": self.message}
        shown = ", ".join(f"{k}={v!r}" for k, v in fields.items() if v not in (None, ""))
        return f"Event({self.type!r}{', ' if shown else ''}{shown})"


class EventEmitter:
    """Listener registry with faye's event names and ``on<type>`` properties."""

    EVENT_TYPES: ClassVar[tuple[str, ...]] = ("open", "message", "error", "close")
    # Slots, here and in the subclasses: a connection's attributes take
    # about 1 KiB less than in an instance dict, and many stay open.
    __slots__ = ("_handlers", "_listeners")

    def __init__(self) -> None:
        # Filled only for the types that get listeners: most connections
        # have none, and many of them stay open.
        self._listeners: dict[str, list[Listener]] = {}
        self._handlers: dict[str, _Handler] = {}

    def _check_type(self, type: str) -> None:
        if type not in self.EVENT_TYPES:
            raise ValueError(f"unknown event {type!r}; expected one of {self.EVENT_TYPES}")

    @overload
    def on(self, type: str) -> Callable[[_L], _L]: ...
    @overload
    def on(self, type: str, listener: _L) -> _L: ...

    def on(self, type: str, listener: _L | None = None) -> _L | Callable[[_L], _L]:
        """Add a listener for ``type``; usable as a decorator: ``@ws.on("message")``."""
        self._check_type(type)
        if listener is None:
            def decorate(fn: _L) -> _L:
                self._listeners.setdefault(type, []).append(fn)
                return fn
            return decorate
        self._listeners.setdefault(type, []).append(listener)
        return listener

    def off(self, type: str, listener: Listener | None = None) -> None:
        """Remove one listener, or all listeners of ``type`` when none is given
        (the ``on<type>`` property is left as it is)."""
        self._check_type(type)
        listeners = self._listeners.get(type, [])
        if listener is None:
            listeners[:] = [entry for entry in listeners if isinstance(entry, _Handler)]
        elif listener in listeners:
            listeners.remove(listener)

    add_event_listener = on
    remove_event_listener = off

    def listener_count(self, type: str) -> int:
        """Listeners registered for ``type``, the ``on<type>`` property included."""
        self._check_type(type)
        return len(self._listeners.get(type, ()))

    async def _emit(self, event: Event) -> None:
        """Call every listener in registration order (an ``on<type>``
        property counts from when it was first set, as in the DOM); async
        ones are awaited.

        A listener that raises is logged and does not stop the others or the
        connection (the reference's driver recovers the same way).
        """
        if not self._listeners:
            return
        for listener in list(self._listeners.get(event.type, ())):
            try:
                result = listener(event)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception("%s listener %r raised", event.type, listener)

    def _get_handler(self, type: str) -> Listener | None:
        handler = self._handlers.get(type)
        return handler.fn if handler is not None else None

    def _set_handler(self, type: str, listener: Listener | None) -> None:
        handler = self._handlers.get(type)
        if listener is None:
            if handler is not None:
                del self._handlers[type]
                self._listeners[type].remove(handler)
        elif handler is not None:
            handler.fn = listener  # keeps its place among the listeners
        else:
            handler = self._handlers[type] = _Handler(listener)
            self._listeners.setdefault(type, []).append(handler)

    @property
    def onopen(self) -> Listener | None:
        """Listener for ``open`` events (or ``None``)."""
        return self._get_handler("open")

    @onopen.setter
    def onopen(self, listener: Listener | None) -> None:
        self._set_handler("open", listener)

    @property
    def onmessage(self) -> Listener | None:
        """Listener for ``message`` events (or ``None``)."""
        return self._get_handler("message")

    @onmessage.setter
    def onmessage(self, listener: Listener | None) -> None:
        self._set_handler("message", listener)

    @property
    def onerror(self) -> Listener | None:
        """Listener for ``error`` events (or ``None``)."""
        return self._get_handler("error")

    @onerror.setter
    def onerror(self, listener: Listener | None) -> None:
        self._set_handler("error", listener)

    @property
    def onclose(self) -> Listener | None:
        """Listener for ``close`` events (or ``None``)."""
        return self._get_handler("close")

    @onclose.setter
    def onclose(self, listener: Listener | None) -> None:
        self._set_handler("close", listener)


class _Handler:
    """The place of an ``on<type>`` property among a type's listeners."""

    __slots__ = ("fn",)

    def __init__(self, fn: Listener) -> None:
        self.fn = fn

    def __call__(self, event: Event) -> Awaitable[object] | object:
        return self.fn(event)

    def __repr__(self) -> str:
        return repr(self.fn)


