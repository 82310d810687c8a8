"""Readers: where a flow's records come from (spec §2.3).

Keys are read through the host in batches: one SCAN and one read of the keys (their types and
values: gears_host.read_keys) per ~1000 keys, each under one acquisition of the Redis lock.

Records are dicts whose keys come in the order RedisGears 1.2 lists them (its C dict of them,
see gears_dict.c): `event, key, type, value` for keys, `key, id, value` for stream entries,
a hash's fields in the order of their hashes.
"""
import itertools
import types

import _gears_host
import gears_cluster
import gears_host

error = gears_host.error
SCAN_COUNT = 1000
# The types whose records carry a value (read by GET, HGETALL, LRANGE 0 -1: see read_keys).
# records.c names the types as RedisGears does: a stream 'unknown', a vanished key 'empty'.
_VALUE_TYPES = ("string", "hash", "list")


def name(value):
    """A key or field name from a reply: `str` where it is UTF-8; otherwise the decoder's
    bytearray as `bytes`, which are hashable (a dict key, a set member) and go back to Redis
    exactly as they came."""
    return bytes(value) if isinstance(value, bytearray) else value


# [field, value, ...] (HGETALL, a stream entry) as a dict in 1.2's order; a field name that is
# not UTF-8 is bytes (see name()).
field_dict = _gears_host.field_dict


def _key_batches(pattern, no_scan, count=SCAN_COUNT):
    """Lists of key names matching a glob (or exactly `pattern` with no_scan)."""
    if no_scan:
        yield [pattern]  # as 1.2: a missing key is still read (its type is 'empty')
        return
    cursor, seen = "0", set()
    while True:
        command = ["SCAN", cursor, "MATCH", pattern, "COUNT", str(count)]
        cursor, keys = gears_host.call(command)
        keys = [name(k) for k in keys]
        fresh = [k for k in keys if k not in seen]  # SCAN may repeat keys while rehashing
        seen.update(fresh)
        if fresh:
            yield fresh
        if cursor == "0":
            return


def _record_batches(pattern, no_scan, read_value):
    for keys in _key_batches(pattern, no_scan):
        if read_value:  # the records built in C (records.c) from one read of the batch
            yield _gears_host.key_records(keys, gears_host.read_keys(keys))
        else:
            yield [{"event": None, "key": key} for key in keys]


def keys_reader(pattern="*", noScan=False, readValue=True, **_):
    # chain: the flow takes each batch's records without a Python frame per record
    return itertools.chain.from_iterable(_record_batches(pattern, noScan, readValue))


def key_event_record(key, event, read_value, read=()):
    """The record a KeysReader registration gets for one keyspace event. `read`: the key's
    [type, string value] as the host read it when the event fired (sync runs), else empty:
    read now, with the session's commands."""
    if not read_value:
        return {"event": event, "key": key}
    if read:  # [TYPE's answer, a string's value as GET's reply decodes]
        if len(read) > 1:  # (gears_runtime._run_key_event builds this one itself)
            return {"event": event, "key": key, "type": "string", "value": read[1]}
        if read[0] not in _VALUE_TYPES:
            return _gears_host.key_records([key], [[read[0], None]], event)[0]
    return _gears_host.key_records([key], gears_host.read_keys([key]), event)[0]


def keys_only_reader(pattern="*", count=SCAN_COUNT, noScan=False, patternGenerator=None, **_):
    if patternGenerator is not None:
        pattern, noScan = patternGenerator()
    if noScan:  # 1.2's createKeysOnlyReader: the name only if the key exists
        if gears_host.call(["EXISTS", pattern]) == 1:
            yield pattern
        return
    for keys in _key_batches(pattern, noScan, count):
        yield from keys


def stream_reader(key="*", fromId="0-0", **_):
    """As 1.2's run() of a StreamReader (streams_reader.c): XREAD of the one stream named
    `key` (literally: no pattern) after `fromId` (exclusive) to its end; a Redis error
    (a bad id, not a stream) is the run's error, in Redis' own words."""
    if not isinstance(fromId, str):
        raise error("fromId argument must be a string")
    after = fromId
    while True:
        try:
            reply = gears_host.call(["XREAD", "COUNT", str(SCAN_COUNT), "STREAMS", key, after])
        except error as exc:
            raise gears_host.flat_error(str(exc)) from None
        if not reply or not reply[0][1]:
            return
        entries = reply[0][1]
        for entry_id, fields in entries:
            yield {"key": key, "id": entry_id, "value": field_dict(fields)}
        after = entries[-1][0]


def python_reader(func=None, **_):
    if func is None:
        raise error("python reader function is not given")
    if not isinstance(func, types.FunctionType):
        raise error("pyreader argument must be a function")
    # As 1.2's PythonReader_Next: a None record ends the reading; a generator's values are
    # the records; any other value is the record of each pull, the function called again for
    # the next (endless without a limit()). Unlike 1.2, other iterators are iterated too
    # (1.2 repeats the iterator object itself forever).
    result = func()
    if isinstance(result, types.GeneratorType) or hasattr(result, "__next__"):
        for record in result:
            if record is None:
                return
            yield record
        return
    while result is not None:
        yield result
        result = func()


def shards_id_reader(*_, **__):
    yield gears_cluster.my_shard_id()  # '1' outside cluster mode


READERS = {
    "KeysReader": keys_reader,
    "KeysOnlyReader": keys_only_reader,
    "StreamReader": stream_reader,
    "PythonReader": python_reader,
    "ShardsIDReader": shards_id_reader,
}
REGISTER_ONLY = {"CommandReader"}
