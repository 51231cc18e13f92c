"""The stream server output: an MJPEG stream, stats and live settings for browsers."""

from __future__ import annotations

import hmac
import ipaddress
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

import cv2
import numpy as np

from liveheat.errors import LiveheatError
from liveheat.outputs.base import OutputBase
from liveheat.outputs.stream.http import _host_name, _make_httpd
from liveheat.settings.fields import LIVE_FIELDS, parse_serve, validate

TOKEN_ENV = "LIVEHEAT_TOKEN"
_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
_WILDCARD_HOSTS = ("0.0.0.0", "", "::")


class StreamServer(OutputBase):
    """An output that serves the frames it is given to browsers (MJPEG) on a background thread.

    Routes: `/` page (stream, stats, controls), `/stream` MJPEG, `/snapshot.jpg`, `/stats` JSON,
    `POST /settings` JSON object of live settings (method, colormap, alpha, ...). With a token,
    every request needs `?token=...` or `Authorization: Bearer ...` (401 otherwise). Without one,
    the `Host` header must name this server (loopback names, the bound host, or an IP address
    on a wildcard bind), else 403: a DNS-rebinding page cannot reach it. `POST /settings` needs
    `Content-Type: application/json` (415) and no foreign `Origin` (403), so another site's
    page cannot post to it. More than `max_clients` concurrent `/stream` viewers get 503. A
    client that cannot take a frame within `send_timeout` seconds is dropped (and counted in
    `clients_dropped`); no client ever slows `write()` or the other clients. A request must
    arrive whole (head, and body for a POST) within `head_timeout` seconds.

    Args:
        host: the address to bind: ``"127.0.0.1"`` (this machine only), ``"0.0.0.0"`` (every
            interface).
        port: the TCP port; 0: one the OS chooses (read it back from `port` or `url`).
        token: a token every request must carry; None: none (the Host check applies).
        max_clients: the `/stream` viewers served at once, as the `max_clients` setting.
        jpeg_quality: the JPEG quality in [1, 100], as the `jpeg_quality` setting.
        stats: a function giving the `/stats` JSON; None: the server's own counters only.
        settings: the `Settings` that `POST /settings` changes; None: the page cannot.
        send_timeout: seconds a client may take to accept one frame before it is dropped.
        head_timeout: seconds a request may take to arrive whole.

    Raises:
        SettingError: a bad `max_clients` or `jpeg_quality` (a `LiveheatError`).
        LiveheatError: a timeout that is not > 0, or the address cannot be bound (a port in
            use, a host not of this machine).

    Examples:
        >>> import numpy as np
        >>> with StreamServer(port=0) as srv:  # an OS-chosen free port on 127.0.0.1
        ...     srv.write(np.zeros((48, 64, 3), np.uint8), None)
        ...     srv.url.startswith("http://127.0.0.1:")
        True
        >>> with StreamServer() as a:  # a port in use cannot be bound twice
        ...     try:
        ...         StreamServer(port=a.port)
        ...     except LiveheatError as e:
        ...         print("LiveheatError")
        LiveheatError
    """

    stop_requested = False  # outputs protocol: a server never asks the run to stop

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        token: str | None = None,
        max_clients: int = 8,
        jpeg_quality: int = 80,
        stats: Callable[[], dict] | None = None,
        settings: Any = None,
        send_timeout: float = 5.0,
        head_timeout: float = 5.0,
    ) -> None:
        jpeg_quality = validate("jpeg_quality", jpeg_quality)  # the settings' own rules
        max_clients = validate("max_clients", max_clients)  # each viewer holds a thread
        if not (send_timeout > 0 and head_timeout > 0):
            raise LiveheatError("send_timeout and head_timeout: expected seconds > 0")
        self.host = host
        self.token = token or None
        self.max_clients = int(max_clients)
        self.jpeg_quality = int(jpeg_quality)
        self.stats = stats
        self.settings = settings
        self.send_timeout = float(send_timeout)
        self.head_timeout = float(head_timeout)
        self.frames_written = 0
        self.frames_encoded = 0
        self.clients_dropped = 0
        self._cond = threading.Condition()
        self._image: np.ndarray | None = None
        self._seq = 0
        self._enc_lock = threading.Lock()
        self._jpeg: bytes | None = None
        self._jpeg_seq = -1
        self._pending: dict = {}  # connection -> address, while its request arrives
        self._clients = 0
        self._closing = False
        self._closed = False
        self._started = time.monotonic()
        self._times: deque[float] = deque(maxlen=64)
        self._conns: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()
        self._client_threads: list[threading.Thread] = []  # not known to have ended
        self._reg_lock = threading.Lock()
        self._httpd = _make_httpd(host, int(port), self)
        self.port: int = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="liveheat-serve",
            daemon=True,
        )
        self._thread.start()

    # ------------------------------------------------------------------ outputs protocol
    @property
    def url(self) -> str:
        """Where a browser on this machine finds the page (wildcard binds shown as loopback)."""
        host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/"

    @property
    def clients(self) -> int:
        """How many `/stream` viewers are connected now."""
        return self._clients

    def write(self, image: np.ndarray, frame: Any = None, annotation: Any = None) -> None:
        """Publish a new frame (uint8 BGR). Never blocks on clients; encoding happens on demand.

        Examples:
            >>> import numpy as np
            >>> with StreamServer() as srv:
            ...     srv.write(np.full((8, 8, 3), 255, np.uint8))
            ...     srv.frames_written
            1
        """
        if self._closing:
            return
        img = np.array(image, dtype=np.uint8, copy=True)  # the caller may reuse its buffer
        with self._cond:
            self._image = img
            self._seq += 1
            self.frames_written += 1
            self._times.append(time.monotonic())
            self._cond.notify_all()

    def close(self) -> None:
        """Stop serving: wake and drop every client, free the port, join all threads. Idempotent.

        Examples:
            >>> srv = StreamServer()
            >>> srv.close(); srv.close()
        """
        if self._closed:
            return
        self._closed = True
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._httpd.shutdown()  # returns once serve_forever has left its loop
        self._httpd.server_close()
        with self._reg_lock:
            conns = list(self._conns)
            threads = list(self._client_threads)
        for conn in conns:  # unblock handlers stuck in send() to a stalled client
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + 3.0
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        self._thread.join(max(0.1, deadline - time.monotonic()))

    def __enter__(self) -> StreamServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ internals
    def _next_frame(self, last_seq: int, timeout: float = 0.5) -> tuple[bytes | None, int]:
        """The newest JPEG newer than `last_seq`, or (None, last_seq) after `timeout`/on close."""
        with self._cond:
            self._cond.wait_for(lambda: self._seq != last_seq or self._closing, timeout)
            if self._closing or self._seq == last_seq or self._image is None:
                return None, last_seq
        return self._encoded()

    def _encoded(self) -> tuple[bytes | None, int]:
        with self._enc_lock:  # one encode per frame, shared by all clients
            with self._cond:
                image, seq = self._image, self._seq
            if image is None:
                return None, seq
            if self._jpeg_seq != seq:
                ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
                if not ok:
                    return None, seq
                self._jpeg, self._jpeg_seq = buf.tobytes(), seq
                self.frames_encoded += 1
            return self._jpeg, self._jpeg_seq

    def _fps(self) -> float:
        with self._cond:
            times = list(self._times)
        if len(times) < 2 or time.monotonic() - times[-1] > 2.0:
            return 0.0
        return (len(times) - 1) / max(times[-1] - times[0], 1e-9)

    def _stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.stats is not None:
            try:
                out.update(self.stats() or {})
            except Exception as e:  # a stats provider bug must not break the page
                out["stats_error"] = f"{type(e).__name__}: {e}"
        out.setdefault("fps", round(float(out.get("output_fps") or self._fps()), 2))
        out.setdefault("uptime_s", round(time.monotonic() - self._started, 1))
        out["clients"] = self._clients
        out["max_clients"] = self.max_clients
        out["frames_served"] = self.frames_encoded
        out["clients_dropped"] = self.clients_dropped
        out["settings"] = self._live_settings()
        return out

    def _live_settings(self) -> dict[str, Any]:
        s = self.settings
        if s is None:
            return {}
        return {k: getattr(s, k) for k in LIVE_FIELDS if hasattr(s, k)}

    def _apply(self, body: Any) -> dict[str, Any]:
        """Validate a POSTed settings object and apply it atomically; LiveheatError if bad."""
        if self.settings is None:
            raise LiveheatError("this server has no settings to change")
        if not isinstance(body, dict) or not body:
            raise LiveheatError('expected a JSON object of settings, e.g. {"alpha": 0.6}')
        offered = [k for k in LIVE_FIELDS if hasattr(self.settings, k)]
        changes = {}
        for key, value in body.items():
            if key not in offered:
                raise LiveheatError(f"setting {key!r} cannot be changed here; valid: {offered}")
            changes[key] = validate(key, value, where="in POST /settings")
        self.settings.update(**changes)
        return self._live_settings()

    def _host_allowed(self, host_header: str | None) -> bool:
        """Without a token, only requests addressed to this server by name (no DNS rebinding)."""
        if self.token is not None:
            return True
        name = _host_name(host_header or "")
        if name is None:
            return False
        if name in _LOOPBACK_NAMES or name == self.host.lower():
            return True
        if self.host in _WILDCARD_HOSTS:  # any interface: its addresses, never a domain name
            try:
                ipaddress.ip_address(name)
            except ValueError:
                return False
            return True
        return False

    def _authorized(self, handler: BaseHTTPRequestHandler, query: dict[str, list[str]]) -> bool:
        if self.token is None:
            return True
        given = (query.get("token") or [""])[0].encode("utf-8")
        auth = handler.headers.get("Authorization", "")
        if auth[:7].lower() == "bearer ":  # http.server decodes headers as latin-1: undo that
            given = auth[7:].strip().encode("latin-1", "replace")
        return hmac.compare_digest(given, self.token.encode("utf-8"))

    def _join_stream(self) -> bool:
        with self._cond:
            if self._clients >= self.max_clients or self._closing:
                return False
            self._clients += 1
            return True

    def _leave_stream(self, stalled: bool) -> None:
        with self._cond:
            self._clients -= 1
            self.clients_dropped += int(stalled)


def server_from_settings(settings: Any, *, stats: Callable[[], dict] | None = None) -> StreamServer:
    """Start a `StreamServer` as `settings` ask (`serve`, `token` or $LIVEHEAT_TOKEN, limits).

    Examples:
        >>> from liveheat.settings import Settings
        >>> srv = server_from_settings(Settings(serve="0"))
        >>> srv.host
        '127.0.0.1'
        >>> srv.close()
    """
    host, port = parse_serve(settings.serve)
    token = settings.token
    if token is None and TOKEN_ENV in os.environ:  # set but empty is an error, never "no token"
        from liveheat.settings.fields import validate

        token = validate("token", os.environ[TOKEN_ENV], where=f"from ${TOKEN_ENV}")
    return StreamServer(
        host,
        port,
        token=token,
        max_clients=settings.max_clients,
        jpeg_quality=settings.jpeg_quality,
        stats=stats,
        settings=settings,
    )
