"""Async inside sessions: gearsFuture, async def steps, await GB().run(), coroutines, and
what happens to waiting records on abort and unregister (spec §2.6-2.7)."""
import threading

import pytest
import redis

from conftest import as_dict, pyexec, pyexec_err, wait_for


def in_background(client, *command):
    """Sends `command` on its own connection; returns (thread, box with reply or error)."""
    box = {}

    def run():
        try:
            box["reply"] = client.execute_command(*command)
        except redis.ResponseError as e:
            box["error"] = str(e)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, box


def last_command(r, name):
    """The last command of the client called `name` (CLIENT LIST's cmd=), or None."""
    for line in r.execute_command("CLIENT", "LIST").splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        if fields.get("name") == name:
            return fields.get("cmd")
    return None


def status(r, eid):
    return r.execute_command("RG.GETEXECUTION", eid)[0][3][1]


def registration_stats(r, rid):
    for entry in r.execute_command("RG.DUMPREGISTRATIONS"):
        e = as_dict(entry)
        if e["id"] == rid:
            return as_dict(e["RegistrationData"])
    return None


FUTURE_PAIR = """
pending = []
def park(r):
    f = gearsFuture()
    pending.append(f)
    return f
GB('CommandReader').map(park).map(lambda x: 'got ' + x).register(trigger='wait')
def release(r):
    n = len(pending)
    while pending:
        pending.pop(0).continueRun(r[1])
    return n
GB('CommandReader').map(release).register(trigger='release')
"""


def test_a_future_is_completed_by_another_registration_of_the_script(server, clean):
    r = clean
    assert pyexec(r, FUTURE_PAIR) == "OK"
    wait_id = r.execute_command("RG.DUMPREGISTRATIONS")[0][1]
    t, box = in_background(server.client(), "RG.TRIGGER", "wait")
    # Counted as triggered once its record waits; its success only when it is done.
    assert wait_for(lambda: registration_stats(r, wait_id)["numTriggered"] == 1, 5)
    assert registration_stats(r, wait_id)["numSuccess"] == 0
    assert wait_for(lambda: r.execute_command("RG.TRIGGER", "release", "probe") == ["1"], 5)
    t.join(5)
    assert box == {"reply": ["got probe"]}
    stats = registration_stats(r, wait_id)
    assert (stats["numTriggered"], stats["numSuccess"], stats["numFailures"]) == (1, 1, 0)
    # Nothing waits any more: releasing finds no future.
    assert r.execute_command("RG.TRIGGER", "release", "x") == ["0"]


def test_a_key_event_record_waits_for_the_future_a_trigger_completes(server, clean):
    r = clean
    script = """
waiting = {}
def park(rec):
    waiting[rec['key']] = gearsFuture()
    return waiting[rec['key']]
GB().map(park).foreach(lambda v: execute('set', 'done:' + v[0], v[1])).register(prefix='job:*', mode='async_local')
def finish(args):
    f = waiting.pop(args[1], None)
    if f is None:
        return 'not yet'
    f.continueRun((args[1], args[2]))
    return 'ok'
GB('CommandReader').map(finish).register(trigger='finish')
"""
    assert pyexec(r, script) == "OK"
    r.set("job:1", "x")
    assert wait_for(lambda: r.execute_command("RG.TRIGGER", "finish", "job:1", "result") == ["ok"], 5, 0.05)
    assert wait_for(lambda: r.get("done:job:1") == "result", 5)


def test_async_def_steps_keep_the_record_order(r):
    script = """
import asyncio
async def slow_double(x):
    await asyncio.sleep(0.05)
    return x * 2
async def keep_even(x):
    await asyncio.sleep(0.01)
    return x % 4 == 0
seen = []
async def note(x):
    await asyncio.sleep(0.01)
    seen.append(x)
GB('PythonReader').map(slow_double).filter(keep_even).foreach(note).run(lambda: iter(range(8)))
"""
    assert pyexec(r, script) == [["0", "4", "8", "12"], []]


