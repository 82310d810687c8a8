"""Behaviour as RedisGears 1.2's own code has it (docs/fidelity-audit.md has the sources)."""
import time

import pytest
import redis

from conftest import pyexec, pyexec_err


def gen(values):
    return f"lambda: iter({values!r})"


EMPTY = ["count()", "aggregate(0, lambda a, r: a + r, lambda a, r: a + r)", "avg()", "sort()",
         "distinct()", "accumulate(lambda a, r: (a or 0) + 1)", "countby()"]


@pytest.mark.parametrize("ops", EMPTY)
def test_aggregates_over_no_records_give_no_record(clean, ops):
    # RedisGears' accumulator starts as no record: over nothing it emits nothing.
    assert pyexec(clean, f"GB().{ops}.run()") == [[], []]
    assert pyexec(clean, f"GB('PythonReader').{ops}.run({gen([])})") == [[], []]


def test_an_accumulator_that_returns_none_still_emits_it(clean):
    assert pyexec(clean, f"GB('PythonReader').accumulate(lambda a, r: None).run({gen([1, 2])})") == [["None"], []]


def test_group_keys_are_text(clean):
    script = f"GB('PythonReader').countby(lambda x: x % 2).map(lambda g: (g['key'], g['value'])).run({gen([1, 2, 3])})"
    assert sorted(pyexec(clean, script)[0]) == ["('0', 1)", "('1', 2)"]
    kinds = ("GB('PythonReader').groupby(lambda x: x % 2, lambda k, a, r: type(k).__name__)"
             f".map(lambda g: g['value']).run({gen([1, 2])})")
    assert pyexec(clean, kinds) == [["str", "str"], []]
    unhashable = f"GB('PythonReader').countby(lambda x: [x]).map(lambda g: g['key']).run({gen([1, 1])})"
    assert pyexec(clean, unhashable) == [["[1]"], []]


# ---- record order (docs/fidelity-audit.md §1): 1.2's flatmap pops a list from its end ----
# execution_plan.c ExecutionPlan_FlatMapNextRecord: `RedisGears_ListRecordPop(step->flatMap.pendings)`

def test_flatmap_emits_a_list_last_item_first(clean):
    assert pyexec(clean, f"GB('PythonReader').flatmap(lambda x: [x, x * 10]).run({gen([1, 2])})") == \
        [["10", "1", "20", "2"], []]


def test_sort_is_ascending_by_default_and_descending_with_reverse_false(clean):
    # RedisGears' own testSort: map(int).sort() over 0..99 is [str(i) for i in range(100)]
    assert pyexec(clean, f"GB('PythonReader').sort().run({gen([3, 1, 2])})") == [["1", "2", "3"], []]
    assert pyexec(clean, f"GB('PythonReader').sort(reverse=False).run({gen([3, 1, 2])})") == \
        [["3", "2", "1"], []]


def test_keys_only_reader_sort(clean):
    # RedisGears' testKeysOnlyReader
    for k in ("x", "z", "y"):
        clean.set(k, "1")
    assert pyexec(clean, "GB('KeysOnlyReader').sort().run()") == [["x", "y", "z"], []]


def test_limit_with_offset_over_a_flatmap(clean):
    # RedisGears' testLimitWithOffset: lpush l 1 2 3 4 5 -> the list is 5 4 3 2 1, popped 1 2 3 4 5
    clean.lpush("l", 1, 2, 3, 4, 5)
    assert pyexec(clean, "GB().flatmap(lambda x: x['value']).limit(1, 3).run()") == [["4"], []]


def test_limit_slices_and_a_negative_length_is_no_limit(clean):
    src = gen(list(range(10)))
    assert pyexec(clean, f"GB('PythonReader').limit(2, 4).run({src})") == [["4", "5"], []]
    assert pyexec(clean, f"GB('PythonReader').limit(-1).run({src})")[0] == [str(i) for i in range(10)]
    assert pyexec(clean, f"GB('PythonReader').limit(0).run({src})") == [[], []]
    assert "limit argument must be a number" in pyexec_err(clean, f"GB('PythonReader').limit('1').run({src})")


def test_distinct_then_sort(clean):
    assert pyexec(clean, f"GB('PythonReader').flatmap(lambda x: x).distinct().sort().run({gen([[3, 1], [2, 3]])})") == \
        [["1", "2", "3"], []]


def test_batchgroupby_emits_the_last_group_first(clean):
    script = f"GB('PythonReader').batchgroupby(lambda x: x % 2, lambda k, l: sum(l)).run({gen(list(range(10)))})"
    assert pyexec(clean, script) == [["{'key': '1', 'value': 25}", "{'key': '0', 'value': 20}"], []]


