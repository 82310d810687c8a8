"""Every blocked client gets its reply: a blocking RG.PYEXECUTE whose records wait answers
with the results (not an empty `[[], []]`), and a `commands=` chain whose records complete
before their continuation is attached goes on off the main thread (no self-deadlock)."""
from conftest import pyexec, wait_for

WAITING_RUN = """
import asyncio
async def later(r):
    await asyncio.sleep(0)
    return 'x'
GB('ShardsIDReader').map(later).run()
"""


def test_a_blocking_run_whose_records_wait_answers_with_its_results(clean):
    r = clean
    for _ in range(150):
        assert pyexec(r, WAITING_RUN) == [["x"], []]


CHAIN = """
async def passthrough(r):
    return r
GB().map(passthrough).foreach(lambda r: execute('INCR', 'chain:first')).register(
    prefix='k:*', commands=['set'], mode='sync')
GB().foreach(lambda r: execute('INCR', 'chain:second')).register(prefix='k:*', commands=['set'], mode='sync')
"""


def test_a_commands_chain_whose_first_step_completes_early_still_answers(server, clean):
    r = clean
    assert pyexec(r, CHAIN) == "OK"
    client = server.client(socket_timeout=5)
    for n in range(150):
        assert client.set(f"k:{n}", "v")
    assert wait_for(lambda: r.get("chain:first") == "150" and r.get("chain:second") == "150", 10), \
        (r.get("chain:first"), r.get("chain:second"))
    assert r.ping()
