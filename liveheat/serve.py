"""Stream output: the annotated video as MJPEG over HTTP, with a page, live stats and controls.

Standard library only; each frame is JPEG-encoded once, on demand, and shared by every client.
"""

from __future__ import annotations

import errno
import hmac
import ipaddress
import json
import math
import os
import socket
import socketserver
import threading
import time
from collections import deque
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import cv2
import numpy as np

from liveheat.config import MAX_CLIENTS, check_value, parse_serve
from liveheat.errors import LiveheatError
from liveheat.settings import DRAWING_FIELDS

TOKEN_ENV = "LIVEHEAT_TOKEN"
BOUNDARY = "liveheatframe"
# settings the page may change live (only those that exist in Settings are offered)
LIVE_KEYS = (*(k for k in DRAWING_FIELDS if k != "target"), "paused", "every")
_MAX_BODY = 16 * 1024
_SPARE_CONNECTIONS = 32  # short requests (page, stats, snapshot) beyond the viewers
_KEEPALIVE_S = 1.0  # no new frame for this long: resend the last one (finds viewers who left)
_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
_WILDCARD_HOSTS = ("0.0.0.0", "", "::")


class StreamServer:
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

    Examples:
        >>> import numpy as np
        >>> with StreamServer(port=0) as srv:  # an OS-chosen free port on 127.0.0.1
        ...     srv.write(np.zeros((48, 64, 3), np.uint8), None)
        ...     srv.url.startswith("http://127.0.0.1:")
        True
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
        head_timeout: float = 10.0,
    ) -> None:
        if not 1 <= int(jpeg_quality) <= 100:
            raise LiveheatError(f"jpeg_quality {jpeg_quality!r}: expected an integer in [1, 100]")
        if not 1 <= int(max_clients) <= MAX_CLIENTS:  # each viewer holds a thread
            raise LiveheatError(
                f"max_clients {max_clients!r}: expected an integer in [1, {MAX_CLIENTS}]"
            )
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
        self._clients = 0
        self._closing = False
        self._closed = False
        self._started = time.monotonic()
        self._times: deque[float] = deque(maxlen=64)
        self._conns: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()
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

    def write(self, image: np.ndarray, frame: Any = None) -> None:
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
            threads = list(self._threads)
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
        return {k: getattr(s, k) for k in LIVE_KEYS if hasattr(s, k)}

    def _apply(self, body: Any) -> dict[str, Any]:
        """Validate a POSTed settings object and apply it atomically; LiveheatError if bad."""
        if self.settings is None:
            raise LiveheatError("this server has no settings to change")
        if not isinstance(body, dict) or not body:
            raise LiveheatError('expected a JSON object of settings, e.g. {"alpha": 0.6}')
        offered = [k for k in LIVE_KEYS if hasattr(self.settings, k)]
        changes = {}
        for key, value in body.items():
            if key not in offered:
                raise LiveheatError(f"setting {key!r} cannot be changed here; valid: {offered}")
            if key == "paused":
                if not isinstance(value, bool):
                    raise LiveheatError(f"paused = {value!r}: expected true/false")
                changes[key] = value
            else:
                changes[key] = check_value(key, value)
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


def _host_name(header: str) -> str | None:
    """The lower-case host of a `Host` header (`[::1]:8080` -> `::1`); None if malformed."""
    header = header.strip().lower()
    if header.startswith("["):
        name, sep, port = header[1:].partition("]")
        if not sep or (port and not port.startswith(":")):
            return None
        port = port[1:]
    elif header.count(":") > 1:  # a bare IPv6 address is not a valid Host
        return None
    else:
        name, _, port = header.partition(":")
    if port and not (port.isascii() and port.isdigit()):
        return None
    return name.rstrip(".") or None


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 64

    def __init__(self, address, handler, owner: StreamServer, family: int):
        self.address_family = family
        self.owner = owner
        super().__init__(address, handler)

    def server_bind(self) -> None:  # HTTPServer's getfqdn() can wait on DNS for a wildcard host
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def process_request(self, request, client_address):  # track threads so close() can join them
        with self.owner._reg_lock:
            crowded = len(self.owner._threads) >= self.owner.max_clients + _SPARE_CONNECTIONS
        if crowded:  # idle or half-open connections must not grow threads without bound
            self.shutdown_request(request)
            return
        t = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name="liveheat-serve-client",
            daemon=True,
        )
        with self.owner._reg_lock:
            self.owner._threads.add(t)
            self.owner._conns.add(request)
        t.start()

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self.owner._reg_lock:
                self.owner._threads.discard(threading.current_thread())
                self.owner._conns.discard(request)

    def handle_error(self, request, client_address):  # a client hanging up is not an error
        pass