def test_aggregate_restarts_a_falsy_accumulator_from_zero(clean):
    # GearsBuilder.aggregate: seqOp(a if a else copy.deepcopy(zero), r); 0 * 0 is falsy again
    script = f"GB('PythonReader').aggregate(1, lambda a, r: a * r, lambda a, r: a * r).run({gen([0, 5])})"
    assert pyexec(clean, script) == [["5"], []]


# ---- grouping order: 1.2 lists groups in the order of its C dict (SipHash, zero seed) ----

def test_countby_order_and_shape(clean):
    # RedisGears' testCountBy shape: {'key': '100', 'value': 50}; order {'a','b'} -> b, a
    script = f"GB('PythonReader').countby().run({gen(['a', 'b', 'a'])})"
    assert pyexec(clean, script) == [["{'key': 'b', 'value': 1}", "{'key': 'a', 'value': 2}"], []]
    script = f"GB('PythonReader').countby(lambda x: x % 2).run({gen([1, 2, 3])})"
    assert pyexec(clean, script) == [["{'key': '1', 'value': 2}", "{'key': '0', 'value': 1}"], []]


def test_many_groups_all_come_out_once(clean):
    script = f"GB('PythonReader').countby(lambda x: x % 1000).run(lambda: iter(range(5000)))"
    res, errs = pyexec(clean, script)
    assert errs == [] and len(res) == 1000 and sorted(res) == sorted(
        "{'key': '%d', 'value': 5}" % i for i in range(1000))


# ---- the first error stops the reader (execution_plan.c ExecutionPlan_NextRecord) ----------

def test_first_error_stops_reading(clean):
    res, errs = pyexec(clean, f"GB('PythonReader').map(lambda x: 1 / x).run({gen([1, 0, 2])})")
    assert res == ["1.0"] and len(errs) == 1 and "ZeroDivisionError" in errs[0]
    script = f"GB('PythonReader').filter(lambda x: undefined if x == 2 else True).count().run({gen([1, 2, 3, 4])})"
    res, errs = pyexec(clean, script)
    assert res == ["1"] and len(errs) == 1 and "NameError" in errs[0]


def test_an_accumulator_that_fails_is_lost(clean):
    script = f"GB('PythonReader').accumulate(lambda a, r: 1 / 0 if r == 2 else (a or 0) + r).run({gen([1, 2, 3])})"
    res, errs = pyexec(clean, script)
    assert res == [] and len(errs) == 1


# ---- KeysReader records (keys_reader.c), as str() shows them ----------------------------

def test_keys_reader_record_key_order(clean):
    clean.set("x", "1")
    assert pyexec(clean, "GB().run()") == [["{'event': None, 'key': 'x', 'type': 'string', 'value': '1'}"], []]
    assert pyexec(clean, "GB().run(readValue=False)") == [["{'event': None, 'key': 'x'}"], []]


def test_hash_fields_in_gears_order(clean):
    # the documentation's {'age': '70', 'name': 'Rick Sanchez'}
    clean.hset("h", mapping={"name": "Rick Sanchez", "age": "70"})
    assert pyexec(clean, "GB().map(lambda r: str(r['value'])).run('h')") == [["{'age': '70', 'name': 'Rick Sanchez'}"], []]


def test_no_scan_on_a_missing_key_is_an_empty_record(clean):
    # RedisGears' testKeysReaderNoScan
    assert pyexec(clean, "GB().map(lambda x: x['type']).distinct().run('test', noScan=True)") == [["empty"], []]
    assert pyexec(clean, "GB('KeysOnlyReader').run('test', noScan=True)") == [[], []]


# ---- StreamReader run() (streams_reader.c: XREAD of the literal key) ----------------------

def test_stream_reader_from_id_is_exclusive(clean):
    clean.xadd("s", {"a": "1"}, id="1-1")
    clean.xadd("s", {"b": "2"}, id="2-1")
    assert pyexec(clean, "GB('StreamReader').map(lambda r: r['id']).run('s', fromId='1-1')") == [["2-1"], []]
    assert pyexec(clean, "GB('StreamReader').map(lambda r: r['id']).run('s')") == [["1-1", "2-1"], []]
    assert pyexec(clean, "GB('StreamReader').run('s', fromId='1-1')") == [["{'key': 's', 'id': '2-1', 'value': {'b': '2'}}"], []]


