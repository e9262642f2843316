"""Hostile device input: generated topics and payloads, and an oracle of the daemon's answer.

The oracle follows CONTRACTS.md §1 and the table in Sources/README.md of what the gateway does where the
contract is loose (written from those and Sources/GatewayCore/DeviceEvent.swift + JSONScanner.swift):

- device id in the topic: 1-64 characters of [A-Za-z0-9_-], else counted as ``invalid device id``
  (no ack: there is no valid ack topic);
- payload over ``limits.maxPayloadBytes`` -> ``payload too large``;
- not strict RFC 8259 JSON (invalid UTF-8 anywhere, unpaired surrogate escapes, NaN, trailing
  data, ..., or nesting deeper than 64 arrays/objects) -> ``invalid json``;
- valid JSON but not an object -> ``not a json object``;
- ``eventId`` (the last one if repeated) not a string of 1-64 Unicode scalars without control
  characters (< U+0020 or U+007F) -> ``invalid eventId``;
- ``type`` likewise with 1-128 -> ``invalid type``;
- ``timestamp`` present, not null, and not a plain non-negative integer of at most 18 digits ->
  ``invalid timestamp``;
- ``data`` may be anything; otherwise the event is stored (or ``duplicate`` if that device
  already stored that eventId).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

MAX_DEPTH = 64
MAX_EVENT_ID = 64
MAX_TYPE = 128

VALID = "valid"
INVALID_DEVICE_ID = "invalid device id"


@dataclass
class Message:
    topic: str
    payload: bytes
    kind: str               # generator name, for the report
    expected: str           # VALID, INVALID_DEVICE_ID or a reject reason
    device: str | None      # valid device id of the topic, if any
    event_id: str | None = None
    parsed: dict | None = None


class _Num:
    """A JSON number as its source text (so `timestamp` can be judged as the daemon does)."""
    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text

    def __eq__(self, other):
        return isinstance(other, _Num) and other.text == self.text

    def __hash__(self):
        return hash(self.text)

    def __repr__(self):
        return self.text


def parse(payload: bytes):
    """Strict JSON with numbers kept as their text (None when it is not JSON)."""
    try:
        return json.loads(payload.decode("utf-8"), parse_int=_Num, parse_float=_Num,
                          parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return None


def _reject_constant(name: str):
    raise ValueError(f"not JSON: {name}")


def _max_depth(text: str) -> int:
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _has_surrogate(value) -> bool:
    if isinstance(value, str):
        return any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, dict):
        return any(_has_surrogate(k) or _has_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_surrogate(v) for v in value)
    return False


def _acceptable_text(value, max_length: int) -> bool:
    return (isinstance(value, str) and 1 <= len(value) <= max_length
            and not any(ord(c) < 0x20 or ord(c) == 0x7F for c in value))


def is_valid_device_id(level: str) -> bool:
    return 1 <= len(level.encode()) <= 64 and all(c.isascii() and (c.isalnum() or c in "_-") for c in level)


def judge_payload(payload: bytes, max_payload: int) -> tuple[str, dict | None]:
    """(expected outcome, parsed object when it is valid or has an eventId)."""
    if len(payload) > max_payload:
        return "payload too large", None
    try:
        text = payload.decode("utf-8", "strict")
    except UnicodeDecodeError:
        return "invalid json", None
    if _max_depth(text) > MAX_DEPTH:
        return "invalid json", None
    try:
        value = json.loads(text, parse_int=_Num, parse_float=_Num, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return "invalid json", None
    if _has_surrogate(value):
        return "invalid json", None
    if not isinstance(value, dict):
        return "not a json object", None
    if not _acceptable_text(value.get("eventId"), MAX_EVENT_ID):
        return "invalid eventId", None
    if not _acceptable_text(value.get("type"), MAX_TYPE):
        return "invalid type", value
    if "timestamp" in value and value["timestamp"] is not None:
        ts = value["timestamp"]
        if not (isinstance(ts, _Num) and ts.text.isascii() and ts.text.isdigit() and len(ts.text) <= 18):
            return "invalid timestamp", value
    return VALID, value


# ---------------------------------------------------------------------------------------------
# Generators


GOOD_IDS = ["h-1", "h-2", "h-3", "H_4", "_", "-", "0", "a" * 64, "Dev-ice_9"]
BAD_IDS = ["", " ", "a b", "a.b", "é", "中文", "🙂", "dev\u00a0x", "a" * 65, "x" * 300, "dev$", "dev%2B",
           "it's", 'q"q', "a:b", "a@b", "a,b", "a\\b", "dev\u200bzw", "ＦＵＬＬ", "a*b", "a?b", "~", ".", ".."]
UNICODE = ["é", "ß", "中", "🙂", "\u2028", "\ufeff", "\u0301", "𝄞", "\u00a0"]


def _rand_text(rng: random.Random, n: int) -> str:
    alphabet = "abcXYZ019 _-./:\\\"'{}[]" + "".join(UNICODE)
    return "".join(rng.choice(alphabet) for _ in range(n))


def _rand_level(rng: random.Random, n: int) -> str:
    """Text for a topic level: no '/', no wildcards, no control characters (mosquitto refuses those)."""
    alphabet = "abcXYZ019 _-.:$%&'\"\\=~" + "".join(UNICODE)
    return "".join(rng.choice(alphabet) for _ in range(n))


def _rand_json(rng: random.Random, depth: int = 0):
    r = rng.random()
    if depth > 3 or r < 0.35:
        return rng.choice([None, True, False, 0, -1, 1.5, 1e300, "s", _rand_text(rng, rng.randint(0, 20)),
                           rng.randint(-10**20, 10**20)])
    if r < 0.7:
        return [_rand_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {_rand_text(rng, rng.randint(0, 6)): _rand_json(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def _event(rng: random.Random, **fields) -> dict:
    event = {"eventId": f"x{rng.getrandbits(40):x}", "type": "hostile.test",
             "timestamp": rng.randint(0, 2**41), "data": _rand_json(rng)}
    for key, value in fields.items():
        if value is _DROP:
            event.pop(key, None)
        else:
            event[key] = value
    return event


_DROP = object()


def _dumps(value, ascii_only: bool = False) -> bytes:
    return json.dumps(value, ensure_ascii=ascii_only, separators=(",", ":")).encode()


def _nested(kind: str, levels: int, inner: str = "1") -> str:
    if kind == "array":
        return "[" * levels + inner + "]" * levels
    if kind == "object":
        return '{"a":' * levels + inner + "}" * levels
    # mixed
    out_open, out_close = [], []
    for i in range(levels):
        if i % 2:
            out_open.append("["), out_close.append("]")
        else:
            out_open.append('{"k":'), out_close.append("}")
    return "".join(out_open) + inner + "".join(reversed(out_close))


def _wrap_data(data_text: str, rng: random.Random) -> bytes:
    return ('{"eventId":"n%x","type":"deep","data":%s}' % (rng.getrandbits(40), data_text)).encode()


def gen_valid(rng, max_payload):
    choice = rng.randrange(10)
    if choice == 0:
        return _dumps(_event(rng, eventId=rng.choice(UNICODE) * rng.randint(1, MAX_EVENT_ID)))
    if choice == 1:
        return _dumps(_event(rng, eventId="v" * MAX_EVENT_ID, type="t" * MAX_TYPE))
    if choice == 2:
        return _dumps(_event(rng, timestamp=_DROP, data=_DROP))
    if choice == 3:
        return _dumps(_event(rng, timestamp=None))
    if choice == 4:
        return _dumps(_event(rng, timestamp=10**17 * 9 + rng.randint(0, 10**17 - 1)))   # 18 digits
    if choice == 5:
        return _wrap_data(_nested(rng.choice(["array", "object", "mixed"]), MAX_DEPTH - 1), rng)  # deepest allowed
    if choice == 6:
        return b" \t\r\n" + _dumps(_event(rng)) + b"\n "
    if choice == 7:   # escaped everything, surrogate pairs as escapes
        return _dumps(_event(rng, eventId="🙂" + _rand_text(rng, 10)), ascii_only=True)
    if choice == 8:   # exactly at the payload limit
        base = _dumps(_event(rng, data=""))
        pad = max_payload - len(base)
        return base[:-2] + b"p" * pad + b'"}' if pad > 0 else base
    return _dumps(_event(rng, data=_rand_text(rng, rng.randint(0, 3000))))


def gen_invalid_utf8(rng, max_payload):
    good = _dumps(_event(rng, data="marker"))
    bad = rng.choice([b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82", b"\x80",
                      b"\xf8\x88\x80\x80\x80", b"\xfe\xfe"])
    where = rng.randrange(3)
    if where == 0:     # inside a string value
        return good.replace(b"marker", b"mar" + bad + b"ker")
    if where == 1:     # inside the eventId
        return good.replace(b'"eventId":"', b'"eventId":"' + bad, 1)
    return bad + good  # outside any string


def gen_deep(rng, max_payload):
    levels = rng.choice([MAX_DEPTH, MAX_DEPTH + 1, 1000, 10_000])
    kind = rng.choice(["array", "object", "mixed"])
    if rng.random() < 0.5:
        return _wrap_data(_nested(kind, levels), rng)
    return _nested(kind, levels).encode()          # deep at the top level


def gen_huge(rng, max_payload):
    size = rng.choice([max_payload + 1, max_payload + 1000, 2 * max_payload, 1_000_000])
    base = _dumps(_event(rng, data=""))
    return base[:-2] + b"h" * (size - len(base)) + b'"}'


WRONG_VALUES = [None, True, False, 0, 12.5, -3, [], ["e1"], {}, {"id": "x"}, "", "\u0001", "\u007f"]


def gen_wrong_types(rng, max_payload):
    field = rng.choice(["eventId", "type", "timestamp", "data"])
    if field == "timestamp":
        value = rng.choice(["123", -1, 1.5, 1e3, True, [], {}, 10**18, 10**30, 0, "", None])
    else:
        value = rng.choice(WRONG_VALUES + [_DROP])
    payload = _dumps(_event(rng, **{field: value}))
    if field == "timestamp" and rng.random() < 0.3:   # number spellings JSON allows
        payload = payload.replace(b'"timestamp":', b'"timestamp":' + rng.choice([b"-0,\"t2\":", b"1E3,\"t2\":", b"0.0,\"t2\":"]), 1)
    return payload


def gen_giant_strings(rng, max_payload):
    choice = rng.randrange(6)
    if choice == 0:
        return _dumps(_event(rng, eventId="i" * (MAX_EVENT_ID + 1)))
    if choice == 1:
        return _dumps(_event(rng, eventId="i" * rng.randint(1000, 60_000)))
    if choice == 2:
        return _dumps(_event(rng, type="t" * (MAX_TYPE + 1)))
    if choice == 3:
        return _dumps(_event(rng, type="t" * rng.randint(1000, 60_000)))
    if choice == 4:
        return _dumps(_event(rng, data="d" * rng.randint(10_000, max_payload - 200)))
    return _dumps(_event(rng, eventId="🙂" * (MAX_EVENT_ID + 1)))


def gen_event_id_edge(rng, max_payload):
    return _dumps(_event(rng, eventId=rng.choice(["", "\u0000", "a\nb", "tab\t", "del\u007f", "\u001f",
                                                  "ok", "x" * MAX_EVENT_ID, "y" * (MAX_EVENT_ID + 1)])),
                  ascii_only=rng.random() < 0.5)


def gen_surrogates(rng, max_payload):
    escape = rng.choice(["\\ud800", "\\udfff", "\\ud83d\\u0041", "\\ud83d\\ude00", "\\ude00\\ud83d"])
    where = rng.choice(["eventId", "type", "data"])
    template = {"eventId": "s%x" % rng.getrandbits(32), "type": "surrogate", "data": "d"}
    text = json.dumps(template, separators=(",", ":"))
    value = json.dumps(template[where])
    return text.replace(f'"{where}":{value}', f'"{where}":"{escape}"', 1).encode()


def gen_broken_json(rng, max_payload):
    good = _dumps(_event(rng))
    choice = rng.randrange(10)
    if choice == 0:
        return good[:rng.randrange(len(good))]                        # truncated
    if choice == 1:
        return good + rng.choice([b"x", b"{}", b",", b"\x00", b" 1"])   # trailing data
    if choice == 2:
        return good[:-1] + b",}"                                       # trailing comma
    if choice == 3:
        return good.replace(b'"', b"'")                                 # single quotes
    if choice == 4:
        return good.replace(b'"data":', b'"data":NaN,"d2":', 1)
    if choice == 5:
        return b"/* c */" + good
    if choice == 6:
        return b"\xef\xbb\xbf" + good                                   # UTF-8 BOM
    if choice == 7:
        return good.replace(b"{", b"{\x01", 1)                          # control character outside strings
    if choice == 8:
        return good.replace(b'"type":"', b'"type":"\t', 1)              # raw control character inside a string
    return good.replace(b":", b"=", 1)


def gen_not_object(rng, max_payload):
    return rng.choice([b"[]", b'["eventId","x"]', b"1", b"-0.5e3", b'"string"', b"null", b"true", b"false",
                       b"  42  ", _dumps([_event(rng)])])


def gen_duplicate_keys(rng, max_payload):
    event = _event(rng)
    body = _dumps(event)[1:-1]
    extra = rng.choice([b'"eventId":5', b'"eventId":"other%x"' % rng.getrandbits(16), b'"type":null',
                        b'"timestamp":"x"', b'"data":1'])
    return b"{" + body + b"," + extra + b"}"


def gen_zero_length(rng, max_payload):
    return b""


def gen_binary(rng, max_payload):
    n = rng.choice([1, 2, 3, 16, 100, 1000, 5000])
    data = bytes(rng.getrandbits(8) for _ in range(n))
    if rng.random() < 0.3:
        data = b"{" + data
    return data


def gen_mutated(rng, max_payload):
    """A valid event with a few random bytes flipped/inserted/deleted."""
    data = bytearray(_dumps(_event(rng)))
    for _ in range(rng.randint(1, 4)):
        op, i = rng.randrange(3), rng.randrange(len(data))
        if op == 0:
            data[i] = rng.getrandbits(8)
        elif op == 1:
            data.insert(i, rng.getrandbits(8))
        elif len(data) > 1:
            del data[i]
    return bytes(data)


GENERATORS = {
    "valid": (gen_valid, 14),
    "invalid-utf8": (gen_invalid_utf8, 8),
    "deep-nesting": (gen_deep, 4),
    "huge": (gen_huge, 2),
    "wrong-types": (gen_wrong_types, 12),
    "giant-strings": (gen_giant_strings, 4),
    "eventId-edge": (gen_event_id_edge, 6),
    "surrogates": (gen_surrogates, 4),
    "broken-json": (gen_broken_json, 10),
    "not-object": (gen_not_object, 4),
    "duplicate-keys": (gen_duplicate_keys, 4),
    "zero-length": (gen_zero_length, 2),
    "random-binary": (gen_binary, 6),
    "mutated": (gen_mutated, 10),
}


def generate(rng: random.Random, count: int, max_payload: int, bad_topic_share: float = 0.12) -> list[Message]:
    """``count`` messages: about ``bad_topic_share`` on topics with an invalid device id, the rest
    on valid device topics with payloads from GENERATORS (a few of each kind at least)."""
    names = list(GENERATORS)
    weights = [GENERATORS[n][1] for n in names]
    messages: list[Message] = []
    # A guaranteed handful of every kind first, so --quick covers everything.
    kinds = [n for n in names for _ in range(3)]
    while len(kinds) < count:
        kinds.append(rng.choices(names, weights)[0])
    kinds = kinds[:count]
    rng.shuffle(kinds)
    for kind in kinds:
        payload = GENERATORS[kind][0](rng, max_payload)
        channel = rng.choice(["event", "event", "telemetry"])
        if rng.random() < bad_topic_share:
            level = rng.choice(BAD_IDS + [_rand_level(rng, rng.randint(1, 70))])
            # A random level can come out valid; judge it rather than assume.
            if is_valid_device_id(level):
                level = level + "!"
            messages.append(Message(f"device/{level}/{channel}", payload, kind, INVALID_DEVICE_ID, None))
            continue
        device = rng.choice(GOOD_IDS)
        expected, parsed = judge_payload(payload, max_payload)
        event_id = parsed.get("eventId") if parsed and isinstance(parsed.get("eventId"), str) else None
        messages.append(Message(f"device/{device}/{channel}", payload, kind, expected, device, event_id,
                                parsed if expected == VALID else None))
    return messages