def _make_httpd(host: str, port: int, owner: StreamServer) -> _HTTPServer:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return _HTTPServer((host, port), _Handler, owner, family)
    except OSError as e:
        if isinstance(e, socket.gaierror) or e.errno == errno.EADDRNOTAVAIL or not port:
            hint = "check the host address (a name or address of this machine)"
        elif port < 1024:
            hint = "ports below 1024 need root; pick one above 1023"
        else:
            hint = "pick another port"
        raise LiveheatError(f"cannot serve on {host}:{port}: {e.strerror or e}; {hint}") from None


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    server_version = "liveheat"
    sys_version = ""
    protocol_version = "HTTP/1.0"

    def setup(self) -> None:
        super().setup()
        owner = self.server.owner
        self.connection.settimeout(owner.send_timeout)
        # a total deadline for the request: the socket timeout restarts on every byte, so a
        # client dribbling one byte every few seconds would otherwise hold its slot forever
        self._read_lock = threading.Lock()
        self._read_done = False
        self._read_timer = threading.Timer(owner.head_timeout, self._read_expired)
        self._read_timer.daemon = True
        self._read_timer.start()

    def _read_expired(self) -> None:
        with self._read_lock:
            if self._read_done:
                return
            self._read_done = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _request_read(self) -> bool:
        """The whole request has arrived: stop its deadline. False if the deadline struck first."""
        with self._read_lock:
            if self._read_done:
                return False
            self._read_done = True
        self._read_timer.cancel()
        return True

    def parse_request(self) -> bool:
        ok = super().parse_request()
        if self.command == "POST":  # the body is still to come: the deadline covers it too
            return ok
        return self._request_read() and ok

    def finish(self) -> None:
        self._read_timer.cancel()
        self._read_timer.join()
        super().finish()

    def log_message(self, format, *args) -> None:  # quiet: a run's terminal shows progress
        pass

    # ---------------------------------------------------------------- routing
    def do_GET(self) -> None:
        self._route("GET")

    def do_HEAD(self) -> None:
        self._route("HEAD")

    def do_POST(self) -> None:
        self._route("POST")

    def _route(self, verb: str) -> None:
        owner = self.server.owner
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        if not owner._host_allowed(self.headers.get("Host")):
            host = self.headers.get("Host")
            error = f"Host {host!r} is not this server; open it by its address, or set a token"
            self._json(HTTPStatus.FORBIDDEN, {"error": error})
            return
        if not owner._authorized(self, query):
            self._json(
                HTTPStatus.UNAUTHORIZED,
                {"error": "token required: add ?token=... or an Authorization: Bearer header"},
                extra={"WWW-Authenticate": 'Bearer realm="liveheat"'},
            )
            return
        path = parts.path.rstrip("/") or "/"
        if verb == "POST":
            if path == "/settings":
                self._post_settings()
            else:
                self._json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": f"POST {path} not allowed"})
            return
        if path in ("/", "/index.html"):
            self._send(HTTPStatus.OK, "text/html; charset=utf-8", _page(owner).encode("utf-8"))
        elif path == "/stream":
            self._stream()
        elif path == "/snapshot.jpg":
            self._snapshot()
        elif path == "/stats":
            self._json(HTTPStatus.OK, owner._stats())
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such page {path!r}; try / or /stream"})

    # ---------------------------------------------------------------- responses
    def _send(self, status, ctype: str, body: bytes, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status, obj: dict, extra: dict | None = None) -> None:
        body = json.dumps(_clean(obj), default=_jsonable, allow_nan=False).encode("utf-8")
        self._send(status, "application/json", body, extra)

    def _snapshot(self) -> None:
        owner = self.server.owner
        jpeg, _ = owner._encoded()
        if jpeg is None:
            with owner._cond:
                owner._cond.wait_for(lambda: owner._image is not None or owner._closing, 2.0)
            jpeg, _ = owner._encoded()
        if jpeg is None:
            self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "no frame yet; try again"})
        else:
            self._send(HTTPStatus.OK, "image/jpeg", jpeg)

    def _post_settings(self) -> None:
        owner = self.server.owner
        origin, host = self.headers.get("Origin"), (self.headers.get("Host") or "").strip()
        if origin is not None and urlsplit(origin).netloc.lower() != host.lower():
            self._json(HTTPStatus.FORBIDDEN, {"error": f"cross-site request from {origin!r}"})
            return
        ctype = (self.headers.get("Content-Type") or "").partition(";")[0].strip().lower()
        if ctype != "application/json":
            self._json(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                {"error": "send the settings with Content-Type: application/json"},
            )
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 < length <= _MAX_BODY:
            self._json(HTTPStatus.BAD_REQUEST, {"error": "expected a JSON body under 16 KiB"})
            return
        raw = self.rfile.read(length)
        if len(raw) < length or not self._request_read():
            return  # the client hung up, or the request deadline struck: nobody to answer
        try:
            body = json.loads(raw.decode("utf-8"))
        except (ValueError, RecursionError):  # bad UTF-8 or JSON, or nested too deep
            self._json(HTTPStatus.BAD_REQUEST, {"error": 'body is not JSON; send {"alpha": 0.6}'})
            return
        try:
            applied = owner._apply(body)
        except (LiveheatError, ValueError, RecursionError) as e:
            self._json(HTTPStatus.BAD_REQUEST, {"error": _short(e)})
            return
        self._json(HTTPStatus.OK, {"settings": applied})

    def _stream(self) -> None:
        owner = self.server.owner
        if not owner._join_stream():
            self._json(
                HTTPStatus.SERVICE_UNAVAILABLE,
                {"error": f"too many viewers (limit {owner.max_clients}); try again later"},
                extra={"Retry-After": "5"},
            )
            return
        stalled = False
        try:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Cache-Control", "no-store, no-cache, must-revalidate")
            self.send_header("Pragma", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command == "HEAD":
                return
            last, part = 0, b""  # seq 0: nothing written yet
            while not owner._closing:
                jpeg, seq = owner._next_frame(last, _KEEPALIVE_S)
                if jpeg is not None and seq != last:
                    last = seq
                    head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                    head += f"Content-Length: {len(jpeg)}\r\n\r\n"
                    part = head.encode("ascii") + jpeg + b"\r\n"
                elif owner._closing or _peer_closed(self.connection):
                    break
                # no new frame (paused, slow source): resend the last one, so a viewer who
                # left is noticed (the send fails) and its slot is freed
                if part:
                    self.wfile.write(part)
        except TimeoutError:  # stalled: it could not take a frame within send_timeout
            stalled = not owner._closing
        except OSError:  # gone (reset, broken pipe) or shut down by close(): not counted
            pass
        finally:
            owner._leave_stream(stalled)
            self.close_connection = True


def _peer_closed(conn: socket.socket) -> bool:
    """True if the client has closed its end (EOF waiting), without blocking."""
    timeout = conn.gettimeout()
    conn.settimeout(0.0)
    try:
        return conn.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        conn.settimeout(timeout)


def _short(e: BaseException) -> str:
    if isinstance(e, RecursionError):
        return 'the JSON is nested too deeply; send a flat object like {"alpha": 0.6}'
    return str(e)


def _clean(o: Any) -> Any:
    """JSON has no NaN/Infinity (a browser's JSON.parse rejects them): those become null."""
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, np.ndarray):
        return _clean(o.tolist())
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if isinstance(o, (float, np.floating)):
        return float(o) if math.isfinite(o) else None
    if isinstance(o, np.integer):
        return int(o)
    return o


