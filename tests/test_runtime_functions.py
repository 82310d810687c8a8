"""atomic() and hashtag(): runtime functions a script and its flows call."""
import time

from conftest import pyexec, pyexec_err


def test_atomic_block_runs_its_commands(r):
    script = ("with atomic():\n"
              "    execute('set', 'a', '1')\n"
              "    with atomic():\n"  # re-entrant
              "        execute('incr', 'a')\n"
              "    execute('set', 'b', execute('get', 'a'))\n"
              "execute('set', 'after', 'yes')\n")
    assert pyexec(r, script) == "OK"
    assert r.mget("a", "b", "after") == ["2", "2", "yes"]
    assert r.ping()


def test_atomic_inside_a_flow_step(r):
    script = ("def step(x):\n"
              "    with atomic():\n"
              "        execute('incrby', 'total', x)\n"
              "    return x\n"
              "GB('PythonReader').map(step).run(lambda: (x for x in [1, 2, 3]))\n")
    reply = pyexec(r, script)
    assert sorted(reply[0]) == ["1", "2", "3"] and reply[1] == []
    assert r.get("total") == "6"


def test_error_inside_atomic_releases_the_lock(r):
    err = pyexec_err(r, "with atomic():\n    execute('set', 'x', '1')\n    raise ValueError('inside')\n")
    assert "ValueError" in err and "inside" in err
    assert r.get("x") == "1"
    assert r.ping()
    assert pyexec(r, "execute('set', 'y', '2')") == "OK"


def test_time_limit_inside_atomic_releases_the_lock(limited_server):
    r = limited_server.client()
    started = time.monotonic()
    err = pyexec_err(r, "with atomic():\n    while True:\n        pass\n")
    assert "time limit" in err
    assert time.monotonic() - started < 10
    # Redis was held for the block, and is free again once the deadline stopped it.
    assert r.ping()
    assert pyexec(r, "execute('set', 'free', '1')") == "OK"
    assert r.get("free") == "1"


def test_hashtag_is_slot_zero_tag_standalone(r):
    assert pyexec(r, "execute('set', 'tag', hashtag())") == "OK"
    assert r.get("tag") == "06S"
    assert pyexec(r, "import redisgears\nexecute('set', 'tag2', redisgears.getMyHashTag())") == "OK"
    assert r.get("tag2") == "06S"