def test_async_aggregate_and_aggregateby(r):
    add = """
import asyncio
async def add(a, x):
    await asyncio.sleep(0.005)
    return a + x
async def add_by(k, a, x):
    await asyncio.sleep(0.005)
    return a + x
"""
    total = pyexec(r, add + "GB('PythonReader').aggregate(0, add, add).run(lambda: iter(range(10)))")
    assert total == [["45"], []]
    by = pyexec(r, add + "GB('PythonReader').aggregateby(lambda x: x % 2, 0, add_by, add_by)"
                ".map(lambda g: (g['key'], g['value'])).sort().run(lambda: iter(range(10)))")
    assert by == [["('0', 20)", "('1', 25)"], []]  # group keys are text, as in RedisGears 1.2


def test_errors_raised_in_coroutines_land_in_the_errors(r):
    script = """
import asyncio
async def f(x):
    await asyncio.sleep(0.01)
    if x == 1:
        raise ValueError('bad record %d' % x)
    return x
GB('PythonReader').map(f).run(lambda: iter(range(3)))
"""
    results, errors = r.execute_command("RG.PYEXECUTE", script)
    assert results == ["0", "2"]
    assert len(errors) == 1 and "ValueError: bad record 1" in errors[0]


def test_await_run_inside_a_coroutine(r):
    script = """
async def nested(_):
    res, errs = await GB('PythonReader').map(lambda x: x * 10).run(lambda: iter(range(3)))
    return '%s/%s' % (','.join(res), len(errs))
GB('ShardsIDReader').map(nested).run()
"""
    assert pyexec(r, script) == [["0,10,20/0"], []]


def test_run_coroutine_create_future_and_set_results(r):
    script = """
import asyncio
def via_run_coroutine(x):
    f = gearsFuture()
    async def later():
        await asyncio.sleep(0.01)
        return 'rc-%s' % x
    runCoroutine(later(), f)
    return f
async def via_create_future(x):
    fut = createFuture()
    asyncio.get_running_loop().call_later(0.01, setFutureResults, fut, 'cf-%s' % x)
    return await fut
async def via_exception(x):
    fut = createFuture()
    setFutureException(fut, 'failed-%s' % x)
    return await fut
GB('PythonReader').map(via_run_coroutine).map(lambda v: v).run(lambda: iter(['a']))
"""
    assert pyexec(r, script) == [["rc-a"], []]
    assert pyexec(r, script.replace("map(via_run_coroutine)", "map(via_create_future)")) == [["cf-a"], []]
    reply = r.execute_command("RG.PYEXECUTE", script.replace("map(via_run_coroutine)", "map(via_exception)"))
    assert reply[0] == [] and "failed-a" in reply[1][0]


def test_future_misuse_errors(server, clean):
    r = clean
    assert "Future object can only be created inside certain execution steps" in pyexec_err(r, "gearsFuture()")
    twice = "GB('PythonReader').map(lambda x: (gearsFuture(), gearsFuture())).run(lambda: iter([1]))"
    reply = r.execute_command("RG.PYEXECUTE", twice)
    assert "Can not create async record twice on the same step" in reply[1][0]
    script = """
import asyncio
async def locked(x):
    with atomic():
        await asyncio.sleep(0.01)
    return x
GB('PythonReader').map(locked).run(lambda: iter([1]))
"""
    reply = r.execute_command("RG.PYEXECUTE", script)
    assert reply[0] == [] and reply[1] == ["await is not allow inside atomic block"]
    assert r.ping()


def test_is_async_allow_and_no_async_inside_multi(server, clean):
    r = clean
    script = """
execute('set', 'top', str(isAsyncAllow()))
def park(rec):
    execute('set', 'allowed:' + rec['key'], str(isAsyncAllow()))
    return gearsFuture()
GB().map(park).register(prefix='m:*', mode='sync')
"""
    assert pyexec(r, script) == "OK"
    assert r.get("top") == "False"
    rid = r.execute_command("RG.DUMPREGISTRATIONS")[0][1]
    pipe = r.pipeline(transaction=True)
    pipe.set("m:1", "x")
    assert pipe.execute() == [True]
    assert r.get("allowed:m:1") == "False"
    stats = registration_stats(r, rid)
    assert "Creating async record is not allow" in stats["lastError"]
    # Outside MULTI the same registration may go async; nothing keeps the future, so its
    # record fails as in 1.2 (a PyFuture freed without a continue).
    r.set("m:2", "x")
    assert r.get("allowed:m:2") == "True"
    assert wait_for(lambda: registration_stats(r, rid)["numFailures"] == 2)
    assert "Async record did not called continue" in registration_stats(r, rid)["lastError"]