def test_stream_reader_errors_are_redis_own_words(clean):
    clean.xadd("s", {"a": "1"})
    clean.set("str", "x")
    assert pyexec(clean, "GB('StreamReader').run('s', fromId='x')") == \
        [[], ["ERR Invalid stream ID specified as stream command argument"]]
    assert pyexec(clean, "GB('StreamReader').run('str')") == \
        [[], ["WRONGTYPE Operation against a key holding the wrong kind of value"]]
    assert pyexec(clean, "GB('StreamReader').run('nosuch')") == [[], []]
    assert pyexec(clean, "GB('StreamReader').run('s*')") == [[], []]  # literal: no pattern


# ---- what scripts find, and how they fail -------------------------------------------------

def test_flat_error_raises_when_called(clean):
    assert pyexec(clean, "GB('ShardsIDReader').foreach(lambda x: flat_error('boom')).run()") == [[], ["boom"]]
    script = "def f(x):\n    raise flat_error('raised')\nGB('ShardsIDReader').foreach(f).run()"
    assert pyexec(clean, script) == [[], ["raised"]]


def test_script_globals_as_1_2_leaves_them(clean):
    script = "GB('ShardsIDReader').map(lambda x: __name__ + str(copy.copy(1)) + type(sys).__name__).run()"
    assert pyexec(clean, script) == [["not_main1module"], []]
    assert pyexec(clean, "if __name__ == '__main__':\n    execute('set', 'ran', '1')\n"
                         "GB('ShardsIDReader').run()") == [["1"], []]
    assert clean.get("ran") is None


def test_on_registered_failure_is_only_logged(clean, server):
    assert pyexec(clean, "GB().register(prefix='onreg:*', onRegistered=lambda: 1 / 0)") == "OK"
    assert len(clean.execute_command("RG.DUMPREGISTRATIONS")) == 1
    server.wait_for_log("onRegistered")


def test_log_with_two_positional_arguments_is_level_then_message(clean, server):
    assert pyexec(clean, "log('warning', 'two-args-log-line')\nGB('ShardsIDReader').run()") == [["1"], []]
    server.wait_for_log("two-args-log-line")
    err = str(pyexec_err(clean, "log('x', level='loud')"))
    assert "Log level should be one of the following : debug,verbose,notice,warning" in err


def test_nested_error_replies_are_text(clean):
    # 1.2's replyToPyList: an error inside an array is its text (Redis 7 adds "ERR " here)
    script = ("GB('ShardsIDReader').map(lambda x: execute('eval', \"return {1, redis.error_reply('x'), {err='y'}}\", '0'))"
              ".run()")
    assert pyexec(clean, script) == [["[1, 'ERR x', 'y']"], []]


def test_record_replies_as_1_2_sends_them(clean):
    script = f"GB('PythonReader').run(lambda: iter([bytearray(b'x'), '-', b'raw', 7]), convertToStr=False)"
    assert pyexec(clean, script) == [["PY RECORD", "-", "raw", 7], []]


def test_python_reader_repeats_a_value_that_is_not_a_generator(clean):
    assert pyexec(clean, "GB('PythonReader').limit(3).run(lambda: 'x')") == [["x", "x", "x"], []]


def test_keys_reader_registration_errors_in_1_2_words(clean):
    cases = {"eventTypes=1": "given eventTypes is not iterable",
             "eventTypes=[1]": "given event type is not string",
             "keyTypes=1": "given keyTypes is not iterable",
             "keyTypes=[1]": "given key type is not string",
             "keyTypes=['String']": "unknown key type",
             "readValue=1": "readValue is not boolean"}
    for args, text in cases.items():
        assert text in str(pyexec_err(clean, f"GB().register(prefix='e:*', {args})")), args


def test_event_types_are_kept_as_given(clean):
    assert pyexec(clean, "GB().foreach(lambda r: execute('incr', 'n')).register(prefix='ev:*', eventTypes=['SET'], mode='sync')") == "OK"
    clean.set("ev:1", "1")
    assert clean.get("n") == "1"
    dump = clean.execute_command("RG.DUMPREGISTRATIONS")[0]
    assert "SET" in str(dump)


def _plan_steps(client, script):
    eid = pyexec(client, script, "UNBLOCKING")
    client.execute_command("RG.GETRESULTSBLOCKING", eid)
    plan = client.execute_command("RG.GETEXECUTION", eid)[0][3]
    steps = dict(zip(plan[::2], plan[1::2]))["steps"]
    return [(dict(zip(s[::2], s[1::2]))["type"], dict(zip(s[::2], s[1::2]))["name"]) for s in steps]


