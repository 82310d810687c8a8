"""Registrations on every shard (issue #15): a registering script runs once, on the shard that got
it; every other master registers the same flows under the same ids (in a session with the same id)
before the client gets OK, or the client gets an array of `ERR shard-<id>: ...` errors (RedisGears
1.2: Command_Register applies a session's registrations on every shard). A KeysReader
registration fires on whichever shard owns the written key; RG.UNREGISTER on one shard removes it
everywhere."""
import os
import signal

import pytest
import redis

from cluster_helper import cluster_of  # noqa: F401 (a fixture)
from conftest import as_dict, pyexec, pyexec_err, wait_for


def registration_ids(node):
    return [as_dict(r)["id"] for r in node.client().execute_command("RG.DUMPREGISTRATIONS")]


def session_ids(node):
    return [as_dict(s)["ID"] for s in node.client().execute_command("RG.PYDUMPSESSIONS")]


def test_a_registration_exists_on_every_shard_with_the_same_ids(cluster_of):
    cluster = cluster_of(3)
    first = cluster.masters[1]
    c = first.client()
    # Its top level runs once: the counter is incremented on one shard only.
    script = ("execute('incr', 'ran{%s}' % hashtag())\n"
              "GB('CommandReader').map(lambda x: x[1:]).register(trigger='echo', mode='async_local')")
    assert pyexec(c, script, "ID", "s1") == "OK"
    ids = registration_ids(first)
    assert len(ids) == 1 and ids[0].startswith(first.node_id() + "-")
    for m in cluster.masters:
        assert registration_ids(m) == ids
        assert "s1" in session_ids(m)
        assert m.client().execute_command("RG.TRIGGER", "echo", "a", "b") == ["['a', 'b']"]
    rc = cluster.client()
    ran = [k for m in cluster.masters for k in m.client().keys("ran*")]
    assert len(ran) == 1 and rc.get(ran[0]) == "1"


def test_an_async_trigger_runs_on_every_shard(cluster_of):
    cluster = cluster_of(3)
    c = cluster.masters[0].client()
    # As in 1.2: an async registration's run is a distributed execution (the shard count);
    # async_local and sync ones stay on the shard the trigger came to.
    assert pyexec(c, "GB('CommandReader').count().register(trigger='shards')") == "OK"
    assert pyexec(c, "GB('CommandReader').count().register(trigger='here', mode='async_local')") == "OK"
    assert pyexec(c, "GB('CommandReader').map(lambda a: a[1]).register(trigger='args')") == "OK"
    for m in cluster.masters:
        t = m.client()
        assert t.execute_command("RG.TRIGGER", "shards") == ["3"]
        assert t.execute_command("RG.TRIGGER", "here") == ["1"]
        assert t.execute_command("RG.TRIGGER", "args", "x") == ["x", "x", "x"]
    stats = {as_dict(r)["id"]: as_dict(as_dict(r)["RegistrationData"]) for r in c.execute_command("RG.DUMPREGISTRATIONS")}
    assert sorted(s["numTriggered"] for s in stats.values()) == [1, 1, 1]  # each run counted where it began


def test_a_keys_registration_fires_on_the_shard_owning_the_key(cluster_of):
    cluster = cluster_of(3)
    c = cluster.masters[0].client()
    script = ("GB().filter(lambda r: not r['key'].endswith(':seen'))"
              ".foreach(lambda r: execute('set', r['key'] + ':seen', r['value']))"
              ".register(prefix='{user*', mode='sync')")
    assert pyexec(c, script) == "OK"
    rc = cluster.client()
    for i in range(60):
        rc.set("{user%d}" % i, i)
    assert all(rc.get("{user%d}:seen" % i) == str(i) for i in range(60))
    fired = [m.client().dbsize() for m in cluster.masters]
    assert all(n > 0 for n in fired) and sum(fired) == 120, fired


