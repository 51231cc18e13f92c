"""Command line: `liveheat demo | run | batch | image | layers | doctor`, one verb per job.

Every problem a user can act on prints one `liveheat: error: ...` line: a bad argument or file
(found before the run) exits 2; a run that ends early (camera disconnected, truncated file)
exits 1 after its summary; Ctrl-C / SIGTERM / SIGHUP finalise the output and exit 130 / 143 / 129.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from liveheat.cli.parser import _Parser
from liveheat.errors import LiveheatError

EXIT_USAGE = 2  # a bad argument or file, found before the run
EXIT_RUNTIME = 1  # the run ended early (camera gone, truncated file) or an internal error


# ---------------------------------------------------------------- drawing flags, image
def _add_drawing_flags(p, *, defaults: bool = False) -> None:
    from liveheat.settings.flags import add_setting_flags

    names = ("alpha", "colormap", "mode", "norm", "vmin", "vmax", "threshold", "panels")
    add_setting_flags(p, names, defaults=defaults)


def _add_image(p) -> None:
    from liveheat.cli.image import add_image

    add_image(p)


# ---------------------------------------------------------------- layers (model)
def _add_layers(p) -> None:
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


# ---------------------------------------------------------------- run / demo (video)
# 128 + signal number, file finalised; SIGHUP: the terminal or SSH session closed
_EXIT_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}
if hasattr(signal, "SIGHUP"):  # not on Windows
    _EXIT_SIGNAL[signal.SIGHUP] = 129


def _add_run(p) -> None:
    from liveheat.settings.flags import add_setting_flags

    p.add_argument("source", metavar="SOURCE", help="camera index (0), video file, folder, URL")
    # every setting flag defaults to None = "not given", so a preset or config value stays
    # unless the flag is typed (even when typed with the default value)
    add_setting_flags(p, ["output"])
    _add_file_flags(p, live=True)
    _add_view_flags(p)
    add_setting_flags(p, ["every", "max_fps", "open_timeout"])
    g = p.add_argument_group("camera (asked through OpenCV; what it grants instead is said)")
    add_setting_flags(g, ["cam_size", "cam_fps", "cam_fourcc", "cam_backend"])
    p.add_argument("--max-frames", type=int, default=None, metavar="N", help="stop after N")
    add_setting_flags(p, ["dump_maps"])
    _add_edge_flags(p)
    p.set_defaults(func=_cmd_run)


def _add_file_flags(p, *, live: bool) -> None:
    """The video file's codec, quality, sound (and, for live sources, segments)."""
    from liveheat.settings.flags import add_setting_flags

    g = p.add_argument_group("video file (see `liveheat doctor` for what each extension uses)")
    add_setting_flags(g, ["codec", "crf", "encoder_preset", "audio"] + (["segment"] * live))


def _add_view_flags(p) -> None:
    """What `run` and `demo` share: window, model, drawing, HUD and smoothing options."""
    from liveheat.settings.flags import add_setting_flags

    add_setting_flags(p, ["show"])
    _add_model_flags(p)
    _add_drawing_flags(p)
    add_setting_flags(p, ["hud", "hud_parts", "smooth", "smoother", "scale"])


def _add_model_flags(p, *, defaults: bool = False) -> None:
    from liveheat.settings.flags import add_setting_flags

    names = ("model", "layer", "method", "target", "device", "threads", "input_size")
    add_setting_flags(p, names, defaults=defaults)


def _add_edge_flags(p) -> None:
    from liveheat.settings.flags import add_setting_flags

    g = p.add_argument_group("edge: stream server, preset, config file")
    add_setting_flags(g, ["serve", "token", "jpeg_quality", "max_clients", "preset"])
    g.add_argument(
        "--config",
        metavar="FILE.toml",
        help="settings file (keys = setting names: alpha = 0.6, show = false); precedence: "
        "defaults < preset < config < flags",
    )


def _run_settings(args):
    from liveheat.settings.config import build_settings
    from liveheat.settings.flags import given_settings

    return build_settings(
        given_settings(args),
        config=getattr(args, "config", None),
        preset=getattr(args, "preset", None),
    )


def _cmd_run(args) -> int:
    if args.max_frames is not None and args.max_frames < 1:
        raise LiveheatError(f"--max-frames must be >= 1, got {args.max_frames}")
    return _run_video(args.source, _run_settings(args), max_frames=args.max_frames)


