"""Readers: where a flow's records come from (spec §2.3).

Keys are read through the host in batches: one SCAN, one batch of TYPE calls and one batch
of value reads per ~1000 keys, each batch under one acquisition of the Redis lock.
"""
import types

import gears_host

error = gears_host.error
SCAN_COUNT = 1000
# RedisGears names the types it converts; a stream is 'unknown', a vanished key 'empty'.
_TYPE_NAMES = {"string": "string", "hash": "hash", "list": "list", "set": "set", "zset": "zset",
               "stream": "unknown", "none": "empty"}


def _value_command(key, type_name):
    if type_name == "string":
        return ["GET", key]
    if type_name == "hash":
        return ["HGETALL", key]
    if type_name == "list":
        return ["LRANGE", key, "0", "-1"]
    return None


def name(value):
    """A key or field name from a reply: `str` where it is UTF-8; otherwise the decoder's
    bytearray as `bytes`, which are hashable (a dict key, a set member) and go back to Redis
    exactly as they came."""
    return bytes(value) if isinstance(value, bytearray) else value


def field_dict(flat):
    """[field, value, ...] (HGETALL, a stream entry) as a dict."""
    return {name(flat[i]): flat[i + 1] for i in range(0, len(flat), 2)}


def _convert_value(type_name, reply):
    if isinstance(reply, error):
        return None
    if type_name == "hash":
        return field_dict(reply)
    return reply


def _key_batches(pattern, no_scan, count=SCAN_COUNT, type_filter=None):
    """Lists of key names matching a glob (or exactly `pattern` with no_scan)."""
    if no_scan:
        if gears_host.call(["EXISTS", pattern]):
            yield [pattern]
        return
    cursor, seen = "0", set()
    while True:
        command = ["SCAN", cursor, "MATCH", pattern, "COUNT", str(count)]
        if type_filter:
            command += ["TYPE", type_filter]
        cursor, keys = gears_host.call(command)
        keys = [name(k) for k in keys]
        fresh = [k for k in keys if k not in seen]  # SCAN may repeat keys while rehashing
        seen.update(fresh)
        if fresh:
            yield fresh
        if cursor == "0":
            return


def keys_reader(pattern="*", noScan=False, readValue=True, **_):
    for keys in _key_batches(pattern, noScan):
        if not readValue:
            for key in keys:
                yield {"key": key, "event": None}
            continue
        kinds = gears_host.call_batch([["TYPE", k] for k in keys])
        commands = [_value_command(k, t) for k, t in zip(keys, kinds)]
        values = iter(gears_host.call_batch([c for c in commands if c]))
        for key, kind, command in zip(keys, kinds, commands):
            type_name = _TYPE_NAMES.get(kind, "module") if isinstance(kind, str) else "empty"
            value = _convert_value(kind, next(values)) if command else None
            yield {"key": key, "value": value, "type": type_name, "event": None}


def key_event_record(key, event, read_value):
    """The record a KeysReader registration gets for one keyspace event."""
    if not read_value:
        return {"key": key, "event": event}
    [kind] = gears_host.call_batch([["TYPE", key]])
    command = _value_command(key, kind)
    value = _convert_value(kind, gears_host.call_batch([command])[0]) if command else None
    type_name = _TYPE_NAMES.get(kind, "module") if isinstance(kind, str) else "empty"
    return {"key": key, "value": value, "type": type_name, "event": event}


def keys_only_reader(pattern="*", count=SCAN_COUNT, noScan=False, patternGenerator=None, **_):
    if patternGenerator is not None:
        pattern, noScan = patternGenerator()
    for keys in _key_batches(pattern, noScan, count):
        yield from keys


def stream_reader(pattern="*", fromId="0-0", **_):
    has_glob = any(c in pattern for c in "*?[")
    streams = (k for batch in _key_batches(pattern, False, type_filter="stream") for k in batch) \
        if has_glob else [pattern]
    for stream in streams:
        start = fromId
        while True:
            entries = gears_host.call(["XRANGE", stream, start, "+", "COUNT", str(SCAN_COUNT)])
            if isinstance(entries, error) or not entries:
                break
            for entry_id, fields in entries:
                yield {"key": stream, "id": entry_id, "value": field_dict(fields)}
            start = "(" + entries[-1][0]


def python_reader(func=None, **_):
    if func is None:
        raise error("python reader function is not given")
    if not isinstance(func, types.FunctionType):
        raise error("pyreader argument must be a function")
    result = func()
    if isinstance(result, types.GeneratorType) or hasattr(result, "__next__"):
        yield from result
    else:
        yield result


def shards_id_reader(*_, **__):
    yield "1"  # standalone: a single shard


READERS = {
    "KeysReader": keys_reader,
    "KeysOnlyReader": keys_only_reader,
    "StreamReader": stream_reader,
    "PythonReader": python_reader,
    "ShardsIDReader": shards_id_reader,
}
REGISTER_ONLY = {"CommandReader"}
