"""`liveheat batch`: its flags and its command (the work is `liveheat.pipeline.batch`)."""

from __future__ import annotations

import sys

from liveheat.cli import (
    _EXIT_SIGNAL,
    EXIT_RUNTIME,
    _add_drawing_flags,
    _add_file_flags,
    _add_model_flags,
    _run_settings,
    _stop_on_signals,
)
from liveheat.errors import LiveheatError


def add_batch(p) -> None:
    """The flags of `liveheat batch`: run's model, drawing and video flags, and the batch's."""
    from liveheat.settings.flags import add_setting_flags

    p.add_argument(
        "inputs", nargs="+", metavar="INPUT",
        help="video or image files, folders (recursive), globs ('clips/**/*.mp4'), @list.txt",
    )  # fmt: skip
    p.add_argument(
        "-o", "--outdir", required=True, metavar="OUTDIR",
        help="output folder: the inputs' folder tree is mirrored there, with manifest.jsonl",
    )  # fmt: skip
    g = p.add_argument_group("batch")
    g.add_argument(
        "--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
        help="run on Ray (pip install 'liveheat[ray]'): alone a local Ray, 'auto' the cluster "
        "in RAY_ADDRESS, ray://HOST:10001 that cluster (OUTDIR must be shared by its nodes)",
    )  # fmt: skip
    g.add_argument(
        "--workers", type=int, default=None, metavar="N",
        help="processes of the local pool (default: the usable cores)",
    )  # fmt: skip
    g.add_argument("--force", action="store_true", help="redo files already done")
    g.add_argument(
        "--dump-maps", dest="batch_maps", action="store_true",
        help="also write each file's maps beside it, OUTPUT.maps.npz (see --dump-maps of run)",
    )  # fmt: skip
    _add_file_flags(p, live=False)
    _add_model_flags(p)
    _add_drawing_flags(p)
    add_setting_flags(p, ["hud", "hud_parts", "smooth", "smoother", "scale", "every"])
    g = p.add_argument_group("preset, config file")
    add_setting_flags(g, ["preset"])
    g.add_argument("--config", metavar="FILE.toml", help="settings file, as for `run`")
    p.set_defaults(func=cmd_batch)


def cmd_batch(args) -> int:
    """Run the batch; 0 when every file succeeded, 1 when any failed, 130 on Ctrl-C."""
    from liveheat.pipeline.batch import annotate_batch

    if args.workers is not None and args.workers < 1:
        raise LiveheatError(f"--workers must be >= 1, got {args.workers}")
    settings = _run_settings(args)
    settings.update(dump_maps="yes" if args.batch_maps else None)
    with _stop_on_signals() as stopper:
        stopper.raise_on_signal = True  # the pool stops its workers and cleans up
        try:
            report = annotate_batch(
                args.inputs, args.outdir, settings=settings, ray=args.ray,
                workers=args.workers, force=args.force,
            )  # fmt: skip
        except KeyboardInterrupt:
            print("liveheat: interrupted; finished files are kept, run again to go on",
                  file=sys.stderr)  # fmt: skip
            return _EXIT_SIGNAL.get(stopper.caught[0], 130) if stopper.caught else 130
    print(report.summary())
    if report.failed:
        print(f"liveheat: error: {report.failed} of {len(report.records)} files failed",
              file=sys.stderr)  # fmt: skip
        return EXIT_RUNTIME
    return 0
