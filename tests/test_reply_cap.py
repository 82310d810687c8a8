"""SandboxMaxReplyMB is applied while an `execute()` reply is converted for the guest, not after:
a huge reply is refused without Redis first holding several copies of it."""
from conftest import pyexec, pyexec_err

ELEMENTS = 2_000_000  # one-byte elements: the reply's tree would be ~6x its RESP size


def used_mb(client, field):
    return client.info("memory")[field] / 2**20


def test_a_huge_lrange_is_refused_at_the_cap_without_a_memory_spike(fresh_server):
    r = fresh_server.client()
    pipe = r.pipeline(transaction=False)
    for _ in range(0, ELEMENTS, 20000):
        pipe.rpush("big", *(["x"] * 20000))
    pipe.execute()
    r.execute_command("RG.CONFIGSET", "SandboxMaxReplyMB", "1")
    assert pyexec(r, "x = 1") == "OK"  # the session machinery is warm
    before = used_mb(r, "used_memory")

    err = pyexec_err(r, "execute('LRANGE', 'big', 0, -1)")

    assert "exceeds the limit of 1 MB (SandboxMaxReplyMB)" in err
    # RM_Call itself holds the reply's RESP text (7 bytes an element); converting it all
    # would add a tree of ~40 bytes and an encoding of 6 bytes an element on top.
    resp_mb = ELEMENTS * 7 / 2**20
    jump = used_mb(r, "used_memory_peak") - before
    assert jump < resp_mb + 8, f"used_memory_peak rose by {jump:.1f} MB"
    assert r.llen("big") == ELEMENTS
    assert pyexec(r, "execute('set', 'after', len(execute('LRANGE', 'big', 0, 9)))") == "OK"
    assert r.get("after") == "10"


def test_a_batch_past_the_cap_fails_its_reader_and_small_ones_still_work(r):
    r.execute_command("RG.CONFIGSET", "SandboxMaxReplyMB", "1")
    try:
        r.set("k:big", "x" * (2 << 20))
        r.set("k:small", "y")
        reply = pyexec(r, "GB().map(lambda x: x['key']).run('k:*')")
        assert reply[0] == [] and "exceeds the limit of 1 MB (SandboxMaxReplyMB)" in reply[1][0]
        r.delete("k:big")
        assert pyexec(r, "GB().map(lambda x: x['value']).run('k:*')") == [["y"], []]
    finally:
        r.execute_command("RG.CONFIGSET", "SandboxMaxReplyMB", "128")
