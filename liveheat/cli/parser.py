"""liveheat's argparse: one-line errors (exit 2) with a hint for a mistyped flag or command."""

from __future__ import annotations

import argparse
import sys

from liveheat.errors import LiveheatError

# flags of peer tools (yolo, timm, OpenCV samples) a user may type, and liveheat's word for them
_PEER_FLAGS = {
    "--imgsz": "--input-size", "--img-size": "--input-size", "--size": "--input-size",
    "--weights": "--model", "--source": "SOURCE (the first argument)", "--save": "-o",
    "--out": "-o", "--cmap": "--colormap", "--opacity": "--alpha", "--cam": "--method",
}  # fmt: skip


class _Parser(argparse.ArgumentParser):
    """argparse with liveheat's errors: one line, exit 2, and a hint for a mistyped flag or
    command (did you mean ...?)."""

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        self._argv = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def error(self, message: str):  # argparse's own errors: one line, exit 2
        raise LiveheatError(message + self._hint(message))

    def _verbs(self) -> dict[str, argparse.ArgumentParser]:
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                return dict(action.choices)
        return {}

    def _hint(self, message: str) -> str:
        from liveheat._common.text import did_you_mean

        verbs = self._verbs()
        if message.startswith("argument COMMAND: invalid choice:"):
            word = message.split("'")[1] if "'" in message else ""
            return did_you_mean(word, verbs, before="; ")
        if not message.startswith("unrecognized arguments:"):
            return ""
        argv = getattr(self, "_argv", [])
        verb = next((a for a in argv if a in verbs), None)
        parser = verbs.get(verb, self)
        known = [o for a in parser._actions for o in a.option_strings if o.startswith("--")]
        hints = []
        for word in message.split(":", 1)[1].split():
            flag = word.split("=", 1)[0]
            if not flag.startswith("--"):
                continue
            if "--no-" + flag[2:] in known:
                hints.append(f"{flag} is on by default (--no-{flag[2:]} turns it off)")
            elif flag in _PEER_FLAGS:
                hints.append(f"{flag} is {_PEER_FLAGS[flag]} here")
            else:
                close = did_you_mean(flag, known)
                if close:
                    hints.append(f"{flag}: {close}")
        if not hints:
            return f"; `liveheat {verb} --help` lists the flags" if verb else ""
        return "; " + "; ".join(hints)
