"""Command line: `liveheat demo | run | image | layers | doctor`, one verb per job.

Every problem a user can act on prints one `liveheat: error: ...` line: a bad argument or file
(found before the run) exits 2; a run that ends early (camera disconnected, truncated file)
exits 1 after its summary; Ctrl-C / SIGTERM finalise the output and exit 130 / 143.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from liveheat.errors import LiveheatError

EXIT_USAGE = 2  # a bad argument or file, found before the run
EXIT_RUNTIME = 1  # the run ended early (camera gone, truncated file) or an internal error


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own errors: one line, exit 2
        raise LiveheatError(message)


# ---------------------------------------------------------------- image (overlay core)
def _add_image(sub) -> None:
    p = sub.add_parser("image", help="overlay a heatmap on one image")
    p.add_argument("input", metavar="IN", help="image file (any OpenCV reads: grey, BGRA, 16-bit)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output image file")
    p.add_argument("--heat", metavar="MAP", help=".npy, .npz (one array) or an image read as grey")
    _add_drawing_flags(p)
    _add_model_flags(p)  # used without --heat: the model makes the map
    p.set_defaults(func=_cmd_image)


def _add_drawing_flags(p) -> None:
    p.add_argument("--alpha", type=float, default=0.5, help="heatmap opacity in [0, 1]")
    p.add_argument("--colormap", default="jet", help="OpenCV colormap name (jet, turbo, ...)")
    p.add_argument("--mode", default="color", help="color | gray | mask | transparent")
    p.add_argument("--norm", default="minmax", help="minmax | percentile | sigmoid | fixed | none")
    p.add_argument("--threshold", type=float, default=None, help="hide heat below this (0..1)")
    p.add_argument("--panels", action="store_true", help="original | heatmap | overlay")


def _cmd_image(args) -> int:
    import liveheat

    frame = read_image(args.input)
    if args.heat:
        heat = read_map(args.heat)
    else:
        heat = _image_heat_from_model(args, frame)
    kw = dict(
        alpha=args.alpha,
        colormap=args.colormap,
        mode=args.mode,
        norm=args.norm,
        threshold=args.threshold,
    )
    try:
        out = (
            liveheat.panels(frame, heat, **kw)
            if args.panels
            else liveheat.overlay(frame, heat, **kw)
        )
    except ValueError as e:
        raise LiveheatError(str(e)) from None
    write_image(args.output, out)
    print(f"wrote {args.output} ({out.shape[1]}x{out.shape[0]})")
    return 0


def _image_heat_from_model(args, frame):
    """No --heat: run the model on the image, print its top-5 classes, return the heatmap."""
    from liveheat.model.backbone import Backbone
    from liveheat.model.heatmaps import heatmap

    bb = Backbone(args.model, layer=args.layer, threads=args.threads, input_size=args.input_size)
    feats = bb(frame)
    heat = heatmap(feats, method=args.method, target=args.target)
    top = feats.top(5)
    print(f"{bb.model_path.name}, layer {feats.layer}, method {args.method}:")
    for rank, (idx, name, prob) in enumerate(top, 1):
        print(f"  {rank}. {prob:6.1%}  {idx:4d}  {name}")
    if not top:
        print("  (the model has no class scores)")
    return heat


# ---------------------------------------------------------------- layers (model)
def _add_layers(sub) -> None:
    p = sub.add_parser("layers", help="list the feature maps (4-D tensors) of an ONNX model")
    p.add_argument(
        "model",
        nargs="?",
        default=None,
        metavar="MODEL",
        help="an .onnx file, 'int8', or nothing for the bundled model",
    )
    p.set_defaults(func=_cmd_layers)


def _cmd_layers(args) -> int:
    from liveheat.model.backbone import Backbone, layers_table

    print(layers_table(Backbone(args.model, threads=1)))
    return 0


def read_image(path: str):
    """Read any image OpenCV reads, unchanged (grey, BGR, BGRA, 16-bit); LiveheatError if not."""
    import cv2

    if not os.path.isfile(path):
        raise LiveheatError(f"cannot read image {path!r}: no such file")
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise LiveheatError(f"cannot read image {path!r}: not an image OpenCV can decode")
    return img


def read_map(path: str):
    """A heatmap from .npy, .npz (one array) or an image read as grey; LiveheatError if not."""
    import cv2
    import numpy as np

    if not os.path.isfile(path):
        raise LiveheatError(f"cannot read map {path!r}: no such file")
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext == ".npy":
            heat = np.load(path, allow_pickle=False)
        elif ext == ".npz":
            with np.load(path, allow_pickle=False) as z:
                if len(z.files) != 1:
                    raise LiveheatError(
                        f"map {path!r} holds {len(z.files)} arrays ({', '.join(z.files)}); "
                        "expected exactly one"
                    )
                heat = z[z.files[0]]
        else:
            heat = cv2.imread(path, cv2.IMREAD_GRAYSCALE | cv2.IMREAD_ANYDEPTH)
            if heat is None:
                raise LiveheatError(f"cannot read map {path!r}: not .npy, .npz or an image")
    except (ValueError, OSError, EOFError) as e:
        raise LiveheatError(f"cannot read map {path!r}: {e}") from None
    heat = np.asarray(heat)
    if heat.ndim == 3 and 1 in (heat.shape[0], heat.shape[2]):
        heat = heat.reshape(heat.shape[1:] if heat.shape[0] == 1 else heat.shape[:2])
    if heat.ndim != 2:
        raise LiveheatError(f"map {path!r} has shape {heat.shape}; expected a 2D map (h, w)")
    return heat


def write_image(path: str, image) -> None:
    """Write atomically: a temporary file beside OUT, renamed on success; nothing left on error."""
    import cv2

    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise LiveheatError(f"cannot write {path!r}: folder {folder!r} does not exist")
    base, ext = os.path.splitext(os.path.basename(path))
    if not cv2.haveImageWriter(path):
        raise LiveheatError(
            f"cannot write {path!r}: unknown image extension {ext!r}; "
            "use .png, .jpg, .bmp, .tiff or .webp"
        )
    tmp = os.path.join(folder, f".{base}.{os.getpid()}.tmp{ext}")
    try:
        ok = cv2.imwrite(tmp, image)
        if not ok:
            raise LiveheatError(f"cannot write {path!r}: OpenCV could not write the file")
        os.replace(tmp, path)
    except (cv2.error, OSError) as e:
        raise LiveheatError(f"cannot write {path!r}: {str(e).strip().splitlines()[-1]}") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


# ---------------------------------------------------------------- run / demo (video)
_EXIT_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + signal number, file finalised


def _add_run(sub) -> None:
    p = sub.add_parser(
        "run",
        help="annotate a camera, video file, image folder or stream URL",
        description="Annotate a source live or recorded. Ctrl-C or SIGTERM finalises the output "
        "file (every frame processed so far), prints the summary and exits 130 / 143.",
    )
    p.add_argument("source", metavar="SOURCE", help="camera index (0), video file, folder, URL")
    p.add_argument("-o", "--output", metavar="OUT", help="video file: .mp4 .avi .webm .mkv")
    _add_view_flags(p)
    p.add_argument("--every", type=int, default=1, metavar="N", help="infer on every Nth frame")
    p.add_argument("--max-fps", type=float, default=None, help="read at most this many fps")
    p.add_argument("--max-frames", type=int, default=None, metavar="N", help="stop after N")
    p.add_argument("--dump-maps", metavar="MAPS.npz", help="save the raw heatmaps (npz)")
    _add_edge_flags(p)
    p.set_defaults(func=_cmd_run)


def _add_view_flags(p) -> None:
    """What `run` and `demo` share: window, model, drawing, HUD and smoothing options."""
    p.add_argument("--no-show", action="store_true", help="no window, even with a display")
    _add_model_flags(p)
    _add_drawing_flags(p)
    p.add_argument("--no-hud", action="store_true", help="no text or colour bar on the frames")
    p.add_argument("--smooth", type=float, default=0.0, help="temporal smoothing in [0, 1)")


def _add_model_flags(p) -> None:
    p.add_argument("--model", default=None, help="bundled fp32 (default), 'int8', or an .onnx")
    p.add_argument("--layer", default=None, help="feature map to explain (liveheat layers)")
    p.add_argument("--method", default="cam", help="cam | eigen | mean | max | norm | channel:K")
    p.add_argument("--target", default=None, help="class index or name (default: top-1)")
    p.add_argument("--threads", type=int, default=None, help="onnxruntime threads")
    p.add_argument("--input-size", type=int, default=None, help="inference side (x32)")


def _add_edge_flags(p) -> None:
    g = p.add_argument_group("edge: stream server, preset, config file")
    g.add_argument(
        "--serve",
        metavar="[HOST:]PORT",
        help="serve the stream to browsers "
        "(8080: this machine only; 0.0.0.0:8080: every interface)",
    )
    g.add_argument(
        "--token", help="every request needs ?token= or a Bearer header (default: $LIVEHEAT_TOKEN)"
    )
    g.add_argument("--jpeg-quality", type=int, metavar="Q", help="stream JPEG quality 1-100 (80)")
    g.add_argument("--max-clients", type=int, metavar="N", help="stream viewers at once (8)")
    g.add_argument(
        "--preset",
        choices=["edge"],
        help="edge: int8 model, cores-1 threads, 160 px input, --every 2, smoothing on",
    )
    g.add_argument(
        "--config",
        metavar="FILE.toml",
        help="settings file (keys = setting names: alpha = 0.6, show = false); precedence: "
        "defaults < preset < config < flags",
    )
    # every setting flag defaults to None = "not given", so a preset or config value stays
    # unless the flag is typed (even when typed with the default value)
    p.set_defaults(**{k: None for k in (
        "output", "no_show", "model", "layer", "method", "target", "threads", "input_size",
        "alpha", "colormap", "mode", "norm", "threshold", "panels", "no_hud", "smooth",
        "every", "max_fps", "dump_maps",
    )})  # fmt: skip


def _run_settings(args):
    from liveheat.settings.config import build_settings

    names = ("output", "model", "layer", "method", "target", "threads", "input_size", "alpha",
             "colormap", "mode", "norm", "threshold", "panels", "smooth", "every", "max_fps",
             "dump_maps", "serve", "token", "jpeg_quality", "max_clients")  # fmt: skip
    flags = {k: getattr(args, k, None) for k in names}
    flags["show"] = False if getattr(args, "no_show", None) else None
    flags["hud"] = False if getattr(args, "no_hud", None) else None
    return build_settings(
        flags, config=getattr(args, "config", None), preset=getattr(args, "preset", None)
    )


def _cmd_run(args) -> int:
    if args.max_frames is not None and args.max_frames < 1:
        raise LiveheatError(f"--max-frames must be >= 1, got {args.max_frames}")
    return _run_video(args.source, _run_settings(args), max_frames=args.max_frames)


def _same_file(a, b) -> bool:
    """True when the two paths name one file (compared by inode when both exist)."""
    try:
        if os.path.exists(a) and os.path.exists(b):
            return os.path.samefile(a, b)
    except (OSError, TypeError, ValueError):
        return False
    return os.path.abspath(a) == os.path.abspath(b)


def _check_paths(spec, settings) -> None:
    """Refuse to write over the source (or the video over the maps) before anything opens."""
    for flag, path in (("-o", settings.output), ("--dump-maps", settings.dump_maps)):
        if path and isinstance(spec, str | os.PathLike) and _same_file(spec, path):
            raise LiveheatError(
                f"{flag} {os.fspath(path)!r} is the source itself; writing it would destroy "
                "the input: choose another file name"
            )
    if settings.output and settings.dump_maps and _same_file(settings.output, settings.dump_maps):
        raise LiveheatError(
            f"-o and --dump-maps name the same file {os.fspath(settings.output)!r}; "
            "choose two file names"
        )


def _run_video(spec, settings, *, max_frames=None, extra_outputs=()) -> int:
    """Open the source, check everything, then outputs, run, summary; the exit status."""
    import contextlib

    from liveheat.outputs.display import display_available
    from liveheat.outputs.keys import Controls
    from liveheat.outputs.video import VideoSink
    from liveheat.outputs.window import Window
    from liveheat.pipeline.preflight import make_backbone, preflight
    from liveheat.pipeline.runner import Runner
    from liveheat.sources.source import open_source

    _check_paths(spec, settings)
    show = False
    if settings.show:
        show, reason = display_available()
        if not show:
            if reason.startswith("no display (") and reason.endswith(")"):
                reason = reason[len("no display (") : -1]
            if not (settings.output or settings.dump_maps or settings.serve or extra_outputs):
                raise LiveheatError(
                    f"no display ({reason}) and no output; add -o OUT.mp4 to write a video"
                )
            print(f"liveheat: no display ({reason}); not showing a window", file=sys.stderr)
    elif not (settings.output or settings.dump_maps or settings.serve or extra_outputs):
        raise LiveheatError("--no-show and no output: nothing to do; add -o OUT.mp4")
    # signals first: a Ctrl-C or SIGTERM while the source or an output opens ends the run
    # cleanly (no half-made file) instead of killing the process
    with _stop_on_signals() as stopper, contextlib.ExitStack() as stack:
        source = stack.enter_context(open_source(spec))
        backbone = make_backbone(settings, live=source.live)
        size = preflight(settings, backbone, frame_size=tuple(source.size))
        outputs = list(extra_outputs)
        server = _start_server(settings, stack) if settings.serve else None
        if server is not None:
            outputs.append(server)
        sink = None
        if settings.output:
            fps = source.fps or 25.0
            # live: frames placed by capture time, so the file plays at wall-clock speed
            sink = VideoSink(settings.output, fps=fps, size=size, by_timestamp=source.live)
            stack.enter_context(sink)
            outputs.append(sink)
        if show:
            window = Window(settings, controls=Controls(settings))
            outputs.append(stack.enter_context(window))
        runner = Runner(source, settings, outputs=outputs, backbone=backbone, max_frames=max_frames)
        if server is not None:
            server.stats = runner.stats.snapshot  # /stats shows the run's figures
        stopper.attach(runner)  # stops it at once if a signal came while opening
        failed = False
        try:
            stats = runner.run()
        except LiveheatError:  # a stage failed mid-run; stats.error says why
            stats, failed = runner.stats, True
        try:
            stack.close()  # finalise the file before the summary names it
        except LiveheatError as e:  # the finished file could not be moved into place
            stats.error, failed = stats.error or str(e), True
        written = settings.output if sink is not None and sink.frames_written else None
        if written is not None and not os.path.exists(written):
            written = None
        note = None
        if written is not None and sink.by_timestamp and (sink.repeated or sink.skipped):
            note = (
                f"{sink.frames_written} frames in the file at {sink.fps:g} fps to keep "
                f"wall-clock time ({sink.repeated} repeated, {sink.skipped} left out)"
            )
        print(stats.summary(written, note=note))
        if stopper.caught:
            return _EXIT_SIGNAL.get(stopper.caught[0], EXIT_RUNTIME)
        error = stats.snapshot()["error"]
        if error:
            if not failed:  # the source ended early
                error += f"; the {stats.frames_out} frames before it were processed"
            print(f"liveheat: error: {error}", file=sys.stderr)
            return EXIT_RUNTIME
    return 0


def _start_server(settings, stack):
    """Start the stream server (closed with the stack) and say where it is."""
    from liveheat.outputs.stream.server import server_from_settings

    server = stack.enter_context(server_from_settings(settings))
    note = " (token required: add ?token=...)" if server.token else ""
    print(f"liveheat: serving {server.url}{note}", file=sys.stderr)
    if server.host not in ("127.0.0.1", "::1", "localhost") and not server.token:
        print(
            f"liveheat: warning: serving on {server.host} without a token; anyone who can "
            "reach this machine can watch: set --token or LIVEHEAT_TOKEN",
            file=sys.stderr,
        )
    return server


class _stop_on_signals:  # noqa: N801 - used as a context manager
    """SIGINT/SIGTERM stop the run cleanly (a second Ctrl-C aborts at once). A signal that
    comes before `attach(runner)` (while opening) stops the runner as it is attached."""

    def __init__(self) -> None:
        self.runner = None
        self.caught: list[int] = []
        self.old: dict = {}

    def _handler(self, signum, _frame) -> None:
        if self.caught and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.caught.append(signum)
        if self.runner is not None:
            self.runner.stop()

    def attach(self, runner) -> None:
        self.runner = runner
        if self.caught:
            runner.stop()

    def __enter__(self) -> _stop_on_signals:
        import threading

        if threading.current_thread() is threading.main_thread():
            for s in _EXIT_SIGNAL:
                self.old[s] = signal.signal(s, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self.old.items():
            signal.signal(s, h)


def _add_demo(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="annotate the bundled clip with the bundled model",
        description="Annotate the bundled Big Buck Bunny clip (c) Blender Foundation, CC-BY 3.0, "
        "show it when a display exists, write liveheat-demo.mp4 and print a summary.",
    )
    p.add_argument("-o", "--output", default="liveheat-demo.mp4", metavar="OUT")
    _add_view_flags(p)  # run's model and drawing options, to try them on the bundled clip
    p.set_defaults(func=_cmd_demo)


def _cmd_demo(args) -> int:
    from pathlib import Path

    clip = Path(__file__).resolve().parent / "data" / "bigbuckbunny.mp4"
    return _run_video(str(clip), _run_settings(args))


# ---------------------------------------------------------------- doctor
def _add_doctor(sub) -> None:
    p = sub.add_parser(
        "doctor",
        help="report versions, codecs, cameras, display and models (for bug reports)",
        description="Print what this machine offers liveheat: OpenCV (GUI backend, writable "
        "codecs), onnxruntime providers, cameras, display, bundled models with checksums.",
    )
    p.add_argument("--no-cameras", action="store_true", help="skip probing camera indices 0-3")
    p.set_defaults(func=_cmd_doctor)


def _cmd_doctor(args) -> int:
    from liveheat.doctor import run_doctor

    return run_doctor(cameras=not args.no_cameras)


# ---------------------------------------------------------------- entry point
def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="liveheat", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    _add_image(sub)
    _add_layers(sub)
    _add_run(sub)
    _add_demo(sub)
    _add_doctor(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    # FFmpeg's own log lines ("Connection refused", "overread") would break the one-line error
    # rule; set OPENCV_FFMPEG_LOGLEVEL yourself (e.g. 32) to see them again
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    from liveheat._common.blas import claim_process

    claim_process()  # this process is liveheat's: one BLAS thread (see liveheat/_common/blas.py)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return EXIT_USAGE
        return int(args.func(args) or 0)
    except LiveheatError as e:
        print(f"liveheat: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("liveheat: interrupted", file=sys.stderr)
        return 130
    except ImportError as e:  # OpenCV, numpy or onnxruntime missing or broken
        msg = " ".join(str(e).split()) or type(e).__name__
        print(
            f"liveheat: error: a library does not load: {msg}; 'liveheat doctor' shows which",
            file=sys.stderr,
        )
        return EXIT_USAGE
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except Exception as e:  # a bug: still one line, unless asked for the traceback
        if os.environ.get("LIVEHEAT_DEBUG"):
            raise
        msg = " ".join(str(e).split()) or "(no message)"
        print(
            f"liveheat: error: internal error: {type(e).__name__}: {msg} "
            "(set LIVEHEAT_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return EXIT_RUNTIME


if __name__ == "__main__":  # pragma: no cover
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    raise SystemExit(main())
