"""Incremental parser of the RFB (VNC) client-to-server stream, used to enforce view-only.

The proxy cannot trust the browser to honour view-only, so it follows the client's byte stream
message by message and drops the ones that change the desktop. It must know every message's
length to stay in step, so anything it cannot size (an unknown message type, a security type
other than None, an RFB version other than 3.7/3.8) is a protocol error and ends the
connection: guessing would let input through.

Messages may arrive split across websocket frames or several to a frame; headers (at most 20
bytes) are buffered, bodies (clipboard text, encodings lists) are streamed without buffering.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

# x11vnc is given a size cap too, but we refuse first so a hostile client cannot make the proxy
# stream gigabytes to it while staying "in step".
MAX_CLIENT_CUT_TEXT = 16 * 1024 * 1024
SECURITY_NONE = 1


class RfbProtocolError(Exception):
    """The client stream is not RFB we can follow; the connection must be closed."""


class _Kind(enum.Enum):
    PASS = "pass"  # harmless: pixel formats, encodings, update requests, fences
    INPUT = "input"  # keyboard, pointer, clipboard: the user's activity
    CONTROL = "control"  # changes the desktop without being input (resize, power)


@dataclass(frozen=True, slots=True)
class _MessageSpec:
    name: str
    header_len: int  # bytes needed before the total length is known (buffered)
    total_len: Callable[[bytes], int]  # from the header; the rest is streamed
    kind: _Kind


def _u16(data: bytes, at: int) -> int:
    return int.from_bytes(data[at : at + 2], "big")


def _cut_text_len(header: bytes) -> int:
    # Extended clipboard (RFB community extension) sends a negative length: |length| bytes.
    length = abs(int.from_bytes(header[4:8], "big", signed=True))
    if length > MAX_CLIENT_CUT_TEXT:
        raise RfbProtocolError(f"ClientCutText of {length} bytes exceeds the proxy's cap")
    return 8 + length


def _qemu_len(header: bytes) -> int:
    if header[1] != 0:  # only sub-type 0, the extended key event, has a known size
        raise RfbProtocolError(f"unsupported QEMU client message sub-type {header[1]}")
    return 12


def _fixed(size: int) -> Callable[[bytes], int]:
    return lambda _header: size


_MESSAGES: dict[int, _MessageSpec] = {
    0: _MessageSpec("SetPixelFormat", 1, _fixed(20), _Kind.PASS),
    2: _MessageSpec("SetEncodings", 4, lambda h: 4 + 4 * _u16(h, 2), _Kind.PASS),
    3: _MessageSpec("FramebufferUpdateRequest", 1, _fixed(10), _Kind.PASS),
    4: _MessageSpec("KeyEvent", 1, _fixed(8), _Kind.INPUT),
    5: _MessageSpec("PointerEvent", 1, _fixed(6), _Kind.INPUT),
    6: _MessageSpec("ClientCutText", 8, _cut_text_len, _Kind.INPUT),
    150: _MessageSpec("EnableContinuousUpdates", 1, _fixed(10), _Kind.PASS),
    248: _MessageSpec("ClientFence", 9, lambda h: 9 + h[8], _Kind.PASS),
    250: _MessageSpec("xvp", 1, _fixed(4), _Kind.CONTROL),
    251: _MessageSpec("SetDesktopSize", 8, lambda h: 8 + 16 * h[6], _Kind.CONTROL),
    255: _MessageSpec("QEMUClientMessage", 2, _qemu_len, _Kind.INPUT),
}


class _State(enum.Enum):
    VERSION = "version"
    SECURITY = "security"
    CLIENT_INIT = "client-init"
    MESSAGES = "messages"


_HANDSHAKE_LEN = {
    _State.VERSION: 12,  # "RFB 003.008\n"
    _State.SECURITY: 1,  # the security type the client picked
    _State.CLIENT_INIT: 1,  # shared-flag
}


@dataclass(frozen=True, slots=True)
class Filtered:
    forward: bytes  # what may go on to the VNC server
    input_seen: bool  # the chunk held (part of) keyboard/pointer/clipboard input
    dropped: int  # messages withheld in this chunk


class ClientStreamFilter:
    """Feed it the client's bytes in any chunking; it returns what may reach the server."""

    def __init__(self, *, view_only: bool) -> None:
        self.view_only = view_only
        self._state = _State.VERSION
        self._header = bytearray()
        self._spec: _MessageSpec | None = None
        self._body_left = 0
        self._body_forwarded = True
        self._failed: RfbProtocolError | None = None
        self.dropped_total = 0  # messages withheld so far (view-only input), for the logs

    def feed(self, data: bytes) -> Filtered:
        if self._failed is not None:
            raise self._failed
        try:
            return self._feed(memoryview(data))
        except RfbProtocolError as exc:
            self._failed = exc
            raise

    def _feed(self, data: memoryview) -> Filtered:
        out = bytearray()
        pos, end = 0, len(data)
        input_seen = False
        dropped = 0
        while True:
            if self._body_left:
                if pos >= end:
                    break
                take = min(self._body_left, end - pos)
                if self._body_forwarded:
                    out += data[pos : pos + take]
                pos += take
                self._body_left -= take
                continue
            wanted = self._header_wanted()
            if len(self._header) >= wanted:
                # A complete header is acted on at once, never held for the next frame:
                # a key press must not wait for the following one.
                kind, forwarded = self._complete_header(out)
                input_seen = input_seen or kind is _Kind.INPUT
                dropped += not forwarded
                continue
            if pos >= end:
                break
            take = min(wanted - len(self._header), end - pos)
            self._header += data[pos : pos + take]
            pos += take
        self.dropped_total += dropped
        return Filtered(bytes(out), input_seen, dropped)

    def _header_wanted(self) -> int:
        if self._state is not _State.MESSAGES:
            return _HANDSHAKE_LEN[self._state]
        if not self._header:
            return 1
        spec = _MESSAGES.get(self._header[0])
        if spec is None:
            raise RfbProtocolError(f"unknown RFB client message type {self._header[0]}")
        self._spec = spec
        return spec.header_len

    def _complete_header(self, out: bytearray) -> tuple[_Kind | None, bool]:
        header = bytes(self._header)
        self._header.clear()
        if self._state is _State.VERSION:
            if header not in (b"RFB 003.007\n", b"RFB 003.008\n"):
                raise RfbProtocolError(f"unsupported RFB version {header[:11]!r}")
            self._state = _State.SECURITY
        elif self._state is _State.SECURITY:
            if header[0] != SECURITY_NONE:
                raise RfbProtocolError(f"security type {header[0]} is not None (1)")
            self._state = _State.CLIENT_INIT
        elif self._state is _State.CLIENT_INIT:
            # Always ask for a shared session: a viewer must never disconnect the others.
            header = b"\x01"
            self._state = _State.MESSAGES
        else:
            assert self._spec is not None
            spec = self._spec
            self._body_left = spec.total_len(header) - len(header)
            self._body_forwarded = not (self.view_only and spec.kind is not _Kind.PASS)
            if self._body_forwarded:
                out += header
            return spec.kind, self._body_forwarded
        out += header
        return None, True
