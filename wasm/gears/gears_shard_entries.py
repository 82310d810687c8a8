"""The host's entries into a session for the other shards of a cluster: a distributed run's
plan shipped and loaded, its stages, a registration's run on every shard, and a script's
registrations for the other shards (gears_distributed does the work)."""
import gears_builder
import gears_distributed
import gears_encode
import gears_profile
import gears_runtime as rt  # imported first (it imports this module for its entry table)

_distributed = {}  # execution id -> gears_distributed.Distributed, this shard's part of a run


def _export_plan(payload):
    """A created flow about to run on every shard (cluster mode): encoded [number of moves,
    plan bytes]; nothing for a flow that stays here (mode async_local); an error when one of
    its callbacks cannot be shipped (1.2's words)."""
    execution_id = payload.decode("utf-8", "replace")
    flow = rt._flows.get(execution_id)
    if flow is None:
        return gears_encode.encode_results([], ["execution %s has no flow in this session" % execution_id])
    if flow.mode == "async_local":
        return gears_encode.encode_results([], [])
    try:
        data = gears_distributed.export(flow)
    except BaseException as exc:
        return gears_encode.encode_results(
            [], ["Error occured when serialized a python callback, error=%s" % rt.format_error(exc, None)])
    del rt._flows[execution_id]
    part = gears_distributed.Distributed(flow.reader, flow.arg, flow.kwargs, flow.steps)
    _distributed[execution_id] = part
    return gears_encode.encode_results([len(part.stages) - 1, data], [])


def _import_plan(payload):
    """A peer's run arrived: payload [execution id, plan bytes]; encoded [number of moves,
    its plan steps as RG.GETEXECUTION shows them...]."""
    execution_id, data = rt._decode_args(payload, b"sb")
    try:
        reader, arg, kwargs, steps = gears_distributed.load(data)
    except BaseException as exc:
        return gears_encode.encode_results([], ["Error occured when deserialized a python callback, error=%s"
                                                % rt.format_error(exc, None)])
    part = gears_distributed.Distributed(reader, arg, kwargs, steps)
    _distributed[execution_id] = part
    plan = gears_builder.Flow(reader, arg, kwargs, steps).plan()
    return gears_encode.encode_results([len(part.stages) - 1] + plan, [])


@gears_profile.profiled
def _run_stage(payload):
    """One stage of a distributed run: payload [execution id, stage, slot routing, this shard's
    index, the initiator's, the other shards' parts of its input (bytes)...]. The last stage
    answers [[results], [errors]] as a flow does (and this shard's part ends); another answers
    [[target shard index, bytes], ...] for the other shards."""
    execution_id, index, routing, me, initiator, *blobs = rt._decode_args(payload, b"sssssb")
    part = _distributed.get(execution_id)
    if part is None:
        return gears_encode.encode_results([], ["execution %s has no flow in this session" % execution_id])
    index = int(index)
    run, errors = part.start(index, blobs, rt.format_error)
    _, move = part.stages[index]

    def encode():
        if move is None:
            _distributed.pop(execution_id, None)
            return gears_encode.encode_results(run.results, part.errors + errors)
        pairs = part.finish_stage(index, run.results, errors, gears_distributed.Routing(routing), int(me),
                                  int(initiator), rt.format_error)
        return gears_encode.encode_results(pairs, [])
    return rt._finish(run, encode)


def _export_registrations(payload):
    """This script's registrations for the other shards of a cluster: payload [ids...];
    encoded [the script that registers them there] (their flows as cloudpickle bytes), or the
    error when one of their callbacks cannot be shipped (1.2's words)."""
    ids = rt._fields(payload)
    try:
        entries = [(rt._registrations[i], *rt._registration_specs[i]) for i in ids]
        script = gears_distributed.registering_script(entries)
    except BaseException as exc:
        return gears_encode.encode_results(
            [], ["Error occured when serialized a python callback, error=%s" % rt.format_error(exc, None)])
    return gears_encode.encode_results([script], [])


def _plan_registered(payload):
    """A registration's run on every shard (an async trigger in cluster mode): payload
    [execution id, registration id, the trigger's args...] (each shard has the registration
    under the same id); encoded [number of moves]."""
    execution_id, registration_id, *record = rt._decode_args(payload, b"ssv")
    flow = rt._registrations.get(registration_id)
    if flow is None:
        return rt._not_here(registration_id)
    part = gears_distributed.Distributed(flow.reader, flow.arg, flow.kwargs, flow.steps)
    part.records = [record]
    _distributed[execution_id] = part
    return gears_encode.encode_results([len(part.stages) - 1], [])


def _forget_plan(payload):
    """A distributed run ended or was dropped before its last stage here."""
    _distributed.pop(payload.decode("utf-8", "replace"), None)
    return gears_encode.encode_results([], [])


ENTRIES = {
    "export_plan": _export_plan,
    "import_plan": _import_plan,
    "run_stage": _run_stage,
    "forget_plan": _forget_plan,
    "export_registrations": _export_registrations,
    "plan_registered": _plan_registered,
}