def _check_paths(spec, settings) -> None:
    """Refuse to write over the source (or the video over the maps) before anything opens."""
    from liveheat._common.files import same_file

    for flag, path in (("-o", settings.output), ("--dump-maps", settings.dump_maps)):
        if path and isinstance(spec, str | os.PathLike) and same_file(spec, path):
            raise LiveheatError(
                f"{flag} {os.fspath(path)!r} is the source itself; writing it would destroy "
                "the input: choose another file name"
            )
    if settings.output and settings.dump_maps and same_file(settings.output, settings.dump_maps):
        raise LiveheatError(
            f"-o and --dump-maps name the same file {os.fspath(settings.output)!r}; "
            "choose two file names"
        )


def _run_video(spec, settings, *, max_frames=None, extra_outputs=()) -> int:
    """Open the source, check everything, then outputs, run, summary; the exit status."""
    import contextlib

    from liveheat.outputs.display import display_available
    from liveheat.outputs.maps import MapsFile
    from liveheat.outputs.stream.server import StreamServer
    from liveheat.outputs.video import VideoSink
    from liveheat.pipeline.preflight import make_backbone, preflight
    from liveheat.pipeline.runner import Runner
    from liveheat.pipeline.video import outputs_from_settings, source_options
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
        source = stack.enter_context(open_source(spec, **source_options(settings)))
        backbone = make_backbone(settings, live=source.live)
        size = preflight(settings, backbone, frame_size=tuple(source.size))
        outputs = list(extra_outputs)
        outputs += outputs_from_settings(
            settings, stack, size=size, fps=source.fps, live=source.live, show=show, source=source
        )
        server = next((o for o in outputs if isinstance(o, StreamServer)), None)
        sink = next((o for o in outputs if isinstance(o, VideoSink)), None)
        maps = next((o for o in outputs if isinstance(o, MapsFile)), None)
        if server is not None:
            _say_serving(server)
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
        if maps is not None and os.path.exists(maps.path):
            stats.maps_path, stats.maps_count = maps.path, maps.count
        # the files finished (segments: one per start time); none after a write error
        files = [os.fspath(f) for f in sink.files if os.path.exists(f)] if sink else []
        written = ", ".join(files) if files and not sink.failed else None
        note = source.note  # damaged frames of a video file, skipped and counted
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


def _say_serving(server) -> None:
    """Say where the stream is (and warn when it is open to others without a token)."""
    note = " (token required: add ?token=...)" if server.token else ""
    print(f"liveheat: serving {server.url}{note}", file=sys.stderr)
    if not _loopback(server.host) and not server.token:
        print(
            f"liveheat: warning: serving on {server.host} without a token; anyone who can "
            "reach this machine can watch: set --token or LIVEHEAT_TOKEN",
            file=sys.stderr,
        )


def _loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and localhost reach only this machine (127.0.0.2 too)."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class _stop_on_signals:  # noqa: N801 - used as a context manager
    """SIGINT/SIGTERM/SIGHUP stop the run cleanly (a second Ctrl-C aborts at once). A signal that
    comes before `attach(runner)` (while opening) stops the runner as it is attached."""

    def __init__(self) -> None:
        self.runner = None
        self.caught: list[int] = []
        self.old: dict = {}
        self.raise_on_signal = False  # batch: every signal interrupts (its pool cleans up)

    def _handler(self, signum, _frame) -> None:
        if (self.caught and signum == signal.SIGINT) or self.raise_on_signal:
            self.caught.append(signum)
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


def _add_demo(p) -> None:
    from liveheat.settings.flags import add_setting_flags

    add_setting_flags(p, ["output"], output={"default": "liveheat-demo.mp4"})
    _add_file_flags(p, live=False)
    _add_view_flags(p)  # run's model and drawing options, to try them on the bundled clip
    p.set_defaults(func=_cmd_demo)


def _cmd_demo(args) -> int:
    from liveheat._common.files import bundled_clip

    return _run_video(bundled_clip(), _run_settings(args))


# ---------------------------------------------------------------- batch (many files)
def _add_batch(p) -> None:
    from liveheat.cli.batch import add_batch

    add_batch(p)