def test_unregister_on_one_shard_removes_it_everywhere(cluster_of):
    cluster = cluster_of(3)
    assert pyexec(cluster.masters[0].client(), "GB('CommandReader').register(trigger='gone')") == "OK"
    [rid] = registration_ids(cluster.masters[0])
    assert cluster.masters[2].client().execute_command("RG.UNREGISTER", rid) == "OK"
    for m in cluster.masters:
        assert wait_for(lambda: registration_ids(m) == [], 5), (m.port, registration_ids(m))
    with pytest.raises(redis.ResponseError, match="subcommand not found"):
        cluster.masters[1].client().execute_command("RG.TRIGGER", "gone")


def test_a_callback_that_cannot_be_shipped_registers_nothing(cluster_of):
    cluster = cluster_of(2)
    error = pyexec_err(cluster.masters[0].client(),
                       "g = (i for i in range(3))\nGB().map(lambda r: next(g)).register()")
    assert "Error occured when serialized a python callback" in error
    assert all(registration_ids(m) == [] for m in cluster.masters)


def test_a_shard_that_fails_or_does_not_answer_gives_the_array_of_errors(cluster_of):
    # The third master can hold one session only: the second registering script fails there.
    cluster = cluster_of(3, master_args=lambda i: ("MaxSessions", 1) if i == 2 else ())
    a, b, other = cluster.masters
    c = b.client()
    assert c.execute_command("RG.CONFIGSET", "PythonInstallReqMaxIdleTime", "1500")[0].startswith("OK")
    other_id = other.node_id()
    os.kill(other.pid, signal.SIGSTOP)
    try:
        reply = pyexec(c, "GB('CommandReader').register(trigger='t1')")
    finally:
        os.kill(other.pid, signal.SIGCONT)
    assert [str(e) for e in reply] == [f"shard-{other_id}: Execution max idle reached"]
    assert len(registration_ids(a)) == 1 and len(registration_ids(b)) == 1
    # The message waited for it: it registers t1 once it runs again.
    assert wait_for(lambda: registration_ids(other) == registration_ids(b), 10)
    # A shard that cannot apply them says why; the others keep what they applied (1.2 undoes
    # nothing either).
    reply = pyexec(c, "GB('CommandReader').register(trigger='t2')")
    assert len(reply) == 1 and str(reply[0]).startswith(f"shard-{other_id}: "), reply
    assert len(registration_ids(a)) == 2 and len(registration_ids(b)) == 2
    assert len(registration_ids(other)) == 1


def stream_status(node):
    [entry] = node.client().execute_command("RG.DUMPREGISTRATIONS")
    return as_dict(as_dict(entry)["RegistrationData"])["status"]


def test_pause_unpause_and_clear_stats_act_on_every_shard(cluster_of):
    cluster = cluster_of(3)
    c = cluster.masters[0].client()
    assert pyexec(c, "GB('StreamReader').foreach(lambda r: None).register(prefix='s*')") == "OK"
    [rid] = registration_ids(cluster.masters[0])
    assert cluster.masters[1].client().execute_command("RG.PAUSEREGISTRATIONS", rid) == "OK"
    for m in cluster.masters:
        assert wait_for(lambda: stream_status(m) == "PAUSED", 5), (m.port, stream_status(m))
    assert cluster.masters[2].client().execute_command("RG.UNPAUSEREGISTRATIONS", rid) == "OK"
    for m in cluster.masters:
        assert wait_for(lambda: stream_status(m) == "OK", 5)
    rc = cluster.client()
    for i in range(30):
        rc.xadd("s{%d}" % i, {"x": i})
    triggered = lambda m: as_dict(as_dict(m.client().execute_command("RG.DUMPREGISTRATIONS")[0])["RegistrationData"])["numTriggered"]
    assert wait_for(lambda: sum(triggered(m) for m in cluster.masters) >= 30, 10)
    assert c.execute_command("RG.CLEARREGISTRATIONSSTATS") == "OK"
    for m in cluster.masters:
        assert wait_for(lambda: triggered(m) == 0, 5)


