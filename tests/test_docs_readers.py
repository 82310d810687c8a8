"""RedisGears 1.2's documentation examples, run unchanged: readers.md, functions.md and runtime.md (conventions: docs_helpers.py)."""
import ast
import time

import pytest

from conftest import as_dict, pyexec, pyexec_err, wait_for
from docs_helpers import ZERO_ID, run_ok, reg_data, rec, FOO, in_thread


# ---------------------------------------------------------------------------------------------
# readers.md

def test_readers_keysreader_batch(clean):
    # readers.md "KeysReader" batch example, snippet readers/keysreader-run.py
    clean.mset({"foo": "1", "foobar": "2", "bar": "3"})
    script = ("# KeysReader will return any key matching the glob pattern 'foo*'\n"
              "gb = GB('KeysReader')\ngb.run('foo*')")
    assert sorted(run_ok(clean, script)) == sorted([rec("foo", "1", "string"),
                                                    rec("foobar", "2", "string")])


def test_readers_keysreader_event(clean):
    # readers.md "KeysReader" event example, snippet readers/keysreader-register.py. The comment
    # says "keys prefixed by 'bar'", but 1.2's keys_reader.c KeysReader_IsKeyMatch treats the
    # prefix as a prefix only when it ends with '*' (else strcmp): register('bar') fires for
    # the key named exactly 'bar' (of type string or hash). That is asserted.
    script = ("# KeysReader will trigger for keys prefixed by 'bar' of type 'string' or 'hash'\n"
              "gb = GB('KeysReader')\ngb.register('bar', keyTypes=['string', 'hash'])")
    assert pyexec(clean, script) == "OK"
    data = reg_data(clean)
    assert as_dict(data["args"])["regex"] == "bar"
    assert sorted(as_dict(data["args"])["keyTypes"]) == ["hash", "string"]
    clean.set("bar1", "x")        # not the key 'bar'
    clean.lpush("barl", "x")
    clean.set("bar", "x")         # fires
    assert wait_for(lambda: reg_data(clean)["numSuccess"] == 1, 10)
    clean.delete("bar")           # (a 'del' event on a now missing key: not counted below)
    clean.lpush("bar", "x")       # a list: filtered out by keyTypes
    time.sleep(0.3)
    before = reg_data(clean)["numTriggered"]
    clean.delete("bar")
    clean.hset("bar", "f", "v")   # a hash: fires
    assert wait_for(lambda: reg_data(clean)["numTriggered"] == before + 1, 10)
    time.sleep(0.3)
    assert reg_data(clean)["numTriggered"] == before + 1


def test_readers_keysonlyreader(clean):
    # readers.md "KeysOnlyReader": run(pattern='*', count=1000, noScan=False, ...)
    clean.mset({"x": "1", "y": "2", "z": "3"})
    assert sorted(run_ok(clean, "GB('KeysOnlyReader').run()")) == ["x", "y", "z"]
    assert run_ok(clean, "GB('KeysOnlyReader').run('y', noScan=True)") == ["y"]


def test_readers_streamreader_batch(clean):
    # readers.md "StreamReader" batch example, snippet readers/streamreader-run.py: records
    # with 'key', 'id' and 'value' (the message's fields)
    id1 = clean.xadd("mystream", {"a": "1"})
    id2 = clean.xadd("mystream", {"b": "2", "c": "3"})
    script = ("# This StreamReader will read all messages from the Stream 'mystream'\n"
              "gb = GB('StreamReader')\ngb.run('mystream')\n")
    assert [ast.literal_eval(x) for x in run_ok(clean, script)] == [
        {"key": "mystream", "id": id1, "value": {"a": "1"}},
        {"key": "mystream", "id": id2, "value": {"b": "2", "c": "3"}}]


def test_readers_streamreader_event(clean):
    # readers.md "StreamReader" event example, snippet readers/streamreader-register.py. The
    # comment says "'iot:'-prefixed keys", but 1.2's streams_reader.c StreamReader_IsKeyMatch
    # (like the KeysReader) only treats a trailing '*' as a prefix: register('iot:') reads the
    # stream named exactly 'iot:'. trimStream=True (the default) trims what was processed.
    script = ("# StreamReader will be triggered on new messages in 'iot:'-prefixed keys\n"
              "gb = GB('StreamReader')\ngb.register('iot:')")
    assert pyexec(clean, script) == "OK"
    clean.xadd("iot:1", {"temp": "20"})     # another key: not read
    clean.xadd("iot:", {"temp": "21"})
    # Two runs, as 1.2 counts them: the new stream's read of unacknowledged entries (none),
    # then the entry (streams_reader.c SingleStreamReaderCtx_Create).
    assert wait_for(lambda: reg_data(clean)["numSuccess"] == 2, 10)
    assert wait_for(lambda: clean.xlen("iot:") == 0, 5)
    time.sleep(0.3)
    assert reg_data(clean)["numTriggered"] == 2 and clean.xlen("iot:1") == 1


