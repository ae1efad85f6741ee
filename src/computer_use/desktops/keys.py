"""Key names (xdotool syntax, as the model writes them) and characters to X keysyms."""

from __future__ import annotations

import unicodedata
from functools import cache

from Xlib import XK

from computer_use.desktops.errors import DesktopInputError

for _group in (
    "latin2", "latin3", "latin4", "greek", "cyrillic", "hebrew", "arabic", "thai", "katakana",
    "korean", "technical", "special", "publishing", "apl", "xkb", "xf86",
):  # fmt: skip
    XK.load_keysym_group(_group)

UNICODE_KEYSYM_OFFSET = 0x1000000  # X11 maps code point U+XXXX to keysym 0x1000000 + XXXX

# xdotool's own aliases, plus names the model commonly uses that are not X keysym names.
_ALIASES = {
    "ctrl": "Control_L",
    "control": "Control_L",
    "alt": "Alt_L",
    "shift": "Shift_L",
    "super": "Super_L",
    "win": "Super_L",
    "windows": "Super_L",
    "meta": "Meta_L",
    "option": "Alt_L",
    "enter": "Return",
    "esc": "Escape",
    "backspace": "BackSpace",
    "del": "Delete",
    "ins": "Insert",
    "pageup": "Prior",
    "pgup": "Prior",
    "page_up": "Prior",
    "pagedown": "Next",
    "pgdn": "Next",
    "page_down": "Next",
    "arrowup": "Up",
    "arrowdown": "Down",
    "arrowleft": "Left",
    "arrowright": "Right",
    "capslock": "Caps_Lock",
    "printscreen": "Print",
    "spacebar": "space",
}

# Characters typed as keys rather than as text.
_CONTROL_CHARS = {"\n": "Return", "\t": "Tab", "\b": "BackSpace", "\x1b": "Escape"}


@cache
def _names_by_lowercase() -> dict[str, int]:
    table: dict[str, int] = {}
    for attr, value in vars(XK).items():
        if attr.startswith("XK_") and isinstance(value, int):
            table.setdefault(attr[3:].lower(), value)
    return table


def keysym_for_char(char: str) -> int:
    """The keysym that types `char`: Latin-1 keysyms equal the code point, every other
    character has the Unicode keysym 0x1000000 + code point."""
    if char in _CONTROL_CHARS:
        return int(XK.string_to_keysym(_CONTROL_CHARS[char]))
    code = ord(char)
    if code < 0x20 or code == 0x7F or unicodedata.category(char) == "Cc":
        raise DesktopInputError(f"cannot type control character U+{code:04X}")
    if 0x20 <= code <= 0x7E or 0xA0 <= code <= 0xFF:
        return code
    return UNICODE_KEYSYM_OFFSET + code


def keysym_for_name(name: str) -> int:
    if not name:
        raise DesktopInputError("empty key name")
    alias = _ALIASES.get(name.lower())
    if alias is not None:
        return int(XK.string_to_keysym(alias))
    # python-xlib spells X's "XF86AudioMute" as "XF86_AudioMute".
    spelled = "XF86_" + name[4:] if name.startswith("XF86") and name[4:5] != "_" else name
    exact = XK.string_to_keysym(spelled)
    if exact:
        return int(exact)
    if len(name) == 1:
        return keysym_for_char(name)
    folded = _names_by_lowercase().get(name.lower())
    if folded is not None:
        return folded
    if name[:2] in ("U+", "0x") and len(name) > 2:
        try:
            return keysym_for_char(chr(int(name[2:], 16)))
        except (ValueError, OverflowError):
            pass
    raise DesktopInputError(f"unknown key name {name!r} (use X keysym names like Return, ctrl, F5)")


def parse_combo(combo: str) -> list[list[int]]:
    """'ctrl+shift+t Return' -> [[Control_L, Shift_L, t], [Return]]: combos run in order, the
    keys of each combo pressed in order and released in reverse."""
    sequence: list[list[int]] = []
    for part in combo.split():
        names = [n for n in part.split("+") if n]
        if part.endswith("+"):  # "ctrl++" is ctrl and plus, "+" alone the plus key
            names.append("plus")
        sequence.append([keysym_for_name(name) for name in names])
    if not sequence:
        raise DesktopInputError("empty key combination")
    return sequence
