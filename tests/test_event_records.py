"""The record a KeysReader registration gets for a keyspace event. A `sync` run gets the key
as it is when the event fires (the host reads a string there and then, as RedisGears 1.2 reads
it with RM_OpenKey); an async run reads it when it runs. Either way the record is the same
dict, with the same types, and the ACL of the session's user decides what may be read."""
import pytest
import redis

from conftest import pyexec, wait_for

# Each registration notes repr() of its record under `seen:<mode>` (field: the key as text).
WATCH = """
def note(mode):
    def f(r):
        k = r['key'] if isinstance(r['key'], str) else r['key'].decode('latin-1')
        value = r.get('value')
        if isinstance(value, dict):
            value = sorted(value.items())
        execute('HSET', 'seen:' + mode.split('_')[0], k, repr((r['event'], r['key'], r.get('type'), type(value).__name__, value)))
        execute('RPUSH', 'log:' + mode.split('_')[0], repr(value))
    return f
# (Not keymiss: reading a deleted key on a worker causes one.)
EVENTS = ['set', 'hset', 'rpush', 'sadd', 'del']
GB().foreach(note(MODE)).register(prefix='ev:*', eventTypes=EVENTS, mode=MODE)
"""


def watch(r):
    """The sync and the async registration, each in a session of its own: a session busy with
    an async run on a worker would make a sync event wait for it (it is then queued)."""
    for mode in ("sync", "async_local"):
        assert pyexec(r, "MODE = %r\n" % mode + WATCH) == "OK"


def seen(r, mode, key):
    return r.hget("seen:" + mode, key)


def wait_both(r, key):
    assert wait_for(lambda: seen(r, "sync", key) and seen(r, "async", key)), (key, r.hgetall("seen:sync"))
    return seen(r, "sync", key), seen(r, "async", key)


def test_a_sync_run_sees_the_string_as_the_event_left_it(clean):
    r = clean
    watch(r)
    r.set("ev:s", "héllo")
    sync, later = wait_both(r, "ev:s")
    assert sync == "('set', 'ev:s', 'string', 'str', 'héllo')"
    assert sync == later
    # Within one MULTI the sync run sees each write's value; the async ones run after it.
    r.delete("log:sync", "log:async")
    pipe = r.pipeline(transaction=True)
    pipe.set("ev:m", "first").set("ev:m", "second")
    pipe.execute()
    assert wait_for(lambda: r.llen("log:async") == 2)
    assert r.lrange("log:sync", 0, -1) == ["'first'", "'second'"]
    assert r.lrange("log:async", 0, -1) == ["'second'", "'second'"]


def test_binary_and_other_types_read_as_an_async_run_reads_them(clean):
    r = clean
    raw = redis.Redis(port=r.connection_pool.connection_kwargs["port"])
    watch(r)
    raw.set(b"ev:b", b"v\xff\x00")
    sync, later = wait_both(r, "ev:b")
    assert sync == "('set', 'ev:b', 'string', 'bytearray', bytearray(b'v\\xff\\x00'))"
    assert sync == later
    r.hset("ev:h", mapping={"f": "1", "g": "2"})
    assert wait_both(r, "ev:h") == ("('hset', 'ev:h', 'hash', 'list', [('f', '1'), ('g', '2')])",) * 2
    r.rpush("ev:l", "a", "b")
    assert wait_both(r, "ev:l") == ("('rpush', 'ev:l', 'list', 'list', ['a', 'b'])",) * 2
    r.sadd("ev:set", "a")
    assert wait_both(r, "ev:set") == ("('sadd', 'ev:set', 'set', 'NoneType', None)",) * 2
    r.set("ev:gone", "x")
    wait_both(r, "ev:gone")
    r.delete("seen:sync", "seen:async")
    r.delete("ev:gone")
    assert wait_both(r, "ev:gone") == ("('del', 'ev:gone', 'empty', 'NoneType', None)",) * 2


def test_read_value_false_gives_only_event_and_key(clean):
    r = clean
    script = ("GB().foreach(lambda r: execute('SET', 'rec', repr(sorted(r.items()))))"
              ".register(prefix='nv:*', mode='sync', readValue=False)")
    assert pyexec(r, script) == "OK"
    r.set("nv:1", "x")
    assert r.get("rec") == "[('event', 'set'), ('key', 'nv:1')]"


@pytest.fixture
def no_get_user(fresh_server):
    """`typer` may run everything on ev:* but GET and LRANGE; the registrations are its own."""
    admin = fresh_server.client()
    admin.execute_command("ACL", "SETUSER", "typer", "reset", "on", "nopass", "+@all", "-get", "-lrange",
                          "~ev:*", "~seen:*", "~log:*")
    return admin, fresh_server.client(username="typer", password="x")


def test_a_sync_run_reads_no_value_its_user_may_not_get(no_get_user):
    admin, typer = no_get_user
    watch(typer)
    admin.set("ev:secret", "s3cret")
    sync, later = wait_both(admin, "ev:secret")
    # TYPE is allowed, GET is not: the same record as the user's own commands would read.
    assert sync == "('set', 'ev:secret', 'string', 'NoneType', None)"
    assert sync == later


def test_a_keys_reader_run_reads_only_what_its_user_may(no_get_user):
    admin, typer = no_get_user
    admin.set("ev:s", "v")
    admin.hset("ev:h", "f", "1")
    admin.rpush("ev:l", "a")
    admin.set("other", "hidden")  # outside the user's key patterns: not even its type
    script = "GB().map(lambda r: repr((r['key'], r['type'], r['value']))).run()"
    results, errors = pyexec(typer, script)
    assert errors == []
    assert sorted(results) == sorted(["('ev:s', 'string', None)",  # GET is refused
                                      "('ev:h', 'hash', {'f': '1'})",
                                      "('ev:l', 'list', None)",  # LRANGE is refused
                                      "('other', 'empty', None)"])
    # The admin (the default user) reads everything.
    results, errors = pyexec(admin, script)
    assert sorted(results) == sorted(["('ev:s', 'string', 'v')", "('ev:h', 'hash', {'f': '1'})",
                                      "('ev:l', 'list', ['a'])", "('other', 'string', 'hidden')"])