def test_readers_pythonreader(clean):
    # readers.md "PythonReader", snippet readers/pythonreader-run.py: 6379 records
    script = ("# This PythonReader will generate 6379 records\n"
              "def generator():\n    for x in range(6379):\n        yield x\n\n"
              "gb = GB('PythonReader')\ngb.run(generator)\n")
    res = run_ok(clean, script)
    assert sorted(res, key=int) == [str(i) for i in range(6379)]


def test_readers_pythonreader_generator_with_arguments(clean):
    # readers.md "PythonReader", snippet readers/pythonreader-run-002.py: 42 records
    script = ("# This PythonReader will generate 42 records by creating a generator function\n"
              "def createGenerator(count=6379):\n"
              "    def generator():\n"
              "        nonlocal count\n"
              "        for x in range(count):\n"
              "            yield x\n"
              "    return generator\n\n"
              "gb = GB('PythonReader')\ngb.run(createGenerator(count=42))\n")
    assert sorted(run_ok(clean, script), key=int) == [str(i) for i in range(42)]


def test_readers_shardsidreader(clean):
    # readers.md "ShardsIDReader", snippet readers/shardidreader-run.py. The snippet spells the
    # reader 'ShardIDReader'; 1.2's GearsBuilder only maps 'ShardsIDReader' (and
    # 'KeysOnlyReader') to the PythonReader, so gearsCtx('ShardIDReader') fails with
    # "reader does not exists". With the documented name it gives the standalone id '1'
    # (shardReaderCallback: RG.INFOCLUSTER says 'no cluster mode').
    script = "gb = GB('ShardIDReader')\ngb.map(lambda x: f'My Shard ID is {x}')\ngb.run()"
    assert "reader does not exists" in pyexec_err(clean, script)
    assert run_ok(clean, script.replace("ShardIDReader", "ShardsIDReader")) == [
        "My Shard ID is 1"]


def test_readers_commandreader(clean):
    # readers.md "CommandReader", snippet readers/commandreader-register.py and
    # RG.TRIGGER CountVonCount bat bat -> 1) "CountVonCount got 2 arguments! Ah ah ah!"
    script = ("# This CommandReader will return the number of arguments provided to it\n"
              "gb = GB('CommandReader')\n"
              "gb.map(lambda x: f'{x[0]} got {len(x)-1} arguments! Ah ah ah!')\n"
              "gb.register(trigger='CountVonCount')\n")
    assert pyexec(clean, script) == "OK"
    assert clean.execute_command("RG.TRIGGER", "CountVonCount", "bat", "bat") == [
        "CountVonCount got 2 arguments! Ah ah ah!"]


# ---------------------------------------------------------------------------------------------
# functions.md

def test_functions_context_builder_examples(clean):
    # functions.md "Context Builder" examples and snippets functions/run.py, register.py
    assert pyexec(clean, "# Here's how to run the default context builder:\n"
                         "GearsBuilder().run()\n") == [[], []]
    assert pyexec(clean, "# Runs the function\ngb = GB()\ngb.run()\n") == [[], []]
    assert pyexec(clean, "# Registers the function\ngb = GB()\ngb.register()\n") == "OK"
    clean.set("x", "1")
    assert wait_for(lambda: reg_data(clean)["numSuccess"] == 1, 10)


def test_functions_run_multiple_executions_error(clean):
    # functions.md "Run", "Example: multiple executions error"
    err = pyexec_err(clean, "GB().run()\nGB().run()")
    assert "Can not run more then 1 executions in a single script" in err


def test_functions_execution_id(clean):
    # functions.md "Execution ID": stand-alone ids are 40 zeros, a hyphen and a sequence
    eid = pyexec(clean, "GB().run()", "UNBLOCKING")
    shard, _, seq = eid.partition("-")
    assert shard == ZERO_ID and seq.isdigit()
    clean.execute_command("RG.GETRESULTSBLOCKING", eid)


# ---------------------------------------------------------------------------------------------
# runtime.md

def test_runtime_execute(clean):
    # runtime.md "execute", snippet runtime/execute.py ("reply should be 'PONG'")
    script = "# Pings the server (reply should be 'PONG')\nreply = execute('PING')\n"
    assert pyexec(clean, script) == "OK"
    assert run_ok(clean, script + "GB('ShardsIDReader').map(lambda x: reply).run()") == ["PONG"]


def test_runtime_atomic(clean):
    # runtime.md "atomic", snippet runtime/atomic.py: increments {ht}:foo and {ht}:bar
    script = ("# Increments two keys atomically\n"
              "def transaction(_):\n"
              "    with atomic():\n"
              "        execute('INCR', f'{{{hashtag()}}}:foo')\n"
              "        execute('INCR', f'{{{hashtag()}}}:bar')\n\n"
              "gb = GB('ShardsIDReader')\ngb.foreach(transaction)\ngb.run()")
    assert run_ok(clean, script) == ["1"]
    [ht] = run_ok(clean, "GB('ShardsIDReader').map(lambda x: hashtag()).run()")
    assert clean.mget(f"{{{ht}}}:foo", f"{{{ht}}}:bar") == ["1", "1"]


