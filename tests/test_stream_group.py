"""A registered StreamReader reads through RedisGears 1.2's consumer group (streams_reader.c):
group `__gears_consumer_group__`, consumer `__gears_client__`, XREADGROUP then XACK, entries
already in a stream processed at registration, an error starting with PAUSE pauses."""
import time

from conftest import as_dict, pyexec, wait_for

GROUP = "__gears_consumer_group__"
CONSUMER = "__gears_client__"

STORE = """
def store(r):
    execute('rpush', 'seen:' + r['key'], r['id'])
GB('StreamReader').foreach(store).register(prefix='{prefix}', trimStream={trim}{extra})
"""


def seen(r, key):
    return r.lrange("seen:" + key, 0, -1)


def data_of(r, index=0):
    entry = as_dict(r.execute_command("RG.DUMPREGISTRATIONS")[index])
    return entry["id"], as_dict(entry["RegistrationData"])


def test_entries_already_in_a_stream_are_processed_at_registration(clean):
    r = clean
    ids = [r.xadd("old:1", {"n": i}) for i in range(5)]
    other = r.xadd("old:2", {"n": 9})
    r.set("old:plain", "not a stream")  # the SCAN asks for streams only
    assert pyexec(r, STORE.format(prefix="old:*", trim=False, extra="")) == "OK"
    assert wait_for(lambda: seen(r, "old:1") == ids and seen(r, "old:2") == [other], 10)
    [group] = r.xinfo_groups("old:1")
    assert group["name"] == GROUP and group["pending"] == 0 and group["last-delivered-id"] == ids[-1]
    assert [c["name"] for c in r.xinfo_consumers("old:1", GROUP)] == [CONSUMER]
    assert r.xlen("old:1") == 5  # trimStream=False
    time.sleep(0.3)
    assert seen(r, "old:1") == ids  # once each


def test_trim_removes_what_was_processed_and_keeps_the_group(clean):
    r = clean
    assert pyexec(r, STORE.format(prefix="tr", trim=True, extra="")) == "OK"
    ids = [r.xadd("tr", {"n": i}) for i in range(3)]
    assert wait_for(lambda: seen(r, "tr") == ids)
    assert wait_for(lambda: r.xlen("tr") == 0)
    assert r.xinfo_groups("tr")[0]["pending"] == 0
    later = r.xadd("tr", {"n": 3})
    assert wait_for(lambda: seen(r, "tr") == ids + [later])


def test_an_error_starting_with_pause_pauses_and_unpause_processes_the_entry_again(clean):
    r = clean
    script = """
def step(rec):
    if execute('get', 'gate') != 'open':
        flat_error('PAUSE until the gate opens')
    execute('rpush', 'seen:' + rec['key'], rec['id'])
GB('StreamReader').foreach(step).register(prefix='ps', trimStream=False)
"""
    assert pyexec(r, script) == "OK"
    eid = r.xadd("ps", {"x": 1})
    assert wait_for(lambda: data_of(r)[1]["status"] == "PAUSED")
    rid, data = data_of(r)
    assert "PAUSE until the gate opens" in data["lastError"]
    assert r.xinfo_groups("ps")[0]["pending"] == 1  # not acknowledged
    second = r.xadd("ps", {"x": 2})  # paused: not read
    time.sleep(0.3)
    assert seen(r, "ps") == []
    r.set("gate", "open")
    assert r.execute_command("RG.UNPAUSEREGISTRATIONS", rid) == "OK"
    assert wait_for(lambda: seen(r, "ps") == [eid, second])
    assert data_of(r)[1]["status"] == "OK"
    assert wait_for(lambda: r.xinfo_groups("ps")[0]["pending"] == 0)