def test_execution_plan_lists_1_2_steps_last_first(clean):
    # 1.2's RG.GETEXECUTION walks ep->fep->steps (no reader step), last step first
    assert _plan_steps(clean, "GB().map(lambda x: x).run()") == [
        ("collect", "collect"), ("map", "RedisGearsPy_PyCallbackMapper"),
        ("map", "RedisGearsPy_PyCallbackMapper"), ("map", "RedisGearsPy_ToPyRecordMapper")]
    assert [t for t, _ in _plan_steps(clean, "GB().flatmap(lambda x: [x]).groupby(lambda x: 1, lambda k, a, r: r)"
                                             ".limit(1).run()")] == [
        "collect", "map", "limit", "map", "accumulatebykey", "repartition", "extractkey", "flatmap", "map", "map"]


def test_execute_of_a_command_redis_refuses_raises_the_errno_text(clean):
    # 1.2 calls RedisModule_Call without "E": no reply, so gears.error(strerror(errno))
    for call, words in (("execute('nosuchcmd')", "No such file or directory"),
                        ("execute('client', 'nosuch')", "No such file or directory"),
                        ("execute('set', 'x')", "Invalid argument")):
        res, errs = pyexec(clean, f"GB('ShardsIDReader').map(lambda x: {call}).run()")
        assert res == [] and errs[0].endswith(f"gears.error: {words}\\n']"), (call, errs)
    res, errs = pyexec(clean, "GB('ShardsIDReader').map(lambda x: execute('incr', 'a', )).run()")
    assert res == ["1"]
    clean.set("s", "x")
    res, errs = pyexec(clean, "GB('ShardsIDReader').map(lambda x: execute('incr', 's')).run()")
    assert "gears.error: ERR value is not an integer or out of range" in errs[0]


@pytest.mark.parametrize("script, words", [
    ("GB('NoSuchReader')", "The given reader does not exists"),
    ("GB(desc=1)", "desc argument must be a string"),
    ("GB().register(mode=1)", "execution mode must be a string"),
    ("GB().register(onRegistered=1)", "OnRegistered argument must be a function"),
    ("GB('PythonReader').register()", "given reader does not exists or does not support register"),
    ("GB('CommandReader').register(hook='nosuchcommand')", "Can not override an unexisting command"),
    ("GB('CommandReader').register(hook='multi')", "Can not override a command which are not allowed inside a script"),
    ("GB('CommandReader').register(trigger='t', inorder=1)", "inorder argument is be boolean"),
    ("GB('StreamReader').register(batch='1')", "batch argument must be a number"),
    ("GB('StreamReader').register(duration='1')", "duration argument must be a number"),
    ("GB('StreamReader').register(onFailedRetryInterval='1')", "retryInterval argument must be a number"),
    ("GB('StreamReader').register(trimStream=1)", "pyTrimmStream argument must be a boolean"),
    ("GB('StreamReader').register(onFailedPolicy=1)", "onFailedPolicy must be a string (Continue/Abort/Retry)"),
    ("GB('StreamReader').register(onFailedPolicy='never')", "onFailedPolicy must be Continue/Abort/Retry"),
    ("GB('StreamReader').register(mode='sync', onFailedPolicy='Abort')",
     "ExecutionMode sync can only be combined with OnFailedPolicy Continue"),
    ("GB().groupby(1, lambda k, a, r: r)", "groupby extractor argument must be a function"),
    ("GB().batchgroupby(lambda r: r, 1)", "batchgroupby reducer argument must be a function"),
])
def test_builder_errors_in_1_2_words(clean, script, words):
    assert words in pyexec_err(clean, script)


def test_a_second_override_reply_in_1_2_words(clean):
    script = ("def f(r):\n    override_reply('a')\n    try:\n        override_reply('b')\n"
              "    except Exception as e:\n        execute('set', 'err', str(e))\n"
              "GB().foreach(f).register(prefix='ov:*', commands=['incr'], mode='sync')")
    assert pyexec(clean, script) == "OK"
    assert clean.execute_command("INCR", "ov:1") == "a"
    assert clean.get("err") == "Can only override reply once"


def test_gears_future_failures_and_async_refusals_in_1_2_words(clean):
    script = ("def f(x):\n    fut = gearsFuture()\n    fut.continueFailed(Exception('boom'))\n"
              "    try:\n        fut.continueRun(1)\n    except Exception as e:\n        execute('set', 'twice', str(e))\n"
              "    return fut\n"
              "GB('ShardsIDReader').map(f).run()")
    assert pyexec(clean, script) == [[], ["boom"]]  # continueFailed keeps str(x), verbatim
    assert clean.get("twice") == "Can not continue with the same future twice"
    script = ("async def k(x):\n    return 1\n"
              "GB('ShardsIDReader').groupby(k, lambda k, a, r: r).run()")
    res, errs = pyexec(clean, script)
    assert res == [] and "coroutine are not allow on extractor" in errs[0]


