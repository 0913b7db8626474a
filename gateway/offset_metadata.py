"""Commit metadata naming the offsets settled above the committed watermark, so a restart skips them.

The text rides in Kafka's OffsetCommit metadata (like Confluent's Parallel Consumer). Layout:

    gw1<kind>:<base64url(payload + crc32)>       kind r = run lengths, b = bitmap

    payload r: varint base, then varint run lengths alternating: not settled, settled, not settled, ...
    payload b: varint base, varint bit count, then bits (least significant first; 1 = settled)

`base` is the committed offset it belongs to: a reader ignores metadata whose base is not the committed offset
(another tool moved the offset), text without the prefix (an older version, another tool), or a checksum that does
not match (corruption). Ignoring is always safe: the records above the watermark are then sent again. The encoder
picks the smaller kind and stays within a byte budget (Kafka's `offset.metadata.max.bytes` is 4096 by default); when
the whole set does not fit it describes only a leading part of it, which is still true, and when nothing fits it
returns "" (a plain watermark commit).
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

PREFIX = "gw1"
DEFAULT_MAX_BYTES = 4000
"""Below Kafka's default offset.metadata.max.bytes (4096), with room to spare."""
MAX_READ_BYTES = 32767
"""The longest string Kafka's protocol carries; anything longer is not ours."""

Range = tuple[int, int]
"""A half-open range of offsets [start, end)."""