def test_abort_of_a_distributed_run_ends_it_on_every_shard(cluster_of):
    cluster = cluster_of(2)
    a, b = cluster.masters
    c = a.client()
    # b's part sleeps: the run waits for it, and RG.ABORTEXECUTION ends it there and here.
    script = ("import time\n"
              "GB('ShardsIDReader').map(lambda x: (time.sleep(3) if x == %r else None, x)[1]).run()"
              % b.node_id())
    exec_id = pyexec(c, script, "UNBLOCKING")
    listed = lambda node: {e[1]: e[3] for e in node.client().execute_command("RG.DUMPEXECUTIONS")}
    assert wait_for(lambda: listed(b).get(exec_id) == "running", 5), listed(b)
    assert c.execute_command("RG.ABORTEXECUTION", exec_id) == "OK"
    results, errors = c.execute_command("RG.GETRESULTSBLOCKING", exec_id)
    assert results == [] and errors and "abort" in errors[0].lower()
    assert listed(a)[exec_id] == "aborted"
    assert wait_for(lambda: listed(b).get(exec_id) == "aborted", 5), listed(b)


def test_a_shard_restarted_empty_gets_the_registrations_back(cluster_of):
    cluster = cluster_of(3)
    a, b, c = cluster.masters
    assert pyexec(a.client(), "GB('CommandReader').count().register(trigger='back', mode='async_local')",
                  "ID", "keep") == "OK"
    ids = registration_ids(a)
    assert registration_ids(c) == ids
    c_id = c.node_id()
    c.restart_empty()
    assert c.node_id() == c_id and c.client().dbsize() == 0
    # Its peers greet it anew (another run id) and send what began on them.
    assert wait_for(lambda: registration_ids(c) == ids, 20), (registration_ids(c), c.log_tail())
    assert "keep" in session_ids(c)
    assert c.client().execute_command("RG.TRIGGER", "back") == ["1"]
    # The shards that kept theirs are left as they were (the same session, not replaced).
    assert registration_ids(b) == ids and session_ids(b).count("keep") == 1


def test_a_sessions_wheels_travel_with_it(cluster_of, tmp_path):
    wheels = os.environ.get("WASMGEARS_TEST_WHEELS")
    if not wheels:
        pytest.fail("WASMGEARS_TEST_WHEELS is not set (make test sets them)")
    empty = tmp_path / "empty-wheelhouse"
    empty.mkdir()
    # The third master's wheelhouse is empty: it gets `six` with the session, as in 1.2.
    cluster = cluster_of(3, master_args=lambda i: ("WheelhouseDir", wheels if i < 2 else empty))
    script = ("import six\n"
              "GB('CommandReader').map(lambda a: six.__version__).register(trigger='six', mode='async_local')")
    assert pyexec(cluster.masters[0].client(), script, "REQUIREMENTS", "six") == "OK"
    versions = {m.client().execute_command("RG.TRIGGER", "six")[0] for m in cluster.masters}
    assert len(versions) == 1
    assert [p.name for p in empty.iterdir() if p.name.startswith("six-")]


def test_upgrade_replaces_the_session_on_every_shard(cluster_of):
    cluster = cluster_of(3)
    c = cluster.masters[0].client()
    v1 = "GB('CommandReader').map(lambda a: 'v1').register(trigger='ver', mode='async_local')"
    v2 = "GB('CommandReader').map(lambda a: 'v2').register(trigger='ver', mode='async_local')"
    assert pyexec(c, v1, "ID", "app") == "OK"
    assert pyexec(cluster.masters[1].client(), v2, "ID", "app", "UPGRADE") == "OK"
    for m in cluster.masters:
        assert m.client().execute_command("RG.TRIGGER", "ver") == ["v2"]
        assert session_ids(m).count("app") == 1
        assert len(registration_ids(m)) == 1
