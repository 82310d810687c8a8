"""A flow run by every shard of a cluster (RedisGears 1.2: execution_plan.c, distributed plans).

The flow is cut into stages at the steps that move records between shards: `collect` (all to
the shard that started the run, the initiator) and the keyed moves (`repartition`, and the
`groupby` / `batchgroupby` steps 1.2 builds on one: each record to the shard owning the slot of
its extracted key). Every shard runs stage 0 over its own reader, sends each peer what is its
(the host carries the bytes), and runs the next stage once it has every shard's part.

The steps travel as cloudpickle bytes made here (their callables, closures and the globals they
use, as 1.2 ships them); records as marshal bytes, each shard packing and unpacking its own.
Nothing a peer sends is read outside a sandbox.
"""
import bisect
import marshal
import pickle

import cloudpickle  # imported in the snapshot: free in every session

import gears_cluster
import gears_pipeline

SLOTS = 16384
INITIATOR = -1  # a collect's target: the shard that started the run
SERIALIZE_ERROR = "Failed serializing record"


def export(flow):
    """The flow as bytes for the other shards."""
    return cloudpickle.dumps((flow.reader, flow.arg, flow.kwargs, flow.steps))


def load(data):
    """(reader, arg, kwargs, steps) from export()'s bytes."""
    return pickle.loads(data)


def registering_script(entries):
    """The script another shard runs to register the same flows: [(Flow, spec fields,
    onRegistered)] as cloudpickle bytes inside it (the other shard keeps and saves this script
    as its session's, so a restart there registers them again)."""
    data = cloudpickle.dumps([((f.reader, f.arg, f.kwargs, f.steps), fields, on_registered)
                              for f, fields, on_registered in entries])
    return ("import gears_distributed\ngears_distributed.register_all(%r)\n" % data).encode()


def register_all(data):
    """Registers the flows another shard's script registered (registering_script)."""
    import gears_builder
    import gears_runtime
    for (reader, arg, kwargs, steps), fields, on_registered in load(data):
        gears_runtime._register(gears_builder.Flow(reader, arg, kwargs, steps), fields, on_registered)


def stages(steps):
    """[(steps, move)]: a stage's own steps and how its records move to the next one (None for
    the last stage; ("collect",) or ("key", extractor))."""
    out, current = [], []
    for step in steps:
        kind = step[0]
        if kind == "collect":
            out.append((current, ("collect",)))
            current = []
        elif kind == "repartition":
            out.append((current, ("key", step[1])))
            current = []
        elif kind in ("accumulatebykey", "groupby"):
            out.append((current, ("key", step[1])))
            current = [step]
        else:
            current.append(step)
    out.append((current, None))
    return out


def slot_of(key):
    """Redis Cluster's slot of `key` (text), with the {hash tag} rule."""
    data = key.encode("utf-8", "surrogatepass") if isinstance(key, str) else bytes(key)
    start = data.find(b"{")
    if start >= 0:
        end = data.find(b"}", start + 1)
        if end > start + 1:
            data = data[start + 1:end]
    return gears_cluster.crc16(data) % SLOTS


class Routing:
    """Slot ranges to shard indexes: "start-end:index,..." from the host."""

    def __init__(self, text):
        ranges = []
        for part in filter(None, text.split(",")):
            span, index = part.split(":")
            start, end = span.split("-")
            ranges.append((int(start), int(end), int(index)))
        ranges.sort()
        self.starts = [r[0] for r in ranges]
        self.ranges = ranges

    def shard_of(self, key):
        slot = slot_of(key)
        i = bisect.bisect_right(self.starts, slot) - 1
        if i >= 0 and self.ranges[i][0] <= slot <= self.ranges[i][1]:
            return self.ranges[i][2]
        return None


def pack(records, errors):
    """Records (and errors) as bytes for another shard; a record marshal cannot write becomes
    an error there instead, as in 1.2."""
    try:
        return marshal.dumps((records, errors))
    except ValueError:
        kept = []
        for record in records:
            try:
                marshal.dumps(record)
                kept.append(record)
            except ValueError as exc:
                errors = errors + ["%s: %s" % (SERIALIZE_ERROR, exc)]
        return marshal.dumps((kept, errors))


def unpack(data):
    records, errors = marshal.loads(data)
    return records, errors


def _group_key(key):
    return key if key.__class__ is str else repr(key)


def route(records, errors, move, routing, format_error):
    """A finished stage's records as {target: records}, and the errors that stay here: a
    collect's go to the initiator (INITIATOR), errors with them; keyed ones to each key's
    shard (a record whose key fails stays here as an error, as 1.2 keeps error records)."""
    if move[0] == "collect":
        return {INITIATOR: (records, errors)}, []
    extract = move[1]
    parts, kept_errors = {}, list(errors)
    for record in records:
        try:
            key = _group_key(extract(record))
            target = routing.shard_of(key)
        except BaseException as exc:
            kept_errors.append(format_error(exc, exc.__traceback__))
            continue
        if target is not None:
            parts.setdefault(target, []).append(record)
    return {target: (part, []) for target, part in parts.items()}, kept_errors


class Distributed:
    """One shard's part of a distributed run: its stages, the records it keeps for its own next
    stage (never serialized, as in 1.2), and the errors that stay here."""

    def __init__(self, reader, arg, kwargs, steps):
        self.reader, self.arg, self.kwargs = reader, arg, kwargs
        self.stages = stages(steps)
        self.errors = []
        self.kept = {}  # stage -> this shard's own records for it
        self.records = None  # a registration's run: the event's records instead of the reader

    def finish_stage(self, index, records, errors, routing, me, initiator, format_error):
        """Stage `index` ended: its records go on. The encoded [[target, bytes], ...] for the
        other shards (this shard's own part stays here)."""
        move = self.stages[index][1]
        parts, kept = route(records, errors, move, routing, format_error)
        self.errors.extend(kept)
        out = []
        for target, (part, part_errors) in parts.items():
            shard = initiator if target == INITIATOR else target
            if shard == me:
                self.kept[index + 1] = part
                self.errors.extend(part_errors)
            else:
                out.append([shard, pack(part, part_errors)])
        return out

    def source(self, index, blobs):
        """Stage `index`'s input: the reader for the first, else this shard's own records, then
        the records of `blobs`."""
        if index == 0:
            if self.records is not None:
                return self.records
            import gears_readers
            return gears_readers.READERS[self.reader](self.arg, **self.kwargs)
        records = self.kept.pop(index, [])
        for blob in blobs:
            part, errors = unpack(blob)
            records.extend(part)
            self.errors.extend(errors)
        return records

    def start(self, index, blobs, format_error):
        steps, _ = self.stages[index]
        errors = []
        run = gears_pipeline.Run(steps, errors, format_error)
        try:
            source = self.source(index, blobs)
        except BaseException as exc:
            errors.append(format_error(exc, exc.__traceback__))
            source = ()
        return run.feed(source), errors