def _jsonable(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


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
    token = settings.token or os.environ.get(TOKEN_ENV) or None
    return StreamServer(
        host,
        port,
        token=token,
        max_clients=settings.max_clients,
        jpeg_quality=settings.jpeg_quality,
        stats=stats,
        settings=settings,
    )


def _choices() -> dict[str, list]:
    from liveheat.config import _colormaps
    from liveheat.settings import METHODS_FIXED, MODES, NORMS

    return {
        "method": list(METHODS_FIXED),
        "colormap": _colormaps(),
        "mode": list(MODES),
        "norm": list(NORMS),
    }


def _page(owner: StreamServer) -> str:
    cfg = json.dumps({"choices": _choices(), "controls": bool(owner.settings is not None)})
    return _PAGE.replace("/*CONFIG*/", cfg)


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>liveheat</title>
<style>
 body{margin:0;background:#111;color:#ddd;font:14px/1.4 system-ui,sans-serif}
 #stream{display:block;max-width:100%;background:#000}
 #bar{display:flex;flex-wrap:wrap;gap:12px;padding:8px 10px;align-items:center}
 #hud{font-family:ui-monospace,monospace;white-space:pre;color:#9f9}
 #controls{display:flex;flex-wrap:wrap;gap:12px}
 label{display:flex;gap:4px;align-items:center} #msg{color:#f88}
</style></head><body>
<img id="stream" alt="live stream">
<div id="bar">
 <span id="hud">connecting...</span>
 <span id="controls"></span><span id="msg"></span>
</div>
<script>
const CFG = /*CONFIG*/;
const q = new URLSearchParams(location.search).get("token");
const withToken = (p) => q ? p + "?token=" + encodeURIComponent(q) : p;
document.getElementById("stream").src = withToken("stream");
const $ = (id) => document.getElementById(id);
function fmt(v, d) { return (typeof v === "number") ? v.toFixed(d) : (v ?? "-"); }
const inputs = {};
function control(key, el) {
  const lab = document.createElement("label");
  lab.append(key, el); $("controls").append(lab); inputs[key] = el;
  el.addEventListener("change", () => {
    let v = el.type === "range" ? parseFloat(el.value) : el.value;
    fetch(withToken("settings"), {method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({[key]: v})})
      .then(r => r.json().then(j => { $("msg").textContent = r.ok ? "" : j.error; }))
      .catch(e => { $("msg").textContent = String(e); });
  });
}
if (CFG.controls) {
  for (const key of ["method", "colormap"]) {
    const sel = document.createElement("select");
    for (const c of CFG.choices[key]) { const o = document.createElement("option");
      o.value = o.textContent = c; sel.append(o); }
    control(key, sel);
  }
  const a = document.createElement("input");
  a.type = "range"; a.min = 0; a.max = 1; a.step = 0.05; control("alpha", a);
}
async function poll() {
  try {
    const r = await fetch(withToken("stats")); const s = await r.json();
    $("hud").textContent = `fps ${fmt(s.fps, 1)}  latency p50 ${fmt(s.latency_ms_p50, 0)} ms` +
      `  p95 ${fmt(s.latency_ms_p95, 0)} ms  top ${s.top_class ?? "-"} ${fmt(s.top_score, 2)}` +
      `  up ${fmt(s.uptime_s, 0)} s  viewers ${s.clients}/${s.max_clients}` +
      (s.error ? `  error: ${s.error}` : "");
    for (const [k, el] of Object.entries(inputs)) {
      if (s.settings && k in s.settings && document.activeElement !== el) el.value = s.settings[k];
    }
  } catch (e) { $("hud").textContent = "disconnected"; }
}
poll(); setInterval(poll, 1000);
</script></body></html>
"""
