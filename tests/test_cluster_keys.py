"""Keys on Redis Cluster: a registration fires on the shard that owns the written key, and
commands that name keys keep their key specs, so a client at the wrong shard gets MOVED
(RG.TRIGGERONKEY, hooked commands) instead of a run on a shard that does not own the key.
A registering script is sent to one master: the others register the same flows
(test_cluster_registrations.py)."""
import pytest
import redis

from cluster_helper import cluster_of  # noqa: F401 (a fixture)
from conftest import pyexec

MARK_OWNER = """
GB().foreach(lambda r: execute('set', 'seen:' + r['key'], execute('CLUSTER', 'MYID'))).register(prefix='k:*', mode='sync')
GB('CommandReader').map(lambda a: execute('CLUSTER', 'MYID') + ':' + a[1]).register(trigger='whoami', mode='async_local')
GB('CommandReader').map(lambda a: 'hooked ' + a[1]).register(hook='get', keyprefix='h:', mode='sync')
"""


def owner_of(cluster, key):
    slot = cluster.masters[0].client().execute_command("CLUSTER", "KEYSLOT", key)
    for master, (start, end) in zip(cluster.masters, cluster.ranges):
        if start <= slot <= end:
            return master
    raise AssertionError(f"no owner for slot {slot}")


def test_registrations_fire_where_the_key_lives_and_keyed_commands_are_redirected(cluster_of):
    cluster = cluster_of(2)
    assert pyexec(cluster.masters[1].client(), MARK_OWNER) == "OK"
    rc = cluster.client()
    keys = ["k:{%d}" % i for i in range(20)]
    owners = {key: owner_of(cluster, key) for key in keys}
    assert len({o.port for o in owners.values()}) == 2  # both shards own some
    for key in keys:
        rc.set(key, "v")
    for key in keys:
        # the sync registration ran on the owner, in the SET (same slot: {i})
        assert owners[key].client().get("seen:" + key) == owners[key].node_id()
    key = keys[0]
    owner = owners[key]
    other = next(m for m in cluster.masters if m.port != owner.port)
    # RG.TRIGGERONKEY names its key: the wrong shard redirects
    with pytest.raises(redis.exceptions.MovedError, match=r"^\d+ 127\.0\.0\.1:%d" % owner.port):
        other.client().execute_command("RG.TRIGGERONKEY", "whoami", key)
    assert owner.client().execute_command("RG.TRIGGERONKEY", "whoami", key) == [owner.node_id() + ":" + key]
    # a hooked command keeps its key spec: MOVED from the wrong shard, hooked on the owner
    hooked = "h:" + key[2:]  # same slot
    with pytest.raises(redis.exceptions.MovedError, match=r"^\d+ 127\.0\.0\.1:%d" % owner.port):
        other.client().execute_command("GET", hooked)
    assert owner.client().execute_command("GET", hooked) == "hooked " + hooked
