"""Following HTTP redirects while opening a client connection; no I/O.

Shared by ``WebSocket.Client`` (``ws``/``wss``; an ``http``/``https``
Location means the same host over ``ws``/``wss``) and
``EventSource.Client`` (``http``/``https``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from urllib.parse import urljoin, urlsplit

from .url import Target, parse_url, public_url, redact_url

__all__ = ["REDIRECT_STATUSES", "RedirectRefused", "Redirects", "location", "same_origin"]

#: The statuses that send the client elsewhere (RFC 9110 section 15.4). A
#: WebSocket handshake and an event stream are both a ``GET``, so 303 means
#: the same as the others. 300 (a choice for a person) and 304 (a cache
#: answer) are not redirects a client can follow.
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
#: Request headers that carry credentials for one origin (Fetch, "HTTP-redirect
#: fetch", step 13: dropped when a redirect crosses origins).
_CREDENTIALS = frozenset({"authorization", "cookie"})
#: URL schemes in the form ``urljoin`` resolves against, and back.
_AS_HTTP = {"ws": "http", "wss": "https"}


class RedirectRefused(ValueError):
    """A redirect that is not followed: a loop, one too many, a downgrade to
    an unencrypted connection, or a Location that is not a URL we can open."""


def location(status: int, headers: Sequence[tuple[str, str]]) -> str | None:
    """The ``Location`` of a redirect response, or ``None`` if it is not one
    (another status, or no ``Location``)."""
    if status not in REDIRECT_STATUSES:
        return None
    values = [v.strip() for k, v in headers if k.lower() == "location"]
    return values[-1] if values and values[-1] else None


class Redirects:
    """The redirects followed while opening one connection.

    Args:
        url: the URL first asked for (userinfo allowed).
        schemes: the plain and the secure scheme of the client's URLs.
        max_redirects: how many redirects to follow.
        allow_insecure: follow a redirect from a secure URL to a plain one.
    """

    def __init__(self, url: str, *, schemes: tuple[str, str] = ("ws", "wss"),
                 max_redirects: int = 10, allow_insecure: bool = False) -> None:
        self.url = url
        self.schemes = schemes
        self.max_redirects = max_redirects
        self.allow_insecure = allow_insecure
        self._first = parse_url(url, schemes=schemes)
        #: The URLs asked for, userinfo removed, the first one first.
        self.chain = [public_url(url)]
        #: Whether a redirect has left the first URL's origin: from then on
        #: the user's ``Authorization`` and ``Cookie`` headers stay behind,
        #: even if a later redirect comes back (Fetch removes them for good).
        self.crossed = False
        self._seen = {_key(self._first)}
        #: Where the latest request went.
        self.target = self._first

    def follow(self, status: int, where: str) -> tuple[str, Target]:
        """Where the redirect from :attr:`target` to ``where`` (a Location,
        maybe relative) leads; it becomes the new :attr:`url` and
        :attr:`target`.

        Returns:
            The next URL (with the userinfo kept when the origin is the
            same) and its :class:`Target`, whose credentials are dropped
            when the origin changes.

        Raises:
            RedirectRefused: it is not followed; the message says why and
                lists the URLs asked for.
        """
        plain, secure = self.schemes
        current, target = self.url, self.target
        scheme = urlsplit(current).scheme.lower()
        base = _AS_HTTP.get(scheme, scheme) + current[len(scheme):]
        try:
            joined = urljoin(base, where).partition("#")[0]  # a fragment is never sent
            scheme = urlsplit(joined).scheme.lower()
            if self.schemes == ("ws", "wss") and scheme in ("ws", "wss", "http", "https"):
                scheme = "wss" if scheme in ("wss", "https") else "ws"
                joined = scheme + joined[joined.index(":"):]
            new = parse_url(joined, schemes=self.schemes)
        except ValueError:
            raise RedirectRefused(f"redirect ({status}) to {redact_url(where)!r}, which is "
                                  f"not a {plain}:// or {secure}:// URL") from None
        shown = public_url(joined)
        trail = " -> ".join([*self.chain, shown])
        if target.secure and not new.secure and not self.allow_insecure:
            raise RedirectRefused(
                f"redirect ({status}) from {secure}:// to {plain}:// refused "
                f"(allow_insecure_redirects=True would follow it): {trail}")
        if _key(new) in self._seen:
            raise RedirectRefused(f"redirect loop ({status}): {trail}")
        if len(self.chain) - 1 >= self.max_redirects:  # followed as many as allowed
            plural = "" if self.max_redirects == 1 else "s"
            raise RedirectRefused(f"more than {self.max_redirects} redirect{plural} "
                                  f"({status}): {trail}")
        if same_origin(target, new) and new.username is None:
            # Same origin, and the Location names no user: the credentials
            # of the URL asked for still apply (a relative Location keeps
            # them through urljoin; an absolute one would lose them).
            new = dataclasses.replace(new, username=target.username,
                                      password=target.password)
            if target.username is not None:
                joined = _with_userinfo(joined, self.url)
        self.url, self.target = joined, new
        self.chain.append(shown)
        self._seen.add(_key(new))
        self.crossed = self.crossed or not same_origin(self._first, new)
        return joined, new

    def headers(self, headers: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
        """The user's extra request headers for the next request: without
        ``Authorization`` and ``Cookie`` once a redirect has left the origin
        they were meant for."""
        if not self.crossed:
            return list(headers)
        return [(k, v) for k, v in headers if k.lower() not in _CREDENTIALS]


def same_origin(a: Target, b: Target) -> bool:
    """Whether two targets have the same origin (scheme, host and port)."""
    return (a.secure, a.host.lower(), a.port) == (b.secure, b.host.lower(), b.port)


def _key(target: Target) -> tuple[bool, str, int, str]:
    return (target.secure, target.host.lower(), target.port, target.resource)


def _with_userinfo(url: str, source: str) -> str:
    """``url`` with the userinfo of ``source`` (same origin, so same host)."""
    userinfo = urlsplit(source).netloc.rpartition("@")[0]
    parts = urlsplit(url)
    return parts._replace(netloc=f"{userinfo}@{parts.netloc}").geturl()