def test_a_sync_registration_that_goes_async_continues_after_the_command(server, clean):
    r = clean
    script = """
import asyncio
async def later(rec):
    await asyncio.sleep(1)
    execute('set', 'after:' + rec['key'], 'yes')
GB().foreach(later).register(prefix='s:*', mode='sync')
"""
    assert pyexec(r, script) == "OK"
    assert r.set("s:1", "v")
    assert r.get("after:s:1") is None  # the command did not wait for the coroutine
    assert wait_for(lambda: r.get("after:s:1") == "yes", 5)


def test_the_client_of_commands_waits_for_async_records(server, clean):
    r = clean
    script = """
import asyncio
async def slow(rec):
    await asyncio.sleep(0.2)
    execute('set', 'seen:' + rec['key'], '1')
GB().foreach(slow).register(prefix='h:*', commands=['hset'], mode='async_local')
"""
    assert pyexec(r, script) == "OK"
    assert r.hset("h:1", "f", "v") == 1
    assert r.get("seen:h:1") == "1"  # written before the client got its reply


def test_other_sessions_and_redis_keep_running_while_one_waits(server, clean):
    r = clean
    assert pyexec(r, FUTURE_PAIR) == "OK"
    t, box = in_background(server.client(), "RG.TRIGGER", "wait")
    for i in range(20):
        assert r.set(f"k{i}", i)
        assert pyexec(r, "GB('ShardsIDReader').map(lambda x: 'other').run()") == [["other"], []]
    assert r.ping()
    assert box == {}  # still waiting
    assert wait_for(lambda: r.execute_command("RG.TRIGGER", "release", "now") == ["1"], 5)
    t.join(5)
    assert box == {"reply": ["got now"]}


def test_abort_a_waiting_execution(server, clean):
    r = clean
    script = """
kept = []  # a future nobody keeps fails its record at once (1.2's PyFuture dealloc)
def park(x):
    kept.append(gearsFuture())
    return kept[-1]
GB('PythonReader').map(park).run(lambda: iter([1, 2]))
"""
    before = r.info("rg")["rg_nsessions"]
    eid = r.execute_command("RG.PYEXECUTE", script, "UNBLOCKING")
    assert wait_for(lambda: status(r, eid) == "running", 5)
    assert r.execute_command("RG.ABORTEXECUTION", eid) == "OK"
    # Ends at once if its records wait; within a tick if it was still in the guest.
    assert wait_for(lambda: status(r, eid) == "aborted", 5)
    results, errors = r.execute_command("RG.GETRESULTS", eid)
    assert results == [] and errors == ["Execution was aborted (forced stop)"]
    assert r.execute_command("RG.DROPEXECUTION", eid) == "OK"
    assert wait_for(lambda: r.info("rg")["rg_nsessions"] == before, 5)


def test_unregister_abortpending_fails_waiting_records_and_frees_the_session(server, clean):
    r = clean
    before = r.info("rg")["rg_nsessions"]
    script = """
kept = []
def park(x):
    execute('set', 'parked', '1')
    kept.append(gearsFuture())
    return kept[-1]
GB('CommandReader').map(park).register(trigger='never')
"""
    assert pyexec(r, script) == "OK"
    rid = r.execute_command("RG.DUMPREGISTRATIONS")[0][1]
    t, box = in_background(server.client(), "RG.TRIGGER", "never")
    assert wait_for(lambda: r.get("parked") == "1", 5)
    assert box == {}
    assert r.execute_command("RG.UNREGISTER", rid, "abortpending") == "OK"
    t.join(5)
    assert box == {"error": "Execution was aborted (forced stop)"}
    assert registration_stats(r, rid) is None
    assert wait_for(lambda: r.info("rg")["rg_nsessions"] == before, 5)


