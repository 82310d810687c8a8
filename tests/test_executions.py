"""Executions: UNBLOCKING runs and the commands that inspect, wait for, abort and drop them."""
import re
import threading
import time

import pytest
import redis

from conftest import pyexec, wait_for

ZERO_ID = "0" * 40
ID_RE = re.compile(r"^0{40}-\d+$")
MISSING_ID = ZERO_ID + "-999999"
NO_PLAN = "execution plan does not exist"
REFUSED = "Can not run gears inside a multi exec, lua, or when blocking is not allowed"
PLAN_KEYS = ["status", "shards_received", "shards_completed", "results", "errors",
             "total_duration", "read_duration", "steps"]
STEP_TYPES = {"none", "map", "filter", "reader", "group", "extractkey", "repartition", "reduce",
              "collect", "foreach", "flatmap", "limit", "accumulate", "accumulatebykey"}

LOOP = ("def spin(x):\n"
        "    while True:\n"
        "        pass\n"
        "GB('PythonReader').map(spin).run(lambda: (x for x in [1]))\n")


def gen_run(values, ops=""):
    return f"GB('PythonReader'){ops}.run(lambda: (x for x in {values!r}))"


def unblocking(r, script):
    eid = pyexec(r, script, "UNBLOCKING")
    assert isinstance(eid, str) and ID_RE.match(eid), eid
    return eid


def dump(r):
    """RG.DUMPEXECUTIONS as {id: status}, checking each entry's shape."""
    out = {}
    for e in r.execute_command("RG.DUMPEXECUTIONS"):
        assert len(e) == 6 and e[0::2] == ["executionId", "status", "registered"], e
        out[e[1]] = e[3]
    return out


def cmd_err(r, *args):
    with pytest.raises(redis.exceptions.ResponseError) as e:
        r.execute_command(*args)
    return str(e.value)


def nsessions(r):
    return r.info("rg")["rg_nsessions"]


