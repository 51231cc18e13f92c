"""Command line: `liveheat demo | run | image | layers | doctor`, one verb per job.

Every problem a user can act on prints one `liveheat: error: ...` line and exits 2.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from liveheat.errors import LiveheatError

EXIT_USAGE = 2


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
    p.set_defaults(func=_cmd_image)


def _add_drawing_flags(p) -> None:
    p.add_argument("--alpha", type=float, default=0.5, help="heatmap opacity in [0, 1]")
    p.add_argument("--colormap", default="jet", help="OpenCV colormap name (jet, turbo, ...)")
    p.add_argument("--mode", default="color", help="color | gray | mask | transparent")
    p.add_argument("--norm", default="minmax", help="minmax | percentile | sigmoid | fixed | none")
    p.add_argument("--threshold", type=float, default=None, help="hide heat below this (0..1)")
    p.add_argument("--panels", action="store_true", help="original | heatmap | overlay")


def _cmd_image(args) -> int:
    from liveheat.image_cmd import run_image

    return run_image(args)


# ---------------------------------------------------------------- entry point
def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="liveheat", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    _add_image(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
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
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == "__main__":  # pragma: no cover
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    raise SystemExit(main())