def test_an_async_time_event_callback(server, clean):
    r = clean
    script = """
import asyncio
async def tick():
    await asyncio.sleep(0.05)
    execute('incr', 'ticks')
registerTE(1, tick)
"""
    assert pyexec(r, script, "ID", "te-async") == "OK"
    assert wait_for(lambda: int(r.get("ticks") or 0) >= 1, 5)


def test_a_runaway_coroutine_ends_its_execution_with_the_time_limit(limited_server):
    r = limited_server.client()
    script = """
import asyncio
async def spin(x):
    await asyncio.sleep(0.01)
    while True:
        pass
GB('PythonReader').map(spin).run(lambda: iter([1]))
"""
    results, errors = r.execute_command("RG.PYEXECUTE", script)
    assert results == [] and "time limit" in errors[0], errors
    assert r.ping()
    assert r.execute_command("RG.PYEXECUTE", "GB('ShardsIDReader').map(lambda x: 'ok').run()") == [["ok"], []]


@pytest.mark.parametrize("mode", ["async", "sync"])
def test_a_hook_whose_step_waits_answers_when_it_is_done(server, clean, mode):
    r = clean
    script = """
import asyncio
async def later(x):
    await asyncio.sleep(0.05)
    return 'hooked ' + x[1]
GB('CommandReader').map(later).register(hook='get', keyprefix='ah:', mode='%s')
""" % mode
    assert pyexec(r, script) == "OK"
    assert r.get("ah:1") == "hooked ah:1"
    assert r.set("other", "v") and r.get("other") == "v"
    # Inside MULTI nothing may wait: the hooked command fails with the spec's error.
    pipe = r.pipeline(transaction=True)
    pipe.get("ah:2")
    with pytest.raises(redis.ResponseError, match="Creating async record is not allow"):
        pipe.execute()


def test_inorder_runs_one_after_the_other_in_arrival_order(server, clean):
    r = clean
    script = """
import asyncio
finished = []
async def step(x):
    await asyncio.sleep(0.25 - 0.05 * int(x[1]))  # later calls would finish first
    finished.append(x[1])
    return ','.join(finished)
GB('CommandReader').map(step).register(trigger='ordered', inorder=True)
"""
    assert pyexec(r, script) == "OK"
    calls = []
    for i in range(4):
        client = server.client()
        client.client_setname(f"ordered{i}")
        calls.append(in_background(client, "RG.TRIGGER", "ordered", str(i)))
        # Arrival order 0, 1, 2, 3: the next call goes only once this one reached the server.
        assert wait_for(lambda: last_command(r, f"ordered{i}") == "rg.trigger", 5)
    for t, _ in calls:
        t.join(10)
    assert [box["reply"] for _, box in calls] == [["0"], ["0,1"], ["0,1,2"], ["0,1,2,3"]]


def test_a_registration_alternating_waiting_and_immediate_records(server, clean):
    r = clean
    script = """
import asyncio
async def maybe_wait(x):
    if x[1] == 'wait':
        await asyncio.sleep(0.01)
    return x[1]
GB('CommandReader').map(maybe_wait).register(trigger='alt')
"""
    assert pyexec(r, script) == "OK"
    for word in ["wait", "now", "wait", "wait", "now", "now", "wait"]:
        assert r.execute_command("RG.TRIGGER", "alt", word) == [word]


def test_a_flow_run_inside_a_step_keeps_the_steps_future(r):
    script = """
async def value(v):
    return v
def before(x):
    f = gearsFuture()
    res, errs = GB('PythonReader').map(lambda y: y + 1).run(lambda: iter([1, 2])).result()
    runCoroutine(value('%s:%s' % (x, ','.join(res))), f)  # continues f once it was returned
    return f
def after(x):
    GB('PythonReader').run(lambda: iter([1]))
    f = gearsFuture()
    runCoroutine(value(x + '!'), f)
    return f
GB('PythonReader').map(before).map(after).run(lambda: iter(['a']))
"""
    assert pyexec(r, script) == [["a:2,3!"], []]