def test_several_registrations_of_one_builder_each_read_their_streams(clean):
    r = clean
    script = ("def store(r):\n    execute('rpush', 'seen:' + r['key'], r['id'])\n"
              "gb = GB('StreamReader').foreach(store)\n"
              "gb.register(prefix='a:*', trimStream=False)\ngb.register(prefix='b:*', trimStream=False)\n")
    assert pyexec(r, script) == "OK"
    assert len(r.execute_command("RG.DUMPREGISTRATIONS")) == 2
    a = [r.xadd("a:x", {"n": i}) for i in range(3)]
    b = [r.xadd("b:x", {"n": i}) for i in range(2)]
    assert wait_for(lambda: seen(r, "a:x") == a and seen(r, "b:x") == b)
    time.sleep(0.3)
    assert seen(r, "a:x") == a and seen(r, "b:x") == b


def test_no_entry_is_lost_or_repeated_under_a_burst(clean):
    r = clean
    assert pyexec(r, STORE.format(prefix="burst:*", trim=True, extra=", batch=50")) == "OK"
    pipe = r.pipeline(transaction=False)
    for i in range(3000):
        pipe.xadd("burst:%d" % (i % 3), {"n": i})
    ids = pipe.execute()
    expected = {k: [ids[i] for i in range(len(ids)) if i % 3 == int(k[-1])] for k in ("burst:0", "burst:1", "burst:2")}
    assert wait_for(lambda: all(r.llen("seen:" + k) >= 1000 for k in expected), 60)
    time.sleep(0.5)
    for key, want in expected.items():
        assert seen(r, key) == want
        assert r.xlen(key) == 0
        assert r.xinfo_groups(key)[0]["pending"] == 0


def test_a_replica_does_not_read_and_its_promotion_scans_the_streams(servers):
    primary = servers("p")
    p = primary.client()
    assert pyexec(p, STORE.format(prefix="rp*", trim=False, extra=""), "ID", "streams") == "OK"
    replica = servers("r", "--replicaof", "127.0.0.1", str(primary.port))
    rc = replica.client()
    assert wait_for(lambda: rc.info("replication")["master_link_status"] == "up", timeout=10)
    [rid] = [e[1] for e in p.execute_command("RG.DUMPREGISTRATIONS")]
    assert p.execute_command("RG.PAUSEREGISTRATIONS", rid) == "OK"  # left behind at the failover
    ids = [p.xadd("rp1", {"n": i}) for i in range(3)]
    offset = lambda: p.info("replication")["master_repl_offset"]
    assert wait_for(lambda: rc.info("replication")["slave_repl_offset"] == offset(), timeout=10)
    time.sleep(0.3)
    assert seen(rc, "rp1") == [] and rc.xinfo_groups("rp1") == []  # the replica never reads
    rc.execute_command("REPLICAOF", "NO", "ONE")
    assert replica.wait_for_log("Become master, trigger a scan on each stream registration.")
    # no new XADD needed: the promotion's scan finds the backlog
    assert wait_for(lambda: seen(rc, "rp1") == ids, timeout=10)
    assert rc.xinfo_groups("rp1")[0]["pending"] == 0


def test_a_batch_with_async_records_is_acknowledged_once_they_finish(clean):
    # 1.2 acks a batch when its execution is done, async records included: until then the
    # entry stays pending (a crash meanwhile gives it to the next start) and is not trimmed.
    r = clean
    script = """
import asyncio
gate = []
async def slow(rec):
    while not gate:
        await asyncio.sleep(0.05)
    execute('rpush', 'seen:' + rec['key'], rec['id'])
    return rec
def open_gate(x):
    gate.append(1)
    return 'open'
GB('StreamReader').map(slow).register(prefix='as', trimStream=True)
GB('CommandReader').map(open_gate).register(trigger='open_gate')
"""
    assert pyexec(r, script) == "OK"
    eid = r.xadd("as", {"x": 1})
    time.sleep(0.5)
    assert seen(r, "as") == []
    assert r.xinfo_groups("as")[0]["pending"] == 1 and r.xlen("as") == 1  # read, not acked, not trimmed
    assert r.execute_command("RG.TRIGGER", "open_gate") == ["open"]
    assert wait_for(lambda: seen(r, "as") == [eid])
    assert wait_for(lambda: r.xinfo_groups("as")[0]["pending"] == 0 and r.xlen("as") == 0)
