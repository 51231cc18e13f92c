"""The stream server: real clip frames, annotated with `liveheat.overlay`, served over real HTTP.

A real browser (Debian's headless Chromium) must show the stream; plain clients read MJPEG.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

import liveheat
from liveheat.errors import LiveheatError
from liveheat.outputs.stream.server import StreamServer, server_from_settings
from liveheat.settings.fields import Settings
from tests.helpers.procs import reaped

CLIP = Path(liveheat.__file__).parent / "data" / "bigbuckbunny.mp4"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _load(size: tuple[int, int] | None, limit: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(CLIP))
    frames = []
    while len(frames) < limit:
        ok, image = cap.read()
        if not ok:
            break
        frames.append(image if size is None else cv2.resize(image, size, cv2.INTER_AREA))
    cap.release()
    assert frames, "bundled clip unreadable"
    return frames


def _annotate(frames: list[np.ndarray]) -> list[np.ndarray]:
    """Overlay a heatmap (blurred edge energy of the frame itself) on each frame."""
    out = []
    for f in frames:
        grey = cv2.cvtColor(f, cv2.COLOR_BGR2GRAY).astype(np.float32)
        heat = cv2.GaussianBlur(np.abs(cv2.Laplacian(grey, cv2.CV_32F)), (0, 0), 6)
        out.append(liveheat.overlay(f, heat, alpha=0.5, colormap="jet"))
    return out


@pytest.fixture(scope="module")
def small() -> list[np.ndarray]:
    return _annotate(_load((320, 180), 100))


@pytest.fixture(scope="module")
def big() -> list[np.ndarray]:
    return _load(None, 24)


class Feeder:
    """Writes frames to an output at `fps`, looping, on its own thread (a stand-in pipeline)."""

    def __init__(self, out, frames, fps: float = 25.0):
        self.out, self.frames, self.period = out, frames, 1.0 / fps
        self.written = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.out.write(self.frames[self.written % len(self.frames)], None)
            self.written += 1
            self._stop.wait(self.period)

    def __enter__(self) -> Feeder:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)


def _get(url: str, *, headers: dict | None = None, data: bytes | None = None):
    """(status, body bytes) of one request; HTTP errors are returned, not raised."""
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _post(url: str, obj) -> tuple[int, dict]:
    body = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    status, raw = _get(url, headers={"Content-Type": "application/json"}, data=body)
    return status, json.loads(raw)


class MjpegReader:
    """A plain-socket MJPEG client: `frames(n)` returns the next n decoded JPEG frames."""

    def __init__(
        self,
        port: int,
        path: str = "/stream",
        *,
        rcvbuf: int | None = None,
        host: str | None = None,
    ):
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", port))
        host = f"127.0.0.1:{port}" if host is None else host
        self.sock.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        self.f = self.sock.makefile("rb")

    def status(self) -> tuple[int, dict]:
        status = int(self.f.readline().split()[1])
        headers = {}
        while (line := self.f.readline().strip()) != b"":
            k, _, v = line.decode().partition(":")
            headers[k.lower()] = v.strip()
        return status, headers

    def frames(self, n: int) -> list[np.ndarray]:
        out = []
        while len(out) < n:
            line = self.f.readline()
            assert line, "stream ended early"
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
                assert self.f.readline() == b"\r\n"
                jpeg = self.f.read(length)
                image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
                assert image is not None, "a part did not decode as JPEG"
                out.append(image)
        return out

    def close(self) -> None:
        self.f.close()
        self.sock.close()


def _best_match(image: np.ndarray, frames: list[np.ndarray]) -> tuple[int, float]:
    """Index of the frame most correlated with `image`, and that correlation."""
    a = image.astype(np.float32).ravel()
    a -= a.mean()
    best = (-1, -1.0)
    for i, f in enumerate(frames):
        b = f.astype(np.float32).ravel()
        b -= b.mean()
        r = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-9))
        if r > best[1]:
            best = (i, r)
    return best


def _wait_for(cond, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


# ---------------------------------------------------------------------- MJPEG
def test_client_reads_multipart_jpeg_frames_of_the_annotated_stream(small):
    with StreamServer() as srv, Feeder(srv, small):
        reader = MjpegReader(srv.port)
        status, headers = reader.status()
        got = reader.frames(12)
        reader.close()
    assert status == 200
    assert headers["content-type"] == "multipart/x-mixed-replace; boundary=liveheatframe"
    assert all(g.shape == (180, 320, 3) for g in got)
    matches = [_best_match(g, small) for g in got]
    assert all(r > 0.97 for _, r in matches), matches  # each part is one of the written frames
    assert len({i for i, _ in matches}) >= 6  # and the stream moves on
    assert srv.frames_encoded <= srv.frames_written  # never more than one encode per frame


def test_each_frame_encoded_once_however_many_clients(small):
    with StreamServer() as srv, Feeder(srv, small):
        readers = [MjpegReader(srv.port) for _ in range(3)]
        for r in readers:
            r.status()
            r.frames(10)
        written, encoded = srv.frames_written, srv.frames_encoded
        for r in readers:
            r.close()
    assert 10 <= encoded <= written


def test_nothing_is_encoded_while_nobody_watches(small):
    with StreamServer() as srv:
        for f in small[:20]:
            srv.write(f, None)
        assert (srv.frames_written, srv.frames_encoded) == (20, 0)
        status, jpeg = _get(srv.url + "snapshot.jpg")
    assert status == 200
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert _best_match(image, small[:20])[0] == 19  # the newest frame
    assert srv.frames_encoded == 1


def test_stalled_client_does_not_slow_a_second_client(big):
    # 720p frames (~150 kB as JPEG) fill a stalled client's socket buffers within a few frames;
    # its handler then blocks in send() for up to send_timeout (10 s) while it stays connected
    fps, n = 25.0, 40
    with StreamServer(send_timeout=10.0) as srv, Feeder(srv, big, fps=fps):
        stalled = MjpegReader(srv.port, rcvbuf=4096)  # sends its request, never reads
        assert _wait_for(lambda: srv.clients == 1)
        time.sleep(1.0)  # its buffers are full now
        second = MjpegReader(srv.port)
        assert second.status()[0] == 200
        second.frames(1)
        before, t0 = srv.frames_written, time.monotonic()
        got = second.frames(n)
        elapsed, fed = time.monotonic() - t0, srv.frames_written - before
        print(f"\n{n} frames in {elapsed:.2f} s while {fed} were fed ({n / fps:.2f} s at pace)")
        # the second client keeps the feed's pace: one new frame per frame fed, give or take
        assert fed <= 1.5 * n, (elapsed, fed)
        assert len({_best_match(g[::8, ::8], [b[::8, ::8] for b in big])[0] for g in got}) > 10
        # ... while the stalled client is still connected, not yet dropped
        assert (srv.clients, srv.clients_dropped) == (2, 0)
        stalled.close()
        second.close()


def test_only_a_stalled_viewer_counts_as_dropped(big):
    with StreamServer(send_timeout=1.0) as srv, Feeder(srv, big):
        leaver = MjpegReader(srv.port)
        assert leaver.status()[0] == 200 and len(leaver.frames(2)) == 2
        leaver.close()  # a viewer who simply leaves
        assert _wait_for(lambda: srv.clients == 0)
        assert srv.clients_dropped == 0
        stalled = MjpegReader(srv.port, rcvbuf=4096)  # never reads: send times out after 1 s
        assert _wait_for(lambda: srv.clients_dropped == 1, 20)
        assert srv.clients == 0 and json.loads(_get(srv.url + "stats")[1])["clients_dropped"] == 1
        stalled.close()


def test_a_paused_stream_resends_its_last_frame_and_frees_a_departed_viewers_slot(small):
    # no new frames (a paused run): the last one is resent about once a second; a viewer who
    # left is noticed and its slot freed, and a long stream outlives the request deadline
    with StreamServer(max_clients=1, head_timeout=0.5) as srv:
        srv.write(small[7])
        a = MjpegReader(srv.port)
        assert a.status()[0] == 200
        t0 = time.monotonic()
        got = a.frames(3)
        assert 1.5 < time.monotonic() - t0 < 5
        assert [_best_match(g, small)[0] for g in got] == [7, 7, 7]
        assert srv.frames_encoded == 1  # a resend is not a new encode
        a.close()
        assert _wait_for(lambda: srv.clients == 0, 5)
        b = MjpegReader(srv.port)
        assert b.status()[0] == 200 and len(b.frames(1)) == 1
        b.close()
        assert _wait_for(lambda: srv.clients == 0, 5)
        assert srv.clients_dropped == 0


def test_a_viewer_who_leaves_before_the_first_frame_frees_its_slot():
    with StreamServer(max_clients=1) as srv:
        a = MjpegReader(srv.port)
        assert a.status()[0] == 200
        cpu = time.process_time()
        time.sleep(1.0)
        assert time.process_time() - cpu < 0.3  # waiting for the first frame does not spin
        a.close()
        assert _wait_for(lambda: srv.clients == 0, 5)
        b = MjpegReader(srv.port)
        assert b.status()[0] == 200
        b.close()


def test_the_server_is_not_a_recording_output():
    """The runner repeats paused frames to outputs without `records = True` (files have it)."""
    assert getattr(StreamServer, "records", False) is False
    with StreamServer() as srv:
        assert getattr(srv, "records", False) is False


def test_a_request_dribbled_byte_by_byte_is_cut_off_at_the_deadline():
    baseline = threading.active_count()
    with StreamServer(head_timeout=1.0) as srv:
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        s.settimeout(0.2)
        request = b"GET /stats HTTP/1.0\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100
        t0, closed_after = time.monotonic(), None
        for byte in request:  # a byte every 0.2 s: each one restarts the 5 s socket timeout
            try:
                s.sendall(bytes([byte]))
                if s.recv(1) == b"":
                    closed_after = time.monotonic() - t0
                    break
            except TimeoutError:
                pass
            except OSError:  # reset
                closed_after = time.monotonic() - t0
                break
            if time.monotonic() - t0 > 6:
                break
        s.close()
        assert closed_after is not None and 0.9 < closed_after < 3, closed_after
        assert _wait_for(lambda: not srv._threads, 5)
        assert _get(srv.url + "stats")[0] == 200  # a whole request is still served
    assert _wait_for(lambda: threading.active_count() == baseline, 5)  # no timer left behind


def test_close_drops_stalled_clients_and_joins_every_thread(big):
    baseline = threading.active_count()
    srv = StreamServer(send_timeout=60.0)
    with Feeder(srv, big):
        stalled = [MjpegReader(srv.port, rcvbuf=4096) for _ in range(3)]
        assert _wait_for(lambda: srv.clients == 3)
        time.sleep(0.5)  # let their buffers fill: the handlers now block in send()
        srv.close()
    assert srv.clients == 0
    assert threading.active_count() == baseline
    for s in stalled:  # their connections were shut down, not left hanging
        assert _read_to_eof(s.sock)
        s.close()


def _read_to_eof(sock: socket.socket) -> bool:
    """True once the peer has closed (EOF or reset); a socket timeout fails the test."""
    sock.settimeout(10)
    try:
        while sock.recv(1 << 20):
            pass
    except ConnectionResetError:
        pass
    return True


def test_beyond_max_clients_gets_503_and_a_slot_frees_when_one_leaves(small):
    with StreamServer(max_clients=2) as srv, Feeder(srv, small):
        a, b = MjpegReader(srv.port), MjpegReader(srv.port)
        assert a.status()[0] == 200 and b.status()[0] == 200
        c = MjpegReader(srv.port)
        status, _ = c.status()
        assert status == 503
        assert json.loads(c.f.read())["error"].startswith("too many viewers")
        c.close()
        a.close()
        assert _wait_for(lambda: srv.clients == 1)
        assert srv.clients_dropped == 0  # it left; it was not dropped
        d = MjpegReader(srv.port)
        assert d.status()[0] == 200 and len(d.frames(3)) == 3
        b.close()
        d.close()


def test_idle_connections_cannot_grow_threads_without_bound():
    with StreamServer(max_clients=2, send_timeout=30) as srv:
        idle = [socket.create_connection(("127.0.0.1", srv.port), timeout=5) for _ in range(60)]
        # connections beyond the cap are closed at once; the others wait for their request
        refused = 0
        for s in idle[-20:]:
            s.settimeout(5)
            try:
                refused += s.recv(1) == b""
            except ConnectionResetError:
                refused += 1
        assert refused == 20
        assert len(srv._threads) <= 2 + 32
        for s in idle:
            s.close()
        assert _wait_for(lambda: len(srv._threads) == 0)
        assert _get(srv.url + "stats")[0] == 200


# ---------------------------------------------------------------------- access
def test_token_is_required_on_every_route():
    with StreamServer(token="s3cr\u00e9t") as srv:
        srv.write(np.zeros((32, 32, 3), np.uint8))
        for route in ("", "stream", "snapshot.jpg", "stats"):
            assert _get(srv.url + route)[0] == 401
            assert _get(srv.url + route + "?token=wrong")[0] == 401
        assert _get(srv.url + "stats?token=s3cr%C3%A9t")[0] == 200
        assert (
            _get(
                srv.url + "stats",
                headers={"Authorization": "Bearer s3cr\u00e9t".encode().decode("latin-1")},
            )[0]
            == 200
        )
        assert _get(srv.url + "snapshot.jpg?token=s3cr%C3%A9t")[0] == 200
        status, body = _post(srv.url + "settings", {"alpha": 0.1})
        assert status == 401 and "token" in body["error"]


def test_token_from_environment(monkeypatch):
    monkeypatch.setenv("LIVEHEAT_TOKEN", "from-env")
    srv = server_from_settings(Settings(serve="0"))
    try:
        assert _get(srv.url + "stats")[0] == 401
        assert _get(srv.url + "stats?token=from-env")[0] == 200
    finally:
        srv.close()


def _non_loopback_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.123", 9))  # no packet is sent; picks the outgoing interface
            addr = s.getsockname()[0]
        except OSError:
            return None
    return None if addr.startswith("127.") else addr


def test_default_bind_is_loopback_only():
    addr = _non_loopback_address()
    with StreamServer() as srv:
        assert srv.host == "127.0.0.1" and srv._httpd.server_address[0] == "127.0.0.1"
        assert _get(srv.url + "stats")[0] == 200
        if addr:
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection((addr, srv.port), timeout=5).close()
    with server_from_settings(Settings(serve="0")) as srv:  # `--serve PORT` is loopback too
        assert srv._httpd.server_address[0] == "127.0.0.1"
    if addr:  # control: an explicit wildcard host is reachable on that address
        with StreamServer("0.0.0.0", 0) as srv:
            socket.create_connection((addr, srv.port), timeout=5).close()


def test_port_in_use_is_a_clear_error():
    with StreamServer() as srv:
        with pytest.raises(
            LiveheatError, match=r"cannot serve on 127\.0\.0\.1:\d+: .*another port"
        ):
            StreamServer(port=srv.port)


def test_a_host_that_is_not_this_machine_says_check_the_host(monkeypatch):
    # 192.0.2.1 (TEST-NET-1) is no address of this machine: bind fails locally, nothing is sent
    with pytest.raises(LiveheatError, match=r"cannot serve on 192\.0\.2\.1:8080: .*check the host"):
        StreamServer("192.0.2.1", 8080)
    # a name that does not resolve (simulated: tests resolve nothing over the network)
    from liveheat.outputs.stream import http as serve

    def no_such_name(self):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(serve._HTTPServer, "server_bind", no_such_name)
    with pytest.raises(
        LiveheatError,
        match=r"on nosuchhost\.invalid:8080: Name or service not known; check the host address",
    ):
        StreamServer("nosuchhost.invalid", 8080)


# ---------------------------------------------------------------------- DNS rebinding, CSRF
def _raw_status(port: int, request: bytes) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        return int(s.makefile("rb").readline().split()[1])


def test_without_a_token_only_requests_addressed_to_this_server_are_served():
    with StreamServer() as srv:
        p = srv.port
        srv.write(np.zeros((32, 32, 3), np.uint8))
        for host in ("127.0.0.1", f"127.0.0.1:{p}", "localhost", f"LocalHost:{p}", "[::1]",
                     f"[::1]:{p}", "localhost:9000"):  # fmt: skip
            assert _get(srv.url + "stats", headers={"Host": host})[0] == 200, host
        # a DNS-rebinding page reaches 127.0.0.1 under its own name: refused on every route
        foreign = ("attacker.example", f"attacker.example:{p}", "127.0.0.1.nip.io", "::1",
                   "localhost.attacker.example", "127.0.0.1:80x", "", "127.0.0.1 x")  # fmt: skip
        for host in foreign:
            for route in ("", "stats", "snapshot.jpg", "stream"):
                status, body = _get(srv.url + route, headers={"Host": host})
                assert status == 403 and "not this server" in json.loads(body)["error"], host
        assert _raw_status(p, b"GET /stats HTTP/1.0\r\n\r\n") == 403  # no Host at all
        reader = MjpegReader(p, host="attacker.example")
        assert reader.status()[0] == 403
        reader.close()
        assert srv.clients == 0 and srv.frames_encoded == 0


def test_a_wildcard_bind_accepts_ip_addresses_but_no_names():
    with StreamServer("0.0.0.0", 0) as srv:
        for host in ("192.168.1.20:8080", "10.0.0.5", "[fe80::1]:8080", "localhost"):
            assert _get(srv.url + "stats", headers={"Host": host})[0] == 200, host
        assert _get(srv.url + "stats", headers={"Host": "device.attacker.example"})[0] == 403


def test_with_a_token_any_host_may_ask():  # e.g. behind a reverse proxy with its own name
    with StreamServer(token="t") as srv:
        assert _get(srv.url + "stats?token=t", headers={"Host": "cam.example.org"})[0] == 200
        assert _get(srv.url + "stats", headers={"Host": "cam.example.org"})[0] == 401


def test_settings_post_needs_json_and_no_foreign_origin():
    settings = Settings()
    with StreamServer(settings=settings) as srv:
        url, p, body = srv.url + "settings", srv.port, b'{"alpha": 0.1}'
        # the types a cross-site <form> or fetch can send without a CORS preflight
        for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
            status, raw = _get(url, headers={"Content-Type": ctype}, data=body)
            assert status == 415 and "application/json" in json.loads(raw)["error"], ctype
        for origin in ("http://attacker.example", "null", f"http://127.0.0.1:{p + 1}",
                       f"http://localhost:{p}"):  # fmt: skip
            headers = {"Content-Type": "application/json", "Origin": origin}
            status, raw = _get(url, headers=headers, data=body)
            assert status == 403 and "cross-site" in json.loads(raw)["error"], origin
        no_type = b"POST /settings HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 14\r\n\r\n"
        assert _raw_status(p, no_type + body) == 415
        assert settings.alpha == 0.5  # nothing above changed anything
        # what the page's own fetch sends: same origin, JSON
        headers = {"Content-Type": "application/json; charset=utf-8", "Origin": srv.url[:-1]}
        status, raw = _get(url, headers=headers, data=body)
        assert status == 200 and settings.alpha == 0.1


def test_bad_json_bodies_get_400_not_a_dropped_connection():
    settings = Settings()
    with StreamServer(settings=settings) as srv:
        url = srv.url + "settings"
        status, body = _post(url, b"[" * 16000)  # nested deeper than Python's recursion limit
        assert status == 400 and "not JSON" in body["error"]
        status, body = _post(url, b'{"alpha": NaN}')
        assert status == 400 and "finite" in body["error"]
        status, body = _post(url, b"\xff\xfe{}")
        assert status == 400 and "not JSON" in body["error"]
        assert _get(srv.url + "stats")[0] == 200
    assert settings.alpha == 0.5


def test_stats_arrays_with_nan_arrive_as_null():
    stats = {"hist": np.array([np.nan, 1.5, np.inf]), "grid": np.zeros((2, 2), np.float32)}
    with StreamServer(stats=lambda: stats) as srv:
        status, raw = _get(srv.url + "stats")
    s = json.loads(raw)
    assert status == 200 and s["hist"] == [None, 1.5, None] and s["grid"] == [[0, 0], [0, 0]]


# ---------------------------------------------------------------------- stats, settings, page
def test_stats_json_merges_runner_stats_with_server_counts(small):
    calls = []

    def stats() -> dict:
        calls.append(1)
        return {
            "output_fps": np.float64(24.5),
            "latency_ms_p50": 31.0,
            "latency_ms_p95": float("nan"),  # JSON has no NaN: it must arrive as null
            "top_class": "hare",
            "frames_out": np.int64(7),
        }

    settings = Settings(colormap="turbo")
    with StreamServer(stats=stats, settings=settings) as srv, Feeder(srv, small):
        r = MjpegReader(srv.port)
        r.status()
        r.frames(2)
        status, raw = _get(srv.url + "stats")
        r.close()
    s = json.loads(raw)
    assert status == 200 and calls
    assert s["fps"] == 24.5 and s["latency_ms_p50"] == 31.0 and s["top_class"] == "hare"
    assert s["latency_ms_p95"] is None and s["frames_out"] == 7 and b"NaN" not in raw
    assert s["clients"] == 1 and s["max_clients"] == 8 and s["uptime_s"] >= 0
    assert s["settings"]["colormap"] == "turbo"


def test_settings_post_changes_the_shared_settings_and_rejects_bad_values():
    settings = Settings()
    with StreamServer(settings=settings) as srv:
        url = srv.url + "settings"
        status, body = _post(url, {"method": "eigen", "colormap": "hot", "alpha": 0.8})
        assert status == 200 and body["settings"]["method"] == "eigen"
        assert (settings.method, settings.colormap, settings.alpha) == ("eigen", "hot", 0.8)
        for bad, word in [
            ({"alpha": 2}, "alpha"),
            ({"colormap": "jt"}, "did you mean 'jet'"),
            ({"method": "gradcam"}, "method"),
            ({"alpha": "0.3"}, "alpha"),
            ({"model": "x.onnx"}, "cannot be changed here"),
            ({}, "JSON object"),
            ([1, 2], "JSON object"),
        ]:
            status, body = _post(url, bad)
            assert status == 400 and word in body["error"], (bad, body)
        status, body = _post(url, b"alpha=0.3")
        assert status == 400 and "not JSON" in body["error"]
        # a bad key next to a good one changes nothing
        assert _post(url, {"alpha": 0.2, "colormap": "nope"})[0] == 400
    assert (settings.method, settings.colormap, settings.alpha) == ("eigen", "hot", 0.8)


def test_page_has_stream_stats_and_controls():
    with StreamServer(settings=Settings(), token="t") as srv:
        status, html = _get(srv.url + "?token=t")
    page = html.decode()
    assert status == 200
    assert 'id="stream"' in page and 'withToken("stream")' in page and 'withToken("stats")' in page
    assert '"key": "colormap", "help"' in page and '"choices": ["cam", "eigen"' in page
    # every live setting has a control (the window keys' settings and the new ones alike)
    from liveheat.settings.fields import LIVE_FIELDS

    assert all(f'"key": "{k}"' in page for k in LIVE_FIELDS)
    assert 'download = "liveheat.jpg"' in page  # a snapshot download
    # the controls post JSON to a relative URL: same origin, so the CSRF checks let them through
    post = 'fetch(withToken("settings"), {method: "POST", '
    assert post + 'headers: {"Content-Type": "application/json"}' in page


# ---------------------------------------------------------------------- a real browser
def _screenshot(url: str, tmp: Path, name: str) -> np.ndarray:
    shot = tmp / f"{name}.png"
    cmd = [
        "timeout", "60", CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--hide-scrollbars", f"--user-data-dir={tmp / ('profile-' + name)}",
        "--window-size=800,600", "--virtual-time-budget=2000", f"--screenshot={shot}", url,
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0 and shot.exists(), proc.stderr[-2000:]
    image = cv2.imread(str(shot), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def _dump_dom(url: str, tmp: Path) -> str:
    cmd = [
        "timeout", "60", CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={tmp / 'profile-dom'}", "--virtual-time-budget=3000",
        "--dump-dom", url,
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_browser_shows_the_live_stream_changing_over_time(small, tmp_path):
    stats = {"top_class": "hare", "latency_ms_p50": 12.0}
    with StreamServer(token="tok", stats=lambda: stats, settings=Settings()) as srv:
        with Feeder(srv, small):
            url = srv.url + "?token=tok"
            first = _screenshot(url, tmp_path, "a")
            time.sleep(1.2)  # the feeder moves ~30 frames on
            second = _screenshot(url, tmp_path, "b")
            dom = _dump_dom(url, tmp_path)
    shots = [first[:180, :320], second[:180, :320]]  # the <img> sits at the top left
    matches = [_best_match(s, small) for s in shots]
    assert all(r > 0.95 for _, r in matches), matches  # the page shows the stream's pixels
    assert matches[0][0] != matches[1][0]  # ... and they change over time
    assert float(np.abs(shots[0].astype(int) - shots[1].astype(int)).mean()) > 3
    assert float(first[300:, :].std()) < 2  # below the stream: the plain page background
    assert "top hare" in dom and "viewers" in dom  # the HUD line filled from /stats
    assert "<select" in dom  # the controls were built


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_browser_page_works_without_a_token(small, tmp_path):
    """The Host check lets a browser that opened http://127.0.0.1:PORT/ through."""
    with StreamServer(stats=lambda: {"top_class": "hare"}, settings=Settings()) as srv:
        with Feeder(srv, small):
            dom = _dump_dom(srv.url, tmp_path)
    assert "top hare" in dom and "viewers 1/8" in dom


