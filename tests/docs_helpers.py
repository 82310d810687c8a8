"""Helpers of the tests that run RedisGears 1.2's documentation examples unchanged against
wasmgears (tests/test_docs_*.py).

Source: repository RedisGears/RedisGears, folder docs/ (1.2 line, e.g. commit 22f50d5 whose
src/version.h says 1.2.7). Each test names the doc file and section its example comes from;
the short example scripts are quoted as test data (most of them live in docs/snippets/<page>/).

Conventions
- What the docs print is asserted exactly where they print it. Where the docs print output
  produced by an older RedisGears (e.g. KeysReader records without 'type'/'event'), the test
  asserts what RedisGears 1.2's code gives instead and says so.
- KeysReader scans come in no particular order (the docs say so: "The order of elements in
  the reply may be different"), so such results are compared sorted.
- Examples that need a cluster, RG.PYEXECUTEREMOTE, the network, RedisJSON/RedisAI or a second
  Redis server are left out (intro "Cluster 101"/"Distributed Processing" cluster outputs,
  examples.md "Average on age field in json", miss_event.md's read-through parts).
"""
import ast
import threading

from conftest import as_dict, pyexec

ZERO_ID = "0" * 40


def run_ok(r, script, *args):
    """RG.PYEXECUTE of a flow that must give `[[results], []]`; returns the results."""
    reply = pyexec(r, script, *args)
    assert isinstance(reply, list) and len(reply) == 2, reply
    assert reply[1] == [], reply[1]
    return reply[0]


def run_err(r, script, *args):
    """RG.PYEXECUTE of a flow that must give `[[], [errors...]]`; returns the errors."""
    reply = pyexec(r, script, *args)
    assert isinstance(reply, list) and len(reply) == 2, reply
    assert reply[0] == [], reply[0]
    assert reply[1], reply
    return reply[1]


def dicts(results):
    """str() records parsed back to Python values, sorted by their repr."""
    return sorted((ast.literal_eval(x) for x in results), key=repr)


def registrations(r):
    return [as_dict(e) for e in r.execute_command("RG.DUMPREGISTRATIONS")]


def reg_data(r, reader=None):
    """RegistrationData of the only registration (of `reader`) as a dict."""
    regs = [e for e in registrations(r) if reader is None or e["reader"] == reader]
    assert len(regs) == 1, regs
    return as_dict(regs[0]["RegistrationData"])


def rec(key, value, type_, event=None):
    """A KeysReader record the way RedisGears 1.2 prints it (keys in Gears-dict order)."""
    return f"{{'event': {event!r}, 'key': {key!r}, 'type': {type_!r}, 'value': {value!r}}}"


def load_intro_persons(r, n=2):
    """intro.md data: `SET foo bar` and the `HSET person:N ...` commands (data.txt)."""
    persons = [("Rick Sanchez", 70), ("Morty Smith", 14), ("Summer Smith", 17),
               ("Beth Smith", 35), ("Shrimply Pibbles", 87)]
    r.set("foo", "bar")
    for i, (name, age) in enumerate(persons[:n], start=1):
        r.hset(f"person:{i}", mapping={"name": name, "age": age})


FOO = rec("foo", "bar", "string")
P1 = rec("person:1", {"age": "70", "name": "Rick Sanchez"}, "hash")
P2 = rec("person:2", {"age": "14", "name": "Morty Smith"}, "hash")


def in_thread(fn):
    """Starts fn() in a thread; returns a callable that joins it and gives its result/raises."""
    out = {}

    def target():
        try:
            out["value"] = fn()
        except Exception as e:  # handed back to the test
            out["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()

    def join(timeout=30):
        t.join(timeout)
        assert not t.is_alive(), "background command did not finish"
        if "error" in out:
            raise out["error"]
        return out["value"]

    return join
