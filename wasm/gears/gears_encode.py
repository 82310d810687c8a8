"""Records to replies (spec §1.3), in the host<->guest encoding (crates/abi; vectors pinned by
crates/abi/vectors/codec.json). The host's payloads are decoded in C (`_gears_host.decode_args`)."""
import struct

from gears_abi import MAX_DEPTH

_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1
_PY_RECORD = b"PY RECORD"


def _tagged(out, tag, data):
    out.append(tag + struct.pack("<I", len(data)) + data)


def encode_record(record, out, depth=0):
    """Appends the encoding of one result record to the list `out`."""
    if isinstance(record, str):
        data = record.encode("utf-8", "surrogatepass")
        if len(record) > 1 and record[0] == "+":
            _tagged(out, b"+", data[1:])
        elif len(record) > 1 and record[0] == "-":
            _tagged(out, b"-", data[1:])
        else:
            _tagged(out, b"$", data)
    elif isinstance(record, bytes):  # 1.2 (PythonRecord_SendReply): bytes only; a bytearray
        _tagged(out, b"$", record)  # is a "PY RECORD" like any other object
    elif isinstance(record, int):
        if _I64_MIN <= record <= _I64_MAX:
            out.append(b":" + struct.pack("<q", record))
        else:
            _tagged(out, b"$", str(record).encode())
    elif isinstance(record, float):
        _tagged(out, b"$", (b"%f" % record))
    elif isinstance(record, list) and depth < MAX_DEPTH:
        out.append(b"*" + struct.pack("<I", len(record)))
        for item in record:
            encode_record(item, out, depth + 1)
    else:
        _tagged(out, b"$", _PY_RECORD)


# `[[], []]`: no results, no errors.
NOTHING = b"*" + struct.pack("<I", 2) + (b"*" + struct.pack("<I", 0)) * 2


def encode_results(results, errors, durations=None):
    """`[[results...], [errors...]]` (+ `[step durations in ms]` when profiling), encoded."""
    if not results and not errors and durations is None:
        return NOTHING  # every event of a registration that ran cleanly
    parts = 2 if durations is None else 3
    out = [b"*" + struct.pack("<I", parts), b"*" + struct.pack("<I", len(results))]
    for record in results:
        encode_record(record, out)
    out.append(b"*" + struct.pack("<I", len(errors)))
    for err in errors:
        _tagged(out, b"$", err.encode("utf-8", "replace"))
    if durations is not None:
        out.append(b"*" + struct.pack("<I", len(durations)))
        out.extend(b":" + struct.pack("<q", d) for d in durations)
    return b"".join(out)