def test_runtime_configget(clean):
    # runtime.md "configGet", snippet runtime/configget.py. The doc says it gets the current
    # value, but 1.2's code (RG_GetConfig -> GearsConfig_GetExtraConfigVals) reads only the
    # extra dictionary: None for a built-in key, the value once RG.CONFIGSET stored it there.
    script = "# Gets the current value for 'ProfileExecutions'\nfoo = configGet('ProfileExecutions')\n"
    assert pyexec(clean, script) == "OK"
    assert run_ok(clean, script + "GB('ShardsIDReader').map(lambda x: str(foo)).run()") == ["None"]
    clean.execute_command("RG.CONFIGSET", "MyAppKey", "7")
    script = "foo = configGet('MyAppKey')\n"
    assert run_ok(clean, script + "GB('ShardsIDReader').map(lambda x: foo).run()") == ["7"]


def test_runtime_gearsconfigget(clean):
    # runtime.md "gearsConfigGet", snippet runtime/gearsconfigget.py
    script = ("# Gets the 'foo' configuration option key and defaults to 'bar'\n"
              "foo = gearsConfigGet('foo', default='bar')\n")
    observe = "GB('ShardsIDReader').map(lambda x: foo).run()"
    assert run_ok(clean, script + observe) == ["bar"]


def test_runtime_hashtag(clean):
    # runtime.md "hashtag", snippet runtime/hashtag.py: a tag mapping to the shard's lowest slot
    script = "# Get the shard's hashtag\nht = hashtag()\n"
    assert pyexec(clean, script) == "OK"
    [ht] = run_ok(clean, script + "GB('ShardsIDReader').map(lambda x: ht).run()")
    assert isinstance(ht, str) and ht
    clean.set(f"{{{ht}}}:k", "v")   # usable as a hashtag
    assert clean.get(f"{{{ht}}}:k") == "v"


def test_runtime_log(clean, server):
    # runtime.md "log", snippet runtime/log.py: uses the deprecated Log(), which 1.2's
    # GearsBuilder.genDeprecated logs as a warning before logging the message at 'debug'
    clean.set("foo", "bar")
    script = ("# Dumps every datum in the DB to the log for \"debug\" purposes\n"
              "GB().foreach(lambda x: Log(str(x), level='debug')).run()\n")
    assert run_ok(clean, script) == [FOO]
    assert server.wait_for_log("Log is deprecated, use log instead")


def test_runtime_async_coroutine_map(clean):
    # runtime.md / snippet runtime/async.py: a coroutine map step sleeping 1 s
    script = ("import asyncio\n\nasync def c(r):\n    await asyncio.sleep(1)\n    return r\n\n"
              "GB('ShardsIDReader').map(c).run()")
    start = time.monotonic()
    assert run_ok(clean, script) == ["1"]
    assert time.monotonic() - start >= 0.9


def test_runtime_gears_future_wait_for_key_expiration(clean, server):
    # snippet runtime/gearsFuture.py (gearsFuture section of runtime.md on the 1.2 line):
    # RG.TRIGGER WaitForKeyExpiration k blocks until k expires and answers 'k expired'.
    # (The snippet's unblock() then evaluates blocked[key] after popping it: a KeyError in the
    # expired-event registration, after the waiting client was already released.)
    script = ("import time\nblocked = {}\n\n"
              "# Example of blocking a client until a key has expired\n\n"
              "def block(r):\n\tf = gearsFuture()\n\tkey = r[1]\n"
              "\tif key not in blocked.keys():\n\t\tblocked[key] = []\t\n"
              "\tblocked[key].append(f)\n\treturn f\n\n"
              "def unblock(r):\n\tres = 0\n\tkey = r['key']\n"
              "\tfutures = blocked.pop(key, None)\n\tif futures:\n"
              "\t\tres = len([f.continueRun('%s expired' % key) for f in futures])\n"
              "\t\tblocked[key]\n\treturn res\n\n"
              "GB('CommandReader').map(block).register(trigger='WaitForKeyExpiration', mode='sync')\n"
              "GB().map(unblock).register(eventTypes=['expired'], mode='sync')\n")
    assert pyexec(clean, script) == "OK"
    waiter = server.client()
    join = in_thread(lambda: waiter.execute_command("RG.TRIGGER", "WaitForKeyExpiration", "k"))
    time.sleep(0.3)
    clean.set("k", "v", px=100)
    assert join() == ["k expired"]
    data = reg_data(clean, "KeysReader")
    assert wait_for(lambda: reg_data(clean, "KeysReader")["numFailures"] == 1, 5), data
    assert "KeyError" in reg_data(clean, "KeysReader")["lastError"]
