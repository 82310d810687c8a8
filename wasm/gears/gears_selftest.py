"""Checks the guest's side of the wire format against the golden vectors
(crates/abi/vectors/codec.json): the operation tables, and, inside the guest, the C codec
(`_gears_host`: records and results out, values and payloads in, args and batches out).

Runs under the native CPython too (`codec=None`: only the tables are checked there)."""
import json

import gears_abi


def _record(v):
    """A record of the vectors as the Python object it stands for."""
    if "nest" in v:
        inner = _record(v["in"])
        for _ in range(v["nest"]):
            inner = [inner]
        return inner
    (tag, x), = v.items()
    return {
        "str": lambda: x,
        "bytes_hex": lambda: bytes.fromhex(x),
        "bytearray_hex": lambda: bytearray.fromhex(x),
        "int": lambda: int(x),
        "float": lambda: x,
        "float_text": lambda: float(x),
        "bool": lambda: bool(x),
        "none": lambda: None,
        "dict": lambda: {"a": 1},
        "list": lambda: [_record(i) for i in x],
    }[tag]()


def _decoded(v, error_type):
    """What the C decoder gives Python for a value of the vectors."""
    if "nest" in v:
        inner = _decoded(v["in"], error_type)
        for _ in range(v["nest"]):
            inner = [inner]
        return inner
    (tag, x), = v.items()
    if tag == "bulk_hex":
        data = bytes.fromhex(x)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return bytearray(data)  # binary replies arrive as bytearray, as in RedisGears 1.2
    return {
        "bulk": lambda: x,
        "status": lambda: x,
        "error": lambda: ("error", x),
        "int": lambda: int(x),
        "double": lambda: float(x),
        "null": lambda: None,
        "array": lambda: [_decoded(i, error_type) for i in x],
    }[tag]()


def _comparable(obj, error_type):
    if error_type is not None and isinstance(obj, error_type):
        return ("error", str(obj))
    if isinstance(obj, list):
        return [_comparable(o, error_type) for o in obj]
    if isinstance(obj, (bytes, bytearray)):
        return (type(obj).__name__, bytes(obj))
    return obj


def _value(data):
    """A field as a bulk reply decodes: str if UTF-8, else a bytearray."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return bytearray(data)


def _name(data):
    """A name: str if UTF-8, else bytes."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data


