"""Sessions that last: DEBUG RELOAD, restart from RDB and from AOF, replicas, kill -9."""
import os
import signal
import time

import pytest
import redis

from conftest import RedisServer, as_dict, pyexec, wait_for

# Two registrations of one session share one global counter.
SHARED = """
count = 0
def bump(x):
    global count
    count += 1
    execute('set', 'count', count)
GB().foreach(bump).register(prefix='ev:*', eventTypes=['set'], mode='sync')
GB('CommandReader').map(lambda x: bump(x) or count).register(trigger='bump', convertToStr=False)
"""


def registration_ids(c):
    return sorted(e[1] for e in c.execute_command("RG.DUMPREGISTRATIONS"))


@pytest.fixture
def servers(tmp_path):
    started = []

    def start(name, *redis_args, module_args=()):
        srv = RedisServer(tmp_path / name, module_args, redis_args).start()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()


def restart(srv):
    srv.stop()
    return srv.start()


def test_debug_reload_keeps_sessions_and_their_globals(servers):
    srv = servers("a")
    c = srv.client()
    assert pyexec(c, SHARED, "ID", "shared") == "OK"
    ids = registration_ids(c)
    c.set("ev:1", "x")
    assert c.execute_command("RG.TRIGGER", "bump") == [2]
    assert c.execute_command("DEBUG", "RELOAD") == "OK"
    assert registration_ids(c) == ids
    c.set("ev:2", "x")
    assert c.execute_command("RG.TRIGGER", "bump") == [4]  # the same globals carry on
    assert c.info("rg")["rg_nsessions"] == 1


@pytest.mark.parametrize("mode", ["rdb", "aof"])
def test_restart_recreates_sessions_with_one_shared_namespace(servers, mode):
    args = ("--appendonly", "yes", "--appendfsync", "always") if mode == "aof" else ()
    srv = servers(mode, *args)
    c = srv.client()
    assert pyexec(c, SHARED, "ID", "shared", "DESCRIPTION", "counter") == "OK"
    ids = registration_ids(c)
    c.set("ev:1", "x")
    assert c.get("count") == "1"
    if mode == "rdb":
        c.save()
    srv.stop()
    c = srv.start().client()
    assert registration_ids(c) == ids  # none missing, none doubled
    assert c.get("count") == "1"  # re-running the script did not repeat its writes
    [s] = [as_dict(e) for e in c.execute_command("RG.PYDUMPSESSIONS")]
    assert s["ID"] == "shared" and s["sessionDescription"] == "counter"
    # both registrations still share one namespace (re-created from the script: count = 0)
    c.set("ev:2", "x")
    assert c.execute_command("RG.TRIGGER", "bump") == [2]
    # and new registrations get new ids
    assert pyexec(c, "GB('CommandReader').register(trigger='later')") == "OK"
    assert len(set(registration_ids(c))) == 3


def test_upgrade_and_unregister_survive_a_restart(servers):
    srv = servers("u", "--appendonly", "yes")
    c = srv.client()
    assert pyexec(c, "GB('CommandReader').map(lambda x: 'v1').register(trigger='ver')", "ID", "app") == "OK"
    assert pyexec(c, "GB('CommandReader').map(lambda x: 'v2').register(trigger='ver')", "ID", "app", "UPGRADE") == "OK"
    assert pyexec(c, "GB('CommandReader').register(trigger='gone')", "ID", "gone") == "OK"
    gone = [e[1] for e in c.execute_command("RG.DUMPREGISTRATIONS") if e[7][-1][1] == "gone"]
    assert c.execute_command("RG.UNREGISTER", gone[0]) == "OK"
    ids = registration_ids(c)
    c = restart(srv).client()
    assert registration_ids(c) == ids
    assert c.execute_command("RG.TRIGGER", "ver") == ["v2"]


def test_kill_9_after_ok_keeps_the_registration(servers):
    srv = servers("k", "--appendonly", "yes", "--appendfsync", "always")
    c = srv.client()
    assert pyexec(c, "GB('CommandReader').map(lambda x: 'alive').register(trigger='k9')", "ID", "k9") == "OK"
    os.kill(srv.pid, signal.SIGKILL)
    srv.proc.wait()
    c = srv.start().client()
    assert c.execute_command("RG.TRIGGER", "k9") == ["alive"]


def test_replica_has_the_registrations_and_does_not_fire(servers):
    primary = servers("p")
    p = primary.client()
    assert pyexec(p, SHARED, "ID", "shared") == "OK"
    replica = servers("r", "--replicaof", "127.0.0.1", str(primary.port))
    rc = replica.client()
    assert wait_for(lambda: rc.info("replication")["master_link_status"] == "up", timeout=10)
    assert wait_for(lambda: registration_ids(rc) == registration_ids(p), timeout=10)
    # registered after the sync: reaches the replica as a command
    assert pyexec(p, "GB('CommandReader').register(trigger='late')", "ID", "late") == "OK"
    assert wait_for(lambda: registration_ids(rc) == registration_ids(p), timeout=10)
    p.set("ev:1", "x")  # fires once, on the primary; the replica gets its effect
    assert p.get("count") == "1"
    assert wait_for(lambda: rc.get("count") == "1", timeout=5)
    time.sleep(0.3)
    assert rc.get("count") == "1"
    late = [e[1] for e in p.execute_command("RG.DUMPREGISTRATIONS") if e[7][-1][1] == "late"]
    p.execute_command("RG.UNREGISTER", late[0])
    assert wait_for(lambda: registration_ids(rc) == registration_ids(p), timeout=5)
    # after failover the former replica's registrations fire
    rc.execute_command("REPLICAOF", "NO", "ONE")
    rc.set("ev:9", "x")
    assert rc.get("count") == "1"  # re-created from the script on the replica: its own count


