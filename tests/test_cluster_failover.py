"""A failover without any manual command (issue #15): a master dies, its replica is promoted, and
the next distributed run counts every key again while the registrations (which reached the
replica as they reached the master: RG.INNERREGISTER) fire on the new master."""
import redis

from cluster_helper import cluster_of  # noqa: F401 (a fixture)
from conftest import pyexec, wait_for

MARK = ("GB().filter(lambda r: not r['key'].startswith('seen:'))"
        ".foreach(lambda r: execute('set', 'seen:' + r['key'], execute('CLUSTER', 'MYID')))"
        ".register(prefix='k:*', mode='sync')")


def test_a_promoted_replica_serves_runs_and_registrations(cluster_of):
    cluster = cluster_of(3, replicas=1)  # 3 masters: the 2 left are a majority that can elect
    m0, m1, m2 = cluster.masters
    r1 = cluster.replicas[1]  # the replica of m1
    assert r1.client().info("replication")["master_port"] == m1.port
    assert pyexec(m0.client(), MARK) == "OK"
    rc = cluster.client()
    for i in range(200):
        rc.set("k:{%d}" % i, i)
    assert pyexec(m0.client(), "GB().filter(lambda r: r['key'].startswith('k:')).count().run()") == [["200"], []]
    assert wait_for(lambda: r1.client().execute_command("RG.DUMPREGISTRATIONS") != [], 10)

    m1.proc.kill()
    m1.proc.wait()
    m1.proc = None  # stopped on purpose: not a crash
    assert wait_for(lambda: r1.client().info("replication")["role"] == "master", 60), r1.log_tail()
    assert wait_for(lambda: m0.client().cluster("info")["cluster_state"] == "ok", 60)
    # No RG.REFRESHCLUSTER anywhere: the next run finds the new master by itself.
    count = "GB().filter(lambda r: r['key'].startswith('k:')).count().run()"
    assert wait_for(lambda: pyexec(m0.client(), count) == [["200"], []], 30)
    assert pyexec(m2.client(), "GB('ShardsIDReader').count().run()") == [["3"], []]
    assert pyexec(r1.client(), count) == [["200"], []]
    # A write to a slot the promoted replica owns now fires the registration there.
    new = "k:{new%d}"
    keys = [new % i for i in range(40)]
    rc = redis.RedisCluster(host="127.0.0.1", port=m0.port, decode_responses=True)
    for key in keys:
        rc.set(key, "v")
    owners = {rc.get("seen:" + key) for key in keys}
    assert owners == {m0.node_id(), r1.node_id(), m2.node_id()}, owners
