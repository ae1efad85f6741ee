"""The incremental RFB client-stream filter that enforces view-only."""

from __future__ import annotations

import struct

import pytest

from computer_use.vnc.rfb import MAX_CLIENT_CUT_TEXT, ClientStreamFilter, RfbProtocolError

HANDSHAKE = b"RFB 003.008\n" + b"\x01" + b"\x01"  # version, security None, ClientInit shared

SET_PIXEL_FORMAT = bytes([0, 0, 0, 0]) + bytes(range(16))
SET_ENCODINGS = struct.pack(">BxH3i", 2, 3, 0, 7, -223)
UPDATE_REQUEST = struct.pack(">BBHHHH", 3, 1, 0, 0, 1024, 768)
KEY = struct.pack(">BBxxI", 4, 1, 0x61)
POINTER = struct.pack(">BBHH", 5, 1, 100, 200)
CUT_TEXT = struct.pack(">BxxxI", 6, 5) + b"hello"
EXTENDED_CUT_TEXT = struct.pack(">Bxxxi", 6, -8) + b"\x01\x00\x00\x01abcd"
CONTINUOUS_UPDATES = struct.pack(">BBHHHH", 150, 1, 0, 0, 1024, 768)
FENCE = struct.pack(">BxxxIB", 248, 1 << 31, 3) + b"abc"
XVP = bytes([250, 0, 1, 2])
SET_DESKTOP_SIZE = struct.pack(">BxHHBx", 251, 800, 600, 1) + struct.pack(
    ">IHHHHI", 0, 0, 0, 800, 600, 0
)
QEMU_KEY = struct.pack(">BBHII", 255, 0, 1, 0x61, 30)

HARMLESS = [SET_PIXEL_FORMAT, SET_ENCODINGS, UPDATE_REQUEST, CONTINUOUS_UPDATES, FENCE]
INPUT = [KEY, POINTER, CUT_TEXT, EXTENDED_CUT_TEXT, QEMU_KEY]
CONTROL = [XVP, SET_DESKTOP_SIZE]


def started(*, view_only: bool) -> ClientStreamFilter:
    rfb_filter = ClientStreamFilter(view_only=view_only)
    assert rfb_filter.feed(HANDSHAKE).forward == HANDSHAKE
    return rfb_filter


def feed_in_pieces(rfb_filter: ClientStreamFilter, data: bytes, size: int) -> bytes:
    return b"".join(rfb_filter.feed(data[i : i + size]).forward for i in range(0, len(data), size))


def test_handshake_is_forwarded_unchanged() -> None:
    assert ClientStreamFilter(view_only=True).feed(HANDSHAKE).forward == HANDSHAKE


def test_exclusive_client_init_is_made_shared() -> None:
    # A viewer asking for exclusive access would disconnect everyone else watching.
    out = ClientStreamFilter(view_only=False).feed(b"RFB 003.008\n\x01\x00").forward
    assert out == b"RFB 003.008\n\x01\x01"


def test_rfb_3_7_is_followed() -> None:
    assert ClientStreamFilter(view_only=True).feed(b"RFB 003.007\n\x01\x01").forward


@pytest.mark.parametrize("version", [b"RFB 003.003\n", b"RFB 003.889\n", b"GET / HTTP/1.1\n"])
def test_versions_without_a_followable_handshake_are_refused(version: bytes) -> None:
    with pytest.raises(RfbProtocolError, match="version"):
        ClientStreamFilter(view_only=True).feed(version)


def test_security_types_other_than_none_are_refused() -> None:
    with pytest.raises(RfbProtocolError, match="security type 2"):
        ClientStreamFilter(view_only=True).feed(b"RFB 003.008\n\x02")


@pytest.mark.parametrize("message", HARMLESS)
def test_view_only_passes_harmless_messages(message: bytes) -> None:
    result = started(view_only=True).feed(message)
    assert (result.forward, result.dropped) == (message, 0)


@pytest.mark.parametrize("message", INPUT + CONTROL)
def test_view_only_drops_input_and_control(message: bytes) -> None:
    result = started(view_only=True).feed(message + UPDATE_REQUEST)
    assert (result.forward, result.dropped) == (UPDATE_REQUEST, 1)


@pytest.mark.parametrize("message", INPUT)
def test_interactive_forwards_input_and_flags_it(message: bytes) -> None:
    result = started(view_only=False).feed(message)
    assert (result.forward, result.input_seen) == (message, True)


def test_harmless_messages_are_not_activity() -> None:
    result = started(view_only=False).feed(b"".join(HARMLESS))
    assert result.input_seen is False


@pytest.mark.parametrize("view_only", [True, False])
@pytest.mark.parametrize("piece", [1, 2, 3, 7, 1000])
def test_any_chunking_gives_the_same_result(view_only: bool, piece: int) -> None:
    stream = b"".join(HARMLESS + INPUT + CONTROL + HARMLESS)
    whole = started(view_only=view_only).feed(stream).forward
    assert feed_in_pieces(started(view_only=view_only), stream, piece) == whole
    expected = b"".join(HARMLESS * 2) if view_only else stream
    assert whole == expected


def test_a_complete_message_is_forwarded_at_once() -> None:
    rfb_filter = started(view_only=False)
    assert rfb_filter.feed(KEY[:5]).forward == KEY[:5]  # bodies stream through as they come
    assert rfb_filter.feed(KEY[5:]).forward == KEY[5:]
    assert rfb_filter.feed(POINTER).forward == POINTER


def test_large_clipboard_is_streamed_and_dropped_without_losing_step() -> None:
    text = b"x" * 3_000_000
    message = struct.pack(">BxxxI", 6, len(text)) + text
    assert feed_in_pieces(started(view_only=False), message, 65536) == message
    rfb_filter = started(view_only=True)
    assert feed_in_pieces(rfb_filter, message + UPDATE_REQUEST, 65536) == UPDATE_REQUEST


def test_clipboard_beyond_the_cap_is_refused() -> None:
    with pytest.raises(RfbProtocolError, match="exceeds"):
        started(view_only=False).feed(struct.pack(">BxxxI", 6, MAX_CLIENT_CUT_TEXT + 1))
    with pytest.raises(RfbProtocolError, match="exceeds"):
        started(view_only=True).feed(struct.pack(">Bxxxi", 6, -(2**31)))


@pytest.mark.parametrize("view_only", [True, False])
@pytest.mark.parametrize("message_type", [1, 7, 8, 127, 149, 249, 252, 253, 254])
def test_unknown_message_types_are_refused(view_only: bool, message_type: int) -> None:
    rfb_filter = started(view_only=view_only)
    with pytest.raises(RfbProtocolError, match=f"unknown RFB client message type {message_type}"):
        rfb_filter.feed(UPDATE_REQUEST + bytes([message_type]))
    with pytest.raises(RfbProtocolError):  # and the filter stays failed
        rfb_filter.feed(UPDATE_REQUEST)


def test_unknown_qemu_sub_type_is_refused() -> None:
    with pytest.raises(RfbProtocolError, match="QEMU"):
        started(view_only=False).feed(bytes([255, 1]))


def test_partial_header_is_held_not_forwarded() -> None:
    rfb_filter = started(view_only=True)
    head = SET_ENCODINGS[:3]  # the count of encodings is not known yet
    assert rfb_filter.feed(head).forward == b""
    assert rfb_filter.feed(SET_ENCODINGS[3:]).forward == SET_ENCODINGS
