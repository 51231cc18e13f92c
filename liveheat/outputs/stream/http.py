"""The HTTP side of the stream server: request handling, limits, MJPEG."""

from __future__ import annotations

import errno
import json
import math
import socket
import socketserver
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import numpy as np

from liveheat.errors import LiveheatError
from liveheat.outputs.stream.page import page

if TYPE_CHECKING:
    from liveheat.outputs.stream.server import StreamServer

BOUNDARY = "liveheatframe"
_MAX_BODY = 16 * 1024
_SPARE_CONNECTIONS = 32  # short requests (page, stats, snapshot) beyond the viewers
_PENDING_PER_ADDRESS = 8  # connections of one address whose request is still arriving
_PENDING_TOTAL = 32  # the same, all addresses together
_KEEPALIVE_S = 1.0  # no new frame for this long: resend the last one (finds viewers who left)


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
        owner = self.owner
        addr = client_address[0] if client_address else ""
        with owner._reg_lock:
            # connections whose request has not arrived whole (before any authentication):
            # at most PENDING_PER_ADDRESS from one address and PENDING_TOTAL in all; past
            # that the oldest such one is closed for the new one. A flood of idle or
            # dribbling sockets then only pushes out its own kind: a whole request (a real
            # client) leaves this list within milliseconds and is answered.
            pending = owner._pending
            same = [r for r, a in pending.items() if a == addr]
            victims = same[: max(0, len(same) + 1 - _PENDING_PER_ADDRESS)]
            if len(pending) - len(victims) + 1 > _PENDING_TOTAL:
                victims += [r for r in pending if r not in victims][:1]
            crowded = len(owner._threads) - len(victims) >= owner.max_clients + _SPARE_CONNECTIONS
            if crowded and pending:
                victims += [r for r in pending if r not in victims][:1]
                crowded = False
            for r in victims:
                pending.pop(r, None)
            if not crowded:
                pending[request] = addr
        for r in victims:
            _cut(r)
        if crowded:  # every slot holds a whole request being served: no room, no thread
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
            # every thread until it has ended (it leaves `_threads` a moment before): close()
            # joins these; ended ones are dropped here, so a server running for days keeps few
            alive = [x for x in self.owner._client_threads if x.is_alive()]
            self.owner._client_threads = [*alive, t]
            self.owner._conns.add(request)
        t.start()

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self.owner._reg_lock:
                self.owner._threads.discard(threading.current_thread())
                self.owner._conns.discard(request)
                self.owner._pending.pop(request, None)

    def handle_error(self, request, client_address):  # a client hanging up is not an error
        pass


def _cut(conn: socket.socket) -> None:
    """Close a connection from another thread: its handler's read fails and it ends."""
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
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
        owner = self.server.owner
        with owner._reg_lock:
            owner._pending.pop(self.request, None)  # no longer evictable: it is being answered
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
            html = page(owner.settings is not None).encode("utf-8")
            self._send(HTTPStatus.OK, "text/html; charset=utf-8", html)
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