# ---------------------------------------------------------------------- with the real runner
def test_page_controls_reach_the_running_pipeline():
    """POST /settings changes what the Runner draws: alpha 0 + no HUD gives the plain frames."""
    from liveheat.pipeline.runner import Runner
    from liveheat.sources.source import open_source

    raw = _load(None, 132)
    settings = Settings(model="int8", input_size=160, threads=1, max_fps=30, show=False)
    with open_source(CLIP, loop=True) as source, StreamServer(settings=settings) as srv:
        runner = Runner(source, settings, outputs=[srv], progress=False)
        srv.stats = runner.stats.snapshot
        worker = threading.Thread(target=runner.run)
        worker.start()
        try:
            reader = MjpegReader(srv.port)
            assert reader.status()[0] == 200
            before = reader.frames(3)[-1]
            status, body = _post(srv.url + "settings", {"alpha": 0.0, "hud": False})
            assert status == 200 and body["settings"]["alpha"] == 0.0
            after = reader.frames(30)[-1]  # rendered well after the change (queues hold < 20)
            stats = json.loads(_get(srv.url + "stats")[1])
            reader.close()
        finally:
            runner.stop()
            worker.join(10)
    _, r_before = _best_match(before[::4, ::4], [f[::4, ::4] for f in raw])
    _, r_after = _best_match(after[::4, ::4], [f[::4, ::4] for f in raw])
    print(f"\ncorrelation with the plain clip: before {r_before:.3f}, after {r_after:.3f}")
    assert r_after > 0.99 > r_before  # the heatmap is gone from the stream
    assert stats["frames_out"] > 0 and isinstance(stats["top_class"], str)
    assert stats["latency_ms_p50"] is not None and stats["settings"]["alpha"] == 0.0