def test_a_session_that_cannot_be_restored_is_listed(servers, tmp_path):
    srv = servers("f")
    c = srv.client()
    script = ("if execute('ping') is None:\n"  # None only while restoring
              "    raise Exception('refusing to come back')\n"
              "GB('CommandReader').register(trigger='f')")
    assert pyexec(c, script, "ID", "fragile") == "OK"
    c.save()
    c = restart(srv).client()
    assert srv.wait_for_log("could not restore session fragile")
    [s] = [as_dict(e) for e in c.execute_command("RG.PYDUMPSESSIONS")]
    assert s["ID"] == "fragile" and "refusing to come back" in s["sessionDescription"]


def test_keyed_time_event_survives_reload_and_restart(servers):
    srv = servers("te")
    c = srv.client()
    script = "def tick():\n    execute('incr', 'ticks')\nregisterTE(1, tick, 'te:key')\n" \
             "GB('CommandReader').register(trigger='keep')"  # a registration: the session is saved
    assert pyexec(c, script, "ID", "te") == "OK"
    assert wait_for(lambda: int(c.get("ticks") or 0) >= 1, timeout=3)
    assert c.execute_command("DEBUG", "RELOAD") == "OK"
    before = int(c.get("ticks"))
    assert wait_for(lambda: int(c.get("ticks")) >= before + 2, timeout=4)
    assert c.info("rg")["rg_ntimeevents"] == 1
    c.save()
    c = restart(srv).client()
    before = int(c.get("ticks"))
    assert wait_for(lambda: int(c.get("ticks")) >= before + 2, timeout=4)
    assert c.info("rg")["rg_ntimeevents"] == 1  # re-attached, not doubled
    c.delete("te:key")
    assert wait_for(lambda: c.info("rg")["rg_ntimeevents"] == 0, timeout=3)

# ---- Hardening II: hooks, failed sessions, the aux field, forks, stream positions -------------

def raw(c, *args):
    """A command's reply without redis-py's per-command parsing (a hook may change SET's)."""
    conn = c.connection_pool.get_connection()
    try:
        conn.send_command(*args)
        return conn.read_response()
    finally:
        c.connection_pool.release(conn)


# A hook and a commands= registration: both ask Redis (COMMAND INFO) whether the command
# can be wrapped, which must work while the script is re-run to restore the session.
HOOKS = """
def upper(x):
    return call_next(x[1], x[2].upper())
GB('CommandReader').map(upper).register(hook='set', keyprefix='up:')
def mark(x):
    override_reply('marked ' + x['key'])
GB().foreach(mark).register(prefix='m:*', commands=['hset'])
"""


def assert_hooks_work(c):
    assert raw(c, "SET", "up:1", "abc") == "OK"
    assert c.get("up:1") == "ABC"
    assert raw(c, "HSET", "m:1", "a", "b") == "marked m:1"


@pytest.mark.parametrize("mode", ["rdb", "aof"])
def test_hook_and_commands_registrations_come_back_after_a_restart(servers, mode):
    args = ("--appendonly", "yes", "--appendfsync", "always") if mode == "aof" else ()
    srv = servers("hooks-" + mode, *args)
    c = srv.client()
    assert pyexec(c, HOOKS, "ID", "hooks") == "OK"
    ids = registration_ids(c)
    assert len(ids) == 2
    if mode == "rdb":
        c.save()
    c = restart(srv).client()
    assert "could not restore" not in srv.log_text()
    assert registration_ids(c) == ids
    assert_hooks_work(c)


def test_hook_and_commands_registrations_reach_a_replica(servers):
    primary = servers("hp")
    p = primary.client()
    assert pyexec(p, HOOKS, "ID", "hooks") == "OK"  # reaches the replica in the RDB
    replica = servers("hr", "--replicaof", "127.0.0.1", str(primary.port))
    rc = replica.client()
    assert wait_for(lambda: rc.info("replication")["master_link_status"] == "up", timeout=10)
    assert wait_for(lambda: registration_ids(rc) == registration_ids(p), timeout=10)
    # and as RG.INNERREGISTER after the sync
    assert pyexec(p, "GB('CommandReader').map(lambda x: 'late').register(hook='lpush')", "ID", "late") == "OK"
    assert wait_for(lambda: len(registration_ids(rc)) == 3, timeout=10)
    assert registration_ids(rc) == registration_ids(p)
    assert "could not restore" not in replica.log_text()
    rc.execute_command("REPLICAOF", "NO", "ONE")
    assert_hooks_work(rc)
    assert raw(rc, "LPUSH", "l", "x") == "late"

