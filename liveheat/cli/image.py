"""`liveheat image`: one image, a heatmap from a file or the model, one annotated image."""

from __future__ import annotations

from liveheat._common.imagefiles import check_image_output, read_image, read_map, write_image
from liveheat.cli import _add_drawing_flags, _add_model_flags
from liveheat.errors import LiveheatError
from liveheat.settings.rules import check_fixed_scale


def add_image(p) -> None:
    """The flags of `liveheat image`."""
    p.add_argument("input", metavar="IN", help="image file (any OpenCV reads: grey, BGRA, 16-bit)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output image file")
    p.add_argument("--heat", metavar="MAP", help=".npy, .npz (one array) or an image read as grey")
    p.add_argument(
        "--index", type=int, default=None, metavar="I",
        help="with --heat MAPS.npz from --dump-maps: draw map I (default: the only one)",
    )  # fmt: skip
    # no preset or config to layer here: the flags hold the settings' own defaults
    _add_drawing_flags(p, defaults=True)
    _add_model_flags(p, defaults=True)  # used without --heat: the model makes the map
    p.set_defaults(func=cmd_image)


def cmd_image(args) -> int:
    """Overlay a heatmap (from --heat, or the model) on one image and write it."""
    import liveheat

    check_image_output(args.output, source=args.input)  # before any reading or model run
    frame = read_image(args.input)
    if args.heat:
        heat = read_map(args.heat, index=args.index)
    else:
        heat = _image_heat_from_model(args, frame)
    check_fixed_scale(args.norm, args.vmin, args.vmax)
    kw = dict(
        alpha=args.alpha,
        colormap=args.colormap,
        mode=args.mode,
        norm=args.norm,
        vmin=args.vmin,
        vmax=args.vmax,
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
    from liveheat.model.devices import providers_for
    from liveheat.model.heatmaps import heatmap

    bb = Backbone(
        args.model,
        layer=args.layer,
        threads=args.threads,
        input_size=args.input_size,
        providers=providers_for(args.device),
    )
    feats = bb(frame)
    heat = heatmap(feats, method=args.method, target=args.target)
    top = feats.top(5)
    print(f"{bb.model_path.name}, layer {feats.layer}, method {args.method}:")
    for rank, (idx, name, prob) in enumerate(top, 1):
        print(f"  {rank}. {prob:6.1%}  {idx:4d}  {name}")
    if not top:
        print("  (the model has no class scores)")
    return heat