def check_plan(res):
    """Checks the RG.GETEXECUTION reply shape; returns the 16-item execution_plan."""
    assert isinstance(res, list) and len(res) == 1, res
    shard = res[0]
    assert len(shard) == 4, shard
    assert shard[0] == "shard_id" and shard[1] == ZERO_ID and shard[2] == "execution_plan", shard
    plan = shard[3]
    assert isinstance(plan, list) and len(plan) == 16, plan
    assert plan[0::2] == PLAN_KEYS, plan
    for i in (3, 5, 7, 11, 13):
        assert isinstance(plan[i], int), (PLAN_KEYS[i // 2], plan[i])
    assert isinstance(plan[9], list) and all(isinstance(e, str) for e in plan[9]), plan[9]
    steps = plan[15]
    assert isinstance(steps, list) and steps, plan
    for st in steps:
        assert isinstance(st, list) and len(st) == 8, st
        assert st[0::2] == ["type", "duration", "name", "arg"], st
        assert st[1] in STEP_TYPES, st
        assert isinstance(st[3], int) and isinstance(st[5], str) and isinstance(st[7], str), st
    return plan


# ---------------------------------------------------------------- UNBLOCKING and results

def test_unblocking_replies_id_and_results_can_be_fetched(r):
    r.mset({"a": "1", "b": "2"})
    eid = unblocking(r, "GB().map(lambda r: r['key']).run()")
    res = r.execute_command("RG.GETRESULTSBLOCKING", eid)
    assert len(res) == 2 and sorted(res[0]) == ["a", "b"] and res[1] == [], res
    again = r.execute_command("RG.GETRESULTS", eid)
    assert len(again) == 2 and sorted(again[0]) == ["a", "b"] and again[1] == [], again
    assert r.execute_command("RG.DROPEXECUTION", eid) == "OK"


def test_execution_ids_increase(r):
    ids = [unblocking(r, gen_run([i])) for i in range(3)]
    seqs = [int(i.split("-")[1]) for i in ids]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3, ids
    for eid in ids:
        r.execute_command("RG.GETRESULTSBLOCKING", eid)
        assert r.execute_command("RG.DROPEXECUTION", eid) == "OK"


def test_unblocking_errors_are_bulk_strings(r):
    eid = unblocking(r, gen_run([1, 0], ".map(lambda x: 1/x)"))
    res = r.execute_command("RG.GETRESULTSBLOCKING", eid)
    assert res[0] == ["1.0"]
    assert len(res[1]) == 1 and isinstance(res[1][0], str) and "ZeroDivisionError" in res[1][0]
    r.execute_command("RG.DROPEXECUTION", eid)


def test_dumpexecutions_lists_done_execution(r):
    eid = unblocking(r, gen_run([1]))
    r.execute_command("RG.GETRESULTSBLOCKING", eid)
    entries = r.execute_command("RG.DUMPEXECUTIONS")
    assert ["executionId", eid, "status", "done", "registered", 0] in entries, entries
    r.execute_command("RG.DROPEXECUTION", eid)
    assert eid not in dump(r)


# ---------------------------------------------------------------- RG.GETEXECUTION

def test_getexecution_plan(r):
    r.mset({"a": "1", "b": "2"})
    eid = unblocking(r, "GB().map(lambda r: r['key']).run()")
    r.execute_command("RG.GETRESULTSBLOCKING", eid)
    res = r.execute_command("RG.GETEXECUTION", eid)
    plan = check_plan(res)
    assert res[0][3][1] == "done"
    assert res[0][3][9] == []
    assert plan[7] == 2  # number of results
    steps = plan[15]
    types = [st[1] for st in steps]
    assert types[0] == "collect", types  # listed from the last step to the first
    assert types.count("map") >= 2, types
    assert any("<lambda>" in st[7] and st[7].startswith("<function") for st in steps), steps
    assert all(st[3] == 0 for st in steps), steps  # ProfileExecutions is 0
    check_plan(r.execute_command("RG.GETEXECUTION", eid, "SHARD"))
    check_plan(r.execute_command("RG.GETEXECUTION", eid, "shard"))
    r.execute_command("RG.DROPEXECUTION", eid)


def test_getexecution_as_redisgears_standalone(r):
    eid = unblocking(r, "GB('ShardsIDReader').map(lambda x: x).run()")
    r.execute_command("RG.GETRESULTSBLOCKING", eid)
    plan = r.execute_command("RG.GETEXECUTION", eid)[0][3]
    # ep->totalShardsRecieved / totalShardsCompleted are only counted in cluster mode.
    assert plan[3] == 0 and plan[5] == 0
    # Only the flat steps (array_len(ep->fep->steps)): no reader step.
    assert "reader" not in [st[1] for st in plan[15]], plan[15]
    # The id is looked up first; then the subcommand.
    assert cmd_err(r, "RG.GETEXECUTION", MISSING_ID, "CLUSTER") == NO_PLAN
    assert cmd_err(r, "RG.GETEXECUTION", eid, "CLUSTER") == \
        "no cluster detected - use `RG.GETEXECUTION <id> [SHARD]` instead"
    assert cmd_err(r, "RG.GETEXECUTION", eid, "bogus") == "unknown subcommand"
    # Command_GetResults only checks argc < 2.
    assert r.execute_command("RG.GETRESULTS", eid, "extra", "args") == r.execute_command("RG.GETRESULTS", eid)
    assert cmd_err(r, "RG.GETRESULTS", MISSING_ID, "x") == NO_PLAN
    r.execute_command("RG.DROPEXECUTION", eid)


def test_getresults_of_a_registered_execution(clean):
    r = clean
    assert pyexec(r, "GB().map(lambda x: x['key']).register(prefix='gr:*', mode='sync')") == "OK"
    assert pyexec(r, "GB().map(lambda x: 1/0).register(prefix='ge:*', mode='sync')") == "OK"
    r.set("gr:1", "v")
    r.set("ge:1", "v")
    registered = [e[1] for e in r.execute_command("RG.DUMPEXECUTIONS") if e[5] == 1]
    replies = [r.execute_command("RG.GETRESULTS", eid) for eid in registered]
    # The host lists what the flow gave; RedisGears' results are str(record) ("gr:1" here),
    # which needs the guest to send a key event's records (it sends none yet).
    assert len(replies) == 2 and ([[], []] in replies or [["gr:1"], []] in replies), replies
    [failed] = [x for x in replies if x[1]]
    assert failed[0] == [] and len(failed[1]) == 1 and "ZeroDivisionError" in failed[1][0], failed
    for eid in registered:
        r.execute_command("RG.DROPEXECUTION", eid)


def test_getexecution_reports_errors(r):
    eid = unblocking(r, gen_run([0], ".map(lambda x: 1/x)"))
    r.execute_command("RG.GETRESULTSBLOCKING", eid)
    res = r.execute_command("RG.GETEXECUTION", eid)
    plan = check_plan(res)
    assert plan[1] == "done" and plan[7] == 0
    assert len(res[0][3][9]) == 1 and "ZeroDivisionError" in res[0][3][9][0]
    r.execute_command("RG.DROPEXECUTION", eid)


def test_getexecution_bad_subcommand(r):
    eid = unblocking(r, gen_run([1]))
    r.execute_command("RG.GETRESULTSBLOCKING", eid)
    assert "unknown" in cmd_err(r, "RG.GETEXECUTION", eid, "BOGUS").lower()
    assert "no cluster detected" in cmd_err(r, "RG.GETEXECUTION", eid, "CLUSTER")
    r.execute_command("RG.DROPEXECUTION", eid)


# ---------------------------------------------------------------- dropping and unknown ids

def test_dropexecution(r):
    eid = unblocking(r, gen_run([1]))
    r.execute_command("RG.GETRESULTSBLOCKING", eid)
    assert r.execute_command("RG.DROPEXECUTION", eid) == "OK"
    assert NO_PLAN in cmd_err(r, "RG.GETRESULTS", eid)
    assert NO_PLAN in cmd_err(r, "RG.DROPEXECUTION", eid)
    assert eid not in dump(r)


def test_abort_of_done_execution_is_ok(r):
    eid = unblocking(r, gen_run([1]))
    assert r.execute_command("RG.GETRESULTSBLOCKING", eid) == [["1"], []]
    assert r.execute_command("RG.ABORTEXECUTION", eid) == "OK"
    assert r.execute_command("RG.DROPEXECUTION", eid) == "OK"


@pytest.mark.parametrize("eid", [MISSING_ID, "no-such-execution"])
@pytest.mark.parametrize("command", ["RG.GETRESULTS", "RG.GETRESULTSBLOCKING", "RG.GETEXECUTION",
                                     "RG.DROPEXECUTION"])
def test_unknown_execution_id(r, command, eid):
    assert NO_PLAN in cmd_err(r, command, eid)


@pytest.mark.parametrize("eid", [MISSING_ID, "no-such-execution"])
def test_abort_unknown_execution(r, eid):
    err = cmd_err(r, "RG.ABORTEXECUTION", eid)
    assert "execution does not exist" in err


@pytest.mark.parametrize("args", [
    ("RG.GETRESULTS",),
    ("RG.GETRESULTSBLOCKING",), ("RG.GETRESULTSBLOCKING", MISSING_ID, "x"),
    ("RG.DUMPEXECUTIONS", "x"),
    ("RG.GETEXECUTION",), ("RG.GETEXECUTION", MISSING_ID, "SHARD", "x"),
    ("RG.DROPEXECUTION",), ("RG.DROPEXECUTION", MISSING_ID, "x"),
    ("RG.ABORTEXECUTION",), ("RG.ABORTEXECUTION", MISSING_ID, "x"),
], ids=lambda a: "-".join(a))
def test_wrong_arity(r, args):
    assert "wrong number of arguments" in cmd_err(r, *args)


# ---------------------------------------------------------------- a running execution

def test_running_execution_abort_and_drop(make_server):
    srv = make_server("SandboxTimeLimitMS", "60000")
    r = srv.client()
    pinger = srv.client(socket_timeout=1)
    eid = unblocking(r, LOOP)
    assert wait_for(lambda: dump(r).get(eid) == "running", 10), dump(r)

    assert "execution is still running" in cmd_err(r, "RG.GETRESULTS", eid)
    assert "can not drop a not yet finished execution, abort it first." in \
        cmd_err(r, "RG.DROPEXECUTION", eid)
    plan = check_plan(r.execute_command("RG.GETEXECUTION", eid))
    assert plan[1] == "running" and plan[7] == -1 and plan[9] == [], plan
    for _ in range(3):
        t0 = time.monotonic()
        assert pinger.ping()
        assert time.monotonic() - t0 < 1.0
        time.sleep(0.05)
    assert dump(r).get(eid) == "running"  # still looping: the abort below is what stops it
    assert nsessions(r) >= 1

    assert r.execute_command("RG.ABORTEXECUTION", eid) == "OK"
    assert wait_for(lambda: dump(r).get(eid) == "aborted", 10), dump(r)
    res = r.execute_command("RG.GETRESULTS", eid)
    assert isinstance(res, list) and len(res) == 2, res
    assert res[0] == [] and len(res[1]) >= 1 and all(isinstance(e, str) for e in res[1]), res
    assert r.execute_command("RG.DROPEXECUTION", eid) == "OK"
    assert eid not in dump(r)
    assert wait_for(lambda: nsessions(r) == 0, 10), r.info("rg")
    assert r.ping()
    assert pyexec(r, gen_run([1])) == [["1"], []]


# ---------------------------------------------------------------- what is kept

def test_blocking_execution_is_not_kept(fresh_server):
    r = fresh_server.client()
    kept = unblocking(r, gen_run([1]))
    r.execute_command("RG.GETRESULTSBLOCKING", kept)
    assert pyexec(r, gen_run([2])) == [["2"], []]
    assert pyexec(r, "GB().run()") == [[], []]
    assert wait_for(lambda: list(dump(r)) == [kept], 5), dump(r)


def test_max_executions_evicts_oldest(fresh_server):
    r = fresh_server.client()
    assert r.execute_command("RG.CONFIGSET", "MaxExecutions", "3") == ["OK"]
    ids = []
    for i in range(5):
        eid = unblocking(r, gen_run([i]))
        assert r.execute_command("RG.GETRESULTSBLOCKING", eid) == [[str(i)], []]
        ids.append(eid)
    listed = dump(r)
    assert len(listed) <= 3, listed
    assert ids[0] not in listed and ids[1] not in listed, (ids, listed)
    assert ids[4] in listed, (ids, listed)
    assert NO_PLAN in cmd_err(r, "RG.GETRESULTS", ids[0])


# ---------------------------------------------------------------- sessions held by executions

def test_session_freed_after_blocking_run(fresh_server):
    r = fresh_server.client()
    r.set("a", "1")
    assert pyexec(r, "GB().map(lambda r: r['key']).run()") == [["a"], []]
    assert wait_for(lambda: nsessions(r) == 0, 5), r.info("rg")


def test_kept_execution_holds_its_session(fresh_server):
    r = fresh_server.client()
    eid = unblocking(r, gen_run([1]))
    assert r.execute_command("RG.GETRESULTSBLOCKING", eid) == [["1"], []]
    time.sleep(0.2)
    assert nsessions(r) >= 1
    assert r.execute_command("RG.DROPEXECUTION", eid) == "OK"
    assert wait_for(lambda: nsessions(r) == 0, 5), r.info("rg")


# ---------------------------------------------------------------- parallelism

SPIN = ("import time\n"
        "def spin(x):\n"
        "    t = time.time()\n"
        "    while time.time() - t < 1.5:\n"
        "        pass\n"
        "    return '%r %r' % (t, time.time())\n"
        + gen_run([1], ".map(spin)") + "\n")


def test_executions_run_in_parallel(server):
    r = server.client()
    assert r.execute_command("RG.CONFIGGET", "ExecutionThreads")[0] >= 2
    ids, errors = [None, None], []
    barrier = threading.Barrier(2)

    def start(i):
        c = server.client()
        try:
            barrier.wait(10)
            ids[i] = pyexec(c, SPIN, "UNBLOCKING")
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=start, args=(i,), daemon=True) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == [] and all(ids), (errors, ids)
    intervals = []
    for eid in ids:
        res = r.execute_command("RG.GETRESULTSBLOCKING", eid)
        assert res[1] == [] and len(res[0]) == 1, res
        t0, t1 = (float(v) for v in res[0][0].split())
        assert t1 - t0 >= 1.5
        intervals.append((t0, t1))
        assert r.execute_command("RG.DROPEXECUTION", eid) == "OK"
    # measured overlap: each started before the other one ended
    assert max(s for s, _ in intervals) < min(e for _, e in intervals), intervals


# ---------------------------------------------------------------- MULTI

def test_run_refused_inside_multi(r):
    pipe = r.pipeline(transaction=True)
    pipe.execute_command("RG.PYEXECUTE", gen_run([1]))
    pipe.execute_command("RG.PYEXECUTE", gen_run([1]), "UNBLOCKING")
    pipe.set("after", "1")
    res = pipe.execute(raise_on_error=False)
    for reply in res[:2]:
        assert isinstance(reply, redis.exceptions.ResponseError), res
        assert REFUSED in str(reply)
    assert r.get("after") == "1"