def test_cli_run_serve_streams_until_sigterm(tmp_path):
    """`liveheat run CLIP --serve 127.0.0.1:0`: URL on stderr, frames on /stream, exit 143."""
    import signal
    import sys

    cmd = [sys.executable, "-m", "liveheat", "run", str(CLIP), "--serve", "127.0.0.1:0",
           "--no-show", "--preset", "edge", "--max-fps", "25", "--token", "tok"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with reaped(proc):
        line = ""
        for _ in range(20):  # notices come first; the URL line within a few lines
            line = proc.stderr.readline()
            if "serving" in line or not line:
                break
        assert "serving http://127.0.0.1:" in line and "token required" in line, line
        port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
        assert _get(f"http://127.0.0.1:{port}/stats")[0] == 401
        reader = MjpegReader(port, "/stream?token=tok")
        assert reader.status()[0] == 200
        got = reader.frames(5)
        reader.close()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert all(g.shape == (720, 1280, 3) for g in got)
    assert proc.returncode == 143, err
    assert "frames in" in out


def test_the_page_sets_a_fixed_scale_and_the_new_live_settings():
    # --norm fixed --vmin --vmax from the stream page (as its controls post them), and the
    # settings of stable maps, each checked by the one rule
    settings = Settings()
    with StreamServer(settings=settings, token="t") as srv:
        status, body = _post(srv.url + "settings?token=t", {"norm": "fixed", "vmin": 0, "vmax": 30})
        assert status == 200, body
        status, body = _post(srv.url + "settings?token=t", {"smoother": "ema", "scale": "frame"})
        assert status == 200, body
        status, body = _post(srv.url + "settings?token=t", {"hud_parts": "labels"})
        assert status == 400 and "hud_parts = 'labels'" in body["error"]
    assert (settings.norm, settings.vmin, settings.vmax) == ("fixed", 0.0, 30.0)
    assert (settings.smoother, settings.scale, settings.hud_parts) == ("ema", "frame", "auto")