def test_hooks_chain_newest_first(clean):
    # 1.2 (command_hook.c): hooks of a command stack, newest first; call_next goes down the list
    older = ("def h(x):\n    return call_next(*x[1:] + ['older', '1'])\n"
             "GB('CommandReader').map(h).register(hook='hset', mode='sync')")
    newer = ("def h(x):\n    return call_next(*x[1:] + ['newer', '1'])\n"
             "GB('CommandReader').map(h).register(hook='hset', mode='sync')")
    assert pyexec(clean, older) == "OK"
    assert pyexec(clean, newer) == "OK"
    assert clean.execute_command("HSET", "h", "f", "v") == "3"  # the flow str()s its result
    assert clean.hgetall("h") == {"f": "v", "older": "1", "newer": "1"}
    # a hook of another key prefix is skipped on the way down
    prefixed = ("def h(x):\n    return call_next(*x[1:] + ['prefixed', '1'])\n"
                "GB('CommandReader').map(h).register(hook='hset', keyprefix='p:', mode='sync')")
    assert pyexec(clean, prefixed) == "OK"
    assert clean.execute_command("HSET", "p:1", "f", "v") == "4"
    assert clean.execute_command("HSET", "q:1", "f", "v") == "3"
    assert "prefixed" not in clean.hgetall("q:1")


# ---------------------------------------------------------------- RG.* commands of RedisGears 1.2

def test_cluster_commands_standalone(r):
    # cluster.c Cluster_GetClusterInfo: `#define NO_CLUSTER_MODE_REPLY "no cluster mode"`, a bulk.
    assert r.execute_command("RG.INFOCLUSTER") == "no cluster mode"
    assert r.execute_command("RG.REFRESHCLUSTER") == "OK"
    script = ("GB('ShardsIDReader').map(lambda x: str((execute('RG.INFOCLUSTER'), "
              "execute('RG.REFRESHCLUSTER')))).run()")
    assert pyexec(r, script) == [["('no cluster mode', 'OK')"], []]


def test_commands_kept_for_compatibility(r):
    assert r.execute_command("RG.PYEXECUTEREMOTE", "x") == "Execute remote is not longer supported"
    assert r.execute_command("RG.PYFREEINTERPRETER") == "Free interpreter is not longer supported"
    # module.c Command_DumpPlugins: [name, version] per plugin.
    assert r.execute_command("RG.DUMPPLUGINS") == [["GearsPythonPlugin", 10000]]


def test_a_dropped_or_early_continued_future_fails_its_record_in_1_2_words(clean):
    # redisgears_python.c: a PyFuture freed before any continue fails its record with "Async
    # record did not called continue"; futureContinue before the step returned the future has
    # no continue type yet: "Can not handle future untill it returned from the callback".
    dropped = ("def f(r, *args):\n    f1 = gearsFuture()\n    return f1\n"
               "GB('CommandReader').map(f).register(trigger='dropped', mode='async_local')")
    assert pyexec(clean, dropped) == "OK"
    with pytest.raises(redis.ResponseError, match="Async record did not called continue"):
        clean.execute_command("RG.TRIGGER", "dropped")
    early = ("def f(r, *args):\n    f1 = gearsFuture()\n    f1.continueRun(r)\n    return f1\n"
             "GB('CommandReader').map(f).register(trigger='early', mode='async_local')")
    assert pyexec(clean, early) == "OK"
    with pytest.raises(redis.ResponseError, match="Can not handle future untill it returned from the callback"):
        clean.execute_command("RG.TRIGGER", "early")
    # a future kept somewhere still waits, and is continued later
    kept = ("waiting = []\ndef f(r, *args):\n    f1 = gearsFuture()\n    waiting.append(f1)\n    return f1\n"
            "def release(r):\n    [w.continueRun('later') for w in waiting]\n    return 'released'\n"
            "GB('CommandReader').map(f).register(trigger='kept', mode='async_local')\n"
            "GB('CommandReader').map(release).register(trigger='release', mode='async_local')")
    assert pyexec(clean, kept) == "OK"
    other = clean.connection_pool.get_connection()
    try:
        other.send_command("RG.TRIGGER", "kept")
        time.sleep(0.3)  # its record parked
        assert clean.execute_command("RG.TRIGGER", "release") == ["released"]
        assert other.read_response() in ([b"later"], ["later"])
    finally:
        clean.connection_pool.release(other)
