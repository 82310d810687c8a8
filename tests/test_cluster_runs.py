"""Distributed runs (issue #15): run() on a cluster reads every shard, moves records with collect
and repartition, and answers from whichever shard got RG.PYEXECUTE what one node with the same
data would (RedisGears 1.2: src/execution_plan.c; GearsBuilder.py builds count, countby,
aggregateby, sort, distinct and avg on collect and groupby's repartition)."""
import os
import signal

import pytest

from cluster_helper import cluster_of  # noqa: F401 (a fixture)
from conftest import pyexec, pyexec_err, wait_for

N = 30000


def load(cluster, n=N):
    """k:0..k:n-1 = i, spread over the shards by slot."""
    pipe = cluster.client().pipeline()
    for i in range(n):
        pipe.set(f"k:{i}", i)
    pipe.execute()


def every_shard_holds_keys(cluster):
    sizes = [m.client().dbsize() for m in cluster.masters]
    assert all(size > 0 for size in sizes) and sum(sizes) == N, sizes
    return sizes


def test_count_over_three_shards_from_any_shard(cluster_of):
    cluster = cluster_of(3)
    load(cluster)
    every_shard_holds_keys(cluster)
    for master in cluster.masters:
        assert pyexec(master.client(), "GB().count().run()") == [[str(N)], []]
    assert pyexec(cluster.masters[1].client(), "GB('ShardsIDReader').count().run()") == [["3"], []]
    ids = pyexec(cluster.masters[2].client(), "GB('ShardsIDReader').run()")[0]
    assert sorted(ids) == sorted(m.node_id() for m in cluster.masters)


def test_grouping_sorting_and_averages_match_one_node(cluster_of):
    cluster = cluster_of(3)
    load(cluster, 3000)
    c = cluster.masters[0].client()
    # countby: the keys are strings, one record per group (on the shard owning the group).
    reply = pyexec(c, "GB().countby(lambda r: int(r['value']) % 7).run()")
    assert reply[1] == []
    got = {eval(r)["key"]: eval(r)["value"] for r in reply[0]}
    assert got == {str(k): len([i for i in range(3000) if i % 7 == k]) for k in range(7)}
    reply = pyexec(c, "GB().aggregateby(lambda r: int(r['value']) % 3, 0, "
                      "lambda k, a, r: a + int(r['value']), lambda k, a, r: a + r).run()")
    got = {eval(r)["key"]: eval(r)["value"] for r in reply[0]}
    assert got == {str(k): sum(i for i in range(3000) if i % 3 == k) for k in range(3)}
    reply = pyexec(c, "GB().groupby(lambda r: int(r['value']) % 2, lambda k, a, r: (a or 0) + 1).run()")
    assert sorted(eval(r)["value"] for r in reply[0]) == [1500, 1500]
    reply = pyexec(c, "GB().map(lambda r: int(r['value'])).filter(lambda x: x < 20).sort().run()")
    assert reply == [[str(i) for i in range(20)], []]
    reply = pyexec(c, "GB().map(lambda r: int(r['value']) % 5).distinct().run()")
    assert sorted(reply[0]) == ["0", "1", "2", "3", "4"] and reply[1] == []
    assert pyexec(c, "GB().avg(lambda r: int(r['value'])).run()") == [[str(sum(range(3000)) / 3000)], []]


def test_repartition_writes_each_key_on_its_owner(cluster_of):
    cluster = cluster_of(3)
    load(cluster, 900)
    c = cluster.masters[1].client()
    script = ("GB().map(lambda r: r['key'])"
              ".repartition(lambda k: 'copy:' + k)"
              ".foreach(lambda k: execute('set', 'copy:' + k, 'x'))"
              ".count().run()")
    assert pyexec(c, script) == [["900"], []]
    rc = cluster.client()
    assert all(rc.get(f"copy:k:{i}") == "x" for i in range(0, 900, 37))
    assert sum(m.client().dbsize() for m in cluster.masters) == 1800


def test_collect_false_and_async_local_give_the_shards_own_part(cluster_of):
    cluster = cluster_of(3)
    load(cluster, 3000)
    sizes = every_shard_holds_keys_n(cluster, 3000)
    for master, size in zip(cluster.masters, sizes):
        c = master.client()
        assert len(pyexec(c, "GB().map(lambda r: r['key']).run(collect=False)")[0]) == size
        assert pyexec(c, "GB().count().run(mode='async_local')") == [[str(size)], []]
        assert pyexec(c, "GB('ShardsIDReader').count().run(mode='async_local')") == [["1"], []]


def every_shard_holds_keys_n(cluster, n):
    sizes = [m.client().dbsize() for m in cluster.masters]
    assert all(size > 0 for size in sizes) and sum(sizes) == n, sizes
    return sizes