class UnreadableMetadata(ValueError):
    """The metadata is not ours or is damaged; the reason is one of: foreign, corrupt, stale."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SettledAbove:
    """Offsets settled above a committed watermark `base`, as sorted, disjoint, non-empty ranges."""

    base: int
    ranges: tuple[Range, ...]

    @property
    def count(self) -> int:
        """How many offsets the ranges hold."""
        return sum(end - start for start, end in self.ranges)


def encode(base: int, settled: Iterable[Range], max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """Metadata for a commit at `base` naming the settled ranges (sorted, disjoint, all above `base`).

    Returns "" when no settled offset fits in `max_bytes`.
    """
    overhead = len(PREFIX) + 2 + 8  # kind, ':', and the base64 of the 4-byte checksum (with slack)
    room = (max_bytes - overhead) * 3 // 4  # payload bytes that fit once base64-encoded
    if room <= 0:
        return ""
    head = _varint(base)
    runs, rle_runs, run_claimed = _runs(base, settled, room - len(head))
    bits, bit_claimed = _bitmap(runs, room - len(head))
    candidates = []
    if run_claimed:
        candidates.append((run_claimed, "r", head + _varints(runs[:rle_runs])))
    if bit_claimed:
        candidates.append((bit_claimed, "b", head + bits))
    if not candidates:
        return ""
    # The one that claims the most offsets (a truncated one claims fewer), then the shorter one.
    _, kind, payload = min(candidates, key=lambda c: (-c[0], len(c[2])))
    return _wrap(kind, payload, max_bytes)


def decode(metadata: str, committed: int) -> SettledAbove:
    """The settled offsets that `metadata` names above `committed`; raises UnreadableMetadata when not ours."""
    if not metadata.startswith(PREFIX) or len(metadata) > MAX_READ_BYTES or metadata[4:5] != ":":
        raise UnreadableMetadata("foreign")
    kind = metadata[3]
    try:
        raw = base64.urlsafe_b64decode(metadata[5:] + "=" * (-len(metadata[5:]) % 4))
    except (binascii.Error, ValueError):
        raise UnreadableMetadata("corrupt") from None
    payload, checksum = raw[:-4], raw[-4:]
    if len(raw) < 5 or zlib.crc32(kind.encode() + payload).to_bytes(4, "big") != checksum:
        raise UnreadableMetadata("corrupt")
    values = _read_varints(payload) if kind == "r" else None
    reader = _Reader(payload)
    base = reader.varint()
    if base != committed:
        raise UnreadableMetadata("stale")
    if kind == "r":
        assert values is not None
        return SettledAbove(base, tuple(_ranges_from_runs(base, values[1:])))
    if kind == "b":
        nbits = reader.varint()
        bits = reader.rest()
        if nbits > len(bits) * 8:
            raise UnreadableMetadata("corrupt")
        return SettledAbove(base, tuple(_ranges_from_bits(base, int.from_bytes(bits, "little"), nbits)))
    raise UnreadableMetadata("foreign")


# ---- encoding ----------------------------------------------------------------------------------------------------


def _runs(base: int, settled: Iterable[Range], room: int) -> tuple[list[int], int, int]:
    """Alternating run lengths (not settled, settled, ...) from `base`, read only as far as either encoding can
    reach in `room` bytes; how many of them fit run-length encoded, and how many offsets those claim."""
    runs: list[int] = []
    used = claimed = fitting = 0
    cursor = base
    bitmap_reach = base + room * 8
    for start, end in settled:
        if start < cursor or end <= start:
            raise ValueError(f"settled ranges must be sorted, disjoint and above {base}: [{start}, {end})")
        gap, run = start - cursor, end - start
        fits = fitting == len(runs)
        if fits:
            size = _varint_size(gap) + _varint_size(run)
            fits = used + size <= room
        if not fits and start >= bitmap_reach:
            break
        runs += (gap, run)
        if fits:
            used += size
            claimed += end - start
            fitting = len(runs)
        cursor = end
    return runs, fitting, claimed


def _bitmap(runs: list[int], room: int) -> tuple[bytes, int]:
    """A bitmap of the runs' settled offsets as bytes (bit count first), within `room` bytes; offsets it claims."""
    span = sum(runs)
    if not span or room <= 0:
        return b"", 0
    nbits = min(span, max(0, room - len(_varint(span))) * 8)
    # One character per offset, most significant first, then one int(): linear, where OR-ing a shifted int per run
    # would copy the whole bitmap for each run.
    chars = bytearray(b"0") * nbits
    claimed = position = 0
    for index, length in enumerate(runs):
        if position >= nbits:
            break
        if index % 2 == 1:  # a settled run
            end = min(position + length, nbits)
            chars[nbits - end : nbits - position] = b"1" * (end - position)
            claimed += end - position
        position += length
    if not claimed:
        return b"", 0
    bits = int(chars, 2)
    nbits = bits.bit_length()  # trailing unsettled bits say nothing
    return _varint(nbits) + bits.to_bytes((nbits + 7) // 8, "little"), claimed


def _wrap(kind: str, payload: bytes, max_bytes: int) -> str:
    checksum = zlib.crc32(kind.encode() + payload).to_bytes(4, "big")
    text = f"{PREFIX}{kind}:" + base64.urlsafe_b64encode(payload + checksum).decode().rstrip("=")
    return text if len(text) <= max_bytes else ""


def _varint_size(value: int) -> int:
    return 1 if value < 0x80 else 2 if value < 0x4000 else len(_varint(value))


def _varints(values: list[int]) -> bytes:
    out = bytearray()
    for value in values:
        if value < 0x80:
            out.append(value)
        else:
            out += _varint(value)
    return bytes(out)


def _varint(value: int) -> bytes:
    if value < 0:
        raise ValueError("varints are unsigned")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


# ---- decoding ----------------------------------------------------------------------------------------------------


class _Reader:
    __slots__ = ("_at", "_data")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._at = 0

    def varint(self) -> int:
        value = shift = 0
        while True:
            if self._at >= len(self._data) or shift > 63:
                raise UnreadableMetadata("corrupt")
            byte = self._data[self._at]
            self._at += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value

    def rest(self) -> bytes:
        return self._data[self._at :]

    @property
    def done(self) -> bool:
        return self._at >= len(self._data)


def _read_varints(payload: bytes) -> list[int]:
    reader = _Reader(payload)
    values = []
    while not reader.done:
        values.append(reader.varint())
    return values


def _ranges_from_runs(base: int, runs: list[int]) -> Iterator[Range]:
    cursor = base
    for index, length in enumerate(runs):
        if index % 2 == 1 and length:
            yield cursor, cursor + length
        cursor += length


def _ranges_from_bits(base: int, bits: int, nbits: int) -> Iterator[Range]:
    bits &= (1 << nbits) - 1
    position = 0
    while bits:
        skip = (bits & -bits).bit_length() - 1  # trailing zeros
        bits >>= skip
        position += skip
        ones = (~bits & (bits + 1)).bit_length() - 1  # trailing ones
        yield base + position, base + position + ones
        bits >>= ones
        position += ones