def check(vectors_json, codec=None):
    """The failures, one line each (empty when every vector passes)."""
    vectors = json.loads(vectors_json)
    failures = []

    def expect(name, got, want):
        if got != want:
            failures.append("%s: got %r, want %r" % (name, got, want))

    expect("max_depth", gears_abi.MAX_DEPTH, vectors["max_depth"])
    expect("max_interval_secs", gears_abi.MAX_INTERVAL_SECS, vectors["max_interval_secs"])
    expect("entry flags", gears_abi.ENTRY_FLAGS, vectors["entry_flags"])
    expect("guest entry codes", gears_abi.GUEST_ENTRIES, vectors["guest_entries"])
    expect("host request codes", gears_abi.HOST_REQUESTS, vectors["host_requests"])
    if codec is None:
        return failures
    host = codec._gears_host if hasattr(codec, "_gears_host") else codec
    for v in vectors["records"]:
        expect("C encode_record " + v["name"], host.encode_record(_record(v["record"])).hex(), v["hex"])
    for v in vectors["results"]:
        records = [_record(pair[0]) for pair in v["results"]]
        got = host.encode_results(records, v["errors"], v["durations"]).hex()
        expect("C encode_results " + v["name"], got, v["hex"])
    error_type = codec.error
    for v in vectors["values"]:
        try:
            got = _comparable(host.decode(bytes.fromhex(v["hex"])), error_type)
        except error_type as e:  # a top-level error reply raises
            got = ("error", str(e))
        except Exception as e:
            got = "raised %r" % e
        expect("C decode " + v["name"], got, _comparable(_decoded(v["value"], error_type), error_type))
    for v in vectors["refused"]:
        try:
            host.decode(bytes.fromhex(v["hex"]))
            failures.append("C decode %s: accepted, want %s" % (v["name"], v["error"]))
        except ValueError:
            pass
    for v in vectors["args"]:
        args = [bytes.fromhex(a) for a in v["args"]]
        expect("C encode_args " + v["name"], host.encode_args(args).hex(), v["hex"])
        expect("C encode_args bytearray " + v["name"], host.encode_args([bytearray(a) for a in args]).hex(), v["hex"])
        expect("C decode_args " + v["name"], host.decode_args(bytes.fromhex(v["hex"])), args)
        encoded = bytes.fromhex(v["hex"])
        for kinds, convert in ((b"v", _value), (b"n", _name), (b"s", lambda a: a.decode("utf-8", "replace"))):
            expect("C decode_args %s %s" % (kinds.decode(), v["name"]),
                   _comparable(host.decode_args(encoded, kinds), error_type), _comparable([convert(a) for a in args], error_type))
        if len(args) > 1:  # one kind per field, the last for the rest
            want = [args[0]] + [_value(a) for a in args[1:]]
            expect("C decode_args bv " + v["name"], _comparable(host.decode_args(encoded, b"bv"), error_type),
                   _comparable(want, error_type))
        for cut in (1, 4):  # a truncated encoding is refused, never read past its end
            if len(v["hex"]) // 2 >= cut:
                try:
                    host.decode_args(bytes.fromhex(v["hex"])[:-cut])
                    failures.append("C decode_args %s cut by %d: accepted" % (v["name"], cut))
                except ValueError:
                    pass
        try:
            texts = [a.decode("utf-8") for a in args]
        except UnicodeDecodeError:
            continue
        expect("C encode_args str " + v["name"], host.encode_args(texts).hex(), v["hex"])
    for v in vectors["batches"]:
        commands = [[bytes.fromhex(a) for a in c] for c in v["commands"]]
        expect("C encode_batch " + v["name"], host.encode_batch(commands).hex(), v["hex"])
    _check_gears_dict(host, expect)
    return failures


# RedisGears 1.2's C dict orders, as its published outputs show them (docs/fidelity-audit.md,
# appendix): record fields (set: find, delete, add) and groups (find, then add when new).
_FIELD_ORDERS = [(["key", "value", "type", "event"], ["event", "key", "type", "value"]),
                 (["key", "event"], ["event", "key"]),
                 (["id", "value", "key"], ["key", "id", "value"]),
                 (["name", "age"], ["age", "name"]),
                 (["name", "continent"], ["continent", "name"])]
_GROUP_ORDERS = [(["a", "b"], ["b", "a"]), (["0", "1"], ["1", "0"]), (["string", "hash"], ["hash", "string"]),
                 (["x", "y", "z"], ["z", "y", "x"]), (["100", "0"], ["0", "100"])]


def _check_gears_dict(host, expect):
    for keys, want in _FIELD_ORDERS:
        d = host.GearsDict()
        for k in keys:
            d.set(k)
        expect("GearsDict fields %s" % keys, d.keys(), want)
        flat = [part for k in keys for part in (k, k.upper())]
        expect("field_dict %s" % keys, list(host.field_dict(flat).items()), [(k, k.upper()) for k in want])
    for keys, want in _GROUP_ORDERS:
        d = host.GearsDict()
        for k in keys:
            if not d.find(k):
                d.add(k)
        expect("GearsDict groups %s" % keys, d.keys(), want)
    d = host.GearsDict()  # past several table doublings, every key once
    for i in range(5000):
        key = str(i % 1500)
        if not d.find(key):
            d.add(key)
    expect("GearsDict 1500 groups", (len(d), sorted(d.keys(), key=int)), (1500, [str(i) for i in range(1500)]))
    for i in range(0, 1500, 2):
        d.delete(str(i))
    expect("GearsDict after deletes", sorted(d.keys(), key=int), [str(i) for i in range(1, 1500, 2)])
