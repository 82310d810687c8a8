"""What monitoring tools read (../shared/notes/clients.md §4): RedisInsight detects the module
as `rg` in MODULE LIST (or through COMMAND INFO rg.pyexecute); RedisGearsMonitor runs one
script that reads RG.DUMPREGISTRATIONS from inside a flow and sums each registration's
counters across shards, then unregisters by id."""
import json

from conftest import as_dict, pyexec

# A query in the shape of RedisGearsMonitor's (its main.js: ShardsIDReader, flatmap over
# RG.DUMPREGISTRATIONS, aggregateby the id, the counters summed, one JSON per registration).
MONITOR = """
import json
def ToDict(x):
    res = {}
    for i in range(0, len(x), 2):
        res[x[i]] = x[i + 1]
    return res
COUNTERS = ['numTriggered', 'numSuccess', 'numFailures', 'numAborted']
def AggregateRes(k, a, r):
    r = ToDict(r)
    data = ToDict(r['RegistrationData'])
    a['id'] = r['id']
    a['reader'] = r['reader']
    a['NumShards'] = a.get('NumShards', 0) + 1
    for c in COUNTERS:
        a[c] = a.get(c, 0) + data[c]
    a['lastError'] = data['lastError']
    return a
def CombineRes(k, a, r):
    for c in COUNTERS + ['NumShards']:
        a[c] = a.get(c, 0) + r[c]
    a.update(id=r['id'], reader=r['reader'], lastError=r['lastError'])
    return a
def CheckNumShardSanity(r):
    assert r['NumShards'] == 1
GB('ShardsIDReader').flatmap(lambda x: execute('RG.DUMPREGISTRATIONS')).aggregateby(lambda x: x[1], {}, AggregateRes, CombineRes).map(lambda x: x['value']).foreach(CheckNumShardSanity).map(json.dumps).run()
"""


def test_redisinsight_finds_the_module(r):
    conn = r.connection_pool.get_connection()  # the raw replies, as RedisInsight reads them
    try:
        conn.send_command("MODULE", "LIST")
        modules = [m if isinstance(m, dict) else as_dict(m) for m in conn.read_response()]
        conn.send_command("COMMAND", "INFO", "rg.pyexecute")
        [info] = conn.read_response()
        conn.send_command("COMMAND", "INFO", "rg.nosuch")
        missing = conn.read_response()
    finally:
        r.connection_pool.release(conn)
    [rg] = [m for m in modules if m["name"] == "rg"]
    assert isinstance(rg["ver"], int)
    assert info[0] == "rg.pyexecute"
    assert missing == [None]


def test_redisgears_monitor_query_and_unregister(clean):
    r = clean
    for trigger in ["a", "b", "c"]:
        assert pyexec(r, "GB('CommandReader').register(trigger='%s')" % trigger) == "OK"
    r.execute_command("RG.TRIGGER", "a")
    r.execute_command("RG.TRIGGER", "a")
    results, errors = pyexec(r, MONITOR)
    assert errors == []
    rows = sorted((json.loads(x) for x in results), key=lambda row: row["id"])
    assert len(rows) == 3 and all(row["NumShards"] == 1 and row["reader"] == "CommandReader" for row in rows)
    assert [row["numTriggered"] for row in rows] == [2, 0, 0]
    assert [row["numSuccess"] for row in rows] == [2, 0, 0]
    assert r.execute_command("RG.UNREGISTER", rows[0]["id"]) == "OK"
    assert len(r.execute_command("RG.DUMPREGISTRATIONS")) == 2