def test_a_callback_that_cannot_be_shipped_and_a_record_that_cannot_cross(cluster_of):
    cluster = cluster_of(2)
    load(cluster, 100)
    c = cluster.masters[0].client()
    error = pyexec_err(c, "g = (i for i in range(3))\nGB().map(lambda r: next(g)).run()")
    assert "Error occured when serialized a python callback" in error
    # The initiator's own records never leave it; the peer's cannot be written by marshal.
    script = "class K:\n    pass\nGB().map(lambda r: K()).run(convertToStr=False)"
    results, errors = pyexec(c, script)
    local = c.dbsize()
    assert len(results) == local
    assert errors and all("Failed serializing record" in e for e in errors)


def test_the_run_is_listed_on_every_shard_until_dropped(cluster_of):
    cluster = cluster_of(2)
    load(cluster, 100)
    a, b = (m.client() for m in cluster.masters)
    exec_id = pyexec(a, "GB().count().run()", "UNBLOCKING")
    assert exec_id.startswith(cluster.masters[0].node_id() + "-")
    assert a.execute_command("RG.GETRESULTSBLOCKING", exec_id) == [["100"], []]
    listed = lambda c: [e[1] for e in c.execute_command("RG.DUMPEXECUTIONS")]
    assert wait_for(lambda: exec_id in listed(b), 5)
    assert a.execute_command("RG.DROPEXECUTION", exec_id) == "OK"
    assert wait_for(lambda: exec_id not in listed(b), 5)
    # A blocking run's copies go when its client has the answer.
    assert pyexec(a, "GB().count().run()") == [["100"], []]
    assert wait_for(lambda: listed(b) == [], 5), listed(b)


def test_a_stalled_shard_gives_partial_results_and_max_idle(cluster_of):
    cluster = cluster_of(2)
    a, b = cluster.masters
    c = a.client()
    assert c.execute_command("RG.CONFIGSET", "ExecutionMaxIdleTime", "1000") == ["OK"]
    # The peer's part takes longer than the initiator waits: the initiator answers with what
    # reached it (its own record) and 1.2's error.
    script = ("import time\n"
              "GB('ShardsIDReader').map(lambda x: (time.sleep(2.5) if x == %r else None, x)[1]).run()"
              % b.node_id())
    assert pyexec(c, script) == [[a.node_id()], ["Execution max idle reached"]]
    # A stage that runs longer than the limit is not idle (1.2 arms its timer only while an
    # execution waits): every shard's part arrives.
    for m in cluster.masters:
        assert m.client().execute_command("RG.CONFIGSET", "ExecutionMaxIdleTime", "1000") == ["OK"]
    slow = "import time\nGB('ShardsIDReader').map(lambda x: (time.sleep(1.8), x)[1]).run()"
    results, errors = pyexec(c, slow)
    assert errors == [] and sorted(results) == sorted([a.node_id(), b.node_id()])
    # A shard frozen before the run starts: nothing ran, the same error, and the cluster
    # recovers once it answers again.
    b_id = b.node_id()
    os.kill(b.pid, signal.SIGSTOP)
    try:
        assert pyexec(c, "GB().count().run()") == [[], ["Execution max idle reached"]]
    finally:
        os.kill(b.pid, signal.SIGCONT)
    assert b_id
    cluster.client().set("x", 1)
    assert wait_for(lambda: pyexec(c, "GB().count().run()") == [["1"], []], 20)


def test_runs_work_with_requirepass_and_masterauth(cluster_of):
    cluster = cluster_of(3, password="an0ther-secret")
    load(cluster, 600)
    assert pyexec(cluster.masters[2].client(), "GB().count().run()") == [["600"], []]


def test_getexecution_and_the_dumps_ask_every_shard(cluster_of):
    cluster = cluster_of(3)
    load(cluster, 300)
    a = cluster.masters[1]
    c = a.client()
    exec_id = pyexec(c, "GB().count().run()", "UNBLOCKING")
    assert c.execute_command("RG.GETRESULTSBLOCKING", exec_id) == [["300"], []]
    # 1.2: CLUSTER is the default in cluster mode; this shard's entry first.
    entries = c.execute_command("RG.GETEXECUTION", exec_id)
    assert [e[1] for e in entries][0] == a.node_id()
    assert sorted(e[1] for e in entries) == sorted(m.node_id() for m in cluster.masters)
    assert all(e[0] == "shard_id" and e[2] == "execution_plan" for e in entries)
    assert c.execute_command("RG.GETEXECUTION", exec_id, "CLUSTER") == entries
    assert [e[1] for e in c.execute_command("RG.GETEXECUTION", exec_id, "SHARD")] == [a.node_id()]
    # Beyond 1.2: every shard's executions and registrations with one command.
    everywhere = c.execute_command("RG.DUMPEXECUTIONS", "CLUSTER")
    assert [e[1] for e in everywhere].count(exec_id) == 3
    assert pyexec(c, "GB('CommandReader').register(trigger='seen')") == "OK"
    regs = c.execute_command("RG.DUMPREGISTRATIONS", "CLUSTER")
    assert len(regs) == 3 and len({r[1] for r in regs}) == 1
    assert len(c.execute_command("RG.DUMPREGISTRATIONS")) == 1