# ---------------------------------------------------------------- doctor
def _add_doctor(p) -> None:
    p.add_argument("--no-cameras", action="store_true", help="skip probing camera indices 0-3")
    p.set_defaults(func=_cmd_doctor)


def _cmd_doctor(args) -> int:
    from liveheat.doctor import run_doctor

    return run_doctor(cameras=not args.no_cameras)


# ---------------------------------------------------------------- entry point
def build_parser() -> argparse.ArgumentParser:
    from liveheat import __version__

    parser = _Parser(
        prog="liveheat",
        description="See what a CNN looks at: heatmaps of an ONNX model's feature maps blended "
        "onto camera, video and image frames.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"liveheat {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (summary, description, add) in _VERBS.items():
        add(sub.add_parser(name, help=summary, description=description or summary))
    return parser


_EXAMPLES = """examples:
  liveheat demo                                    the bundled clip, model and defaults
  liveheat run clip.mp4 -o out.mp4 --method eigen  annotate a video file (sound kept)
  liveheat run 0 --serve 8080                      a camera, in a window and a browser
  liveheat image cat.png -o cam.png --panels       one image, and its top-5 classes
  liveheat batch videos/ photos/ -o annotated/     many files, resumable (--ray: a cluster)
  liveheat doctor                                  what this machine offers (for bug reports)

`liveheat COMMAND --help` lists a command's flags with their defaults."""

#: the verbs, one job each: (one-line help, description, the function that adds its flags)
_VERBS = {
    "demo": (
        "annotate the bundled clip with the bundled model",
        "Annotate the bundled Big Buck Bunny clip (c) Blender Foundation, CC-BY 3.0, show it "
        "when a display exists, write liveheat-demo.mp4 and print a summary.",
        _add_demo,
    ),
    "run": (
        "annotate a camera, video file, image folder or stream URL",
        "Annotate a source live or recorded. Ctrl-C, SIGTERM or SIGHUP finalises the output "
        "file (every frame processed so far), prints the summary and exits 130 / 143 / 129.",
        _add_run,
    ),
    "batch": (
        "annotate folders of videos and images, here or on a Ray cluster, resumably",
        "Annotate many videos and images into OUTDIR (each as `run` would, images at their "
        "own size). A manifest (OUTDIR/manifest.jsonl) records every file; a second run skips "
        "what is done. Exit 0 when all succeed, 1 when any failed, 130 on Ctrl-C.",
        _add_batch,
    ),
    "image": ("overlay a heatmap on one image", "", _add_image),
    "layers": ("list the feature maps (4-D tensors) of an ONNX model", "", _add_layers),
    "doctor": (
        "report versions, codecs, cameras, display and models (for bug reports)",
        "Print what this machine offers liveheat: OpenCV (GUI backend), PyAV and FFmpeg "
        "(encoders, what each extension writes), onnxruntime providers, cameras, display, "
        "bundled models with checksums. Exits 1 when a bundled model is missing or corrupt.",
        _add_doctor,
    ),
}


def main(argv: list[str] | None = None) -> int:
    """The command line; the exit status. Run as a program (`argv` None), a capture thread
    still stuck in FFmpeg (a stream that accepted and never answered) must not be torn down
    by the interpreter's exit: that aborts the process ("terminate called without an active
    exception", status 134). The process then ends at once, with its status."""
    code = _main(argv)
    if argv is None and _stuck_open_threads():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _stuck_open_threads() -> bool:
    import threading

    return any(t.name.startswith("liveheat-open-") and t.is_alive() for t in threading.enumerate())


def _main(argv: list[str] | None) -> int:
    # FFmpeg's own log lines ("Connection refused", "overread") would break the one-line error
    # rule; set OPENCV_FFMPEG_LOGLEVEL yourself (e.g. 32) to see them again
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    if not os.environ.get("LIVEHEAT_DEBUG"):  # OpenCV's own "[ WARN:0@...]" lines likewise
        os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")
    from liveheat._common.blas import claim_process

    claim_process()  # this process is liveheat's: one BLAS thread (see liveheat/_common/blas.py)
    parser = build_parser()
    if "_ARGCOMPLETE" in os.environ:  # the shell asks for completions (README: shell completion)
        import argcomplete

        argcomplete.autocomplete(parser)  # prints them and exits
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
