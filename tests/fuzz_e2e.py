"""End-to-end fuzzer: generated RG.* commands and Python scripts against a live server.

After every batch it checks that the server answers and that a canary's data (keys no
generated input may touch) is intact. Run directly (`make fuzz`, FUZZ_SECONDS) or through
pytest as a short smoke (test_fuzz_smoke).
"""
import os
import random
import sys
import time

import redis

RG_COMMANDS = ["RG.PYEXECUTE", "RG.GETRESULTS", "RG.GETRESULTSBLOCKING", "RG.DUMPEXECUTIONS",
               "RG.GETEXECUTION", "RG.DROPEXECUTION", "RG.ABORTEXECUTION", "RG.CONFIGGET",
               "RG.CONFIGSET", "RG.TRIGGER", "RG.TRIGGERONKEY", "RG.DUMPREGISTRATIONS", "RG.UNREGISTER",
               "RG.CLEARREGISTRATIONSSTATS", "RG.PYDUMPSESSIONS", "RG.PAUSEREGISTRATIONS",
               "RG.UNPAUSEREGISTRATIONS", "RG.PYSTATS", "RG.PYPROFILE", "RG.PYDUMPREQS", "RG.INNERREGISTER",
               "RG.INNERUNREGISTER", "RG.INNERHOOK"]
# Plain commands on fz:* keys: they fire the generated registrations, hooks and streams.
PLAIN = [["SET", "fz:a", "1"], ["GET", "fz:a"], ["HSET", "fz:h", "f", "v"], ["INCR", "fz:n"],
         ["XADD", "fz:s", "*", "f", "v"], ["DEL", "fz:a"], ["GET", "fz:missing"], ["LPUSH", "fz:l", "x"]]
WORDS = ["fz1", "fz2", "fz3", "abortpending", "UNBLOCKING", "ID", "DESCRIPTION", "UPGRADE", "REPLACE_WITH", "REQUIREMENTS", "SHARD",
         "CLUSTER", "MaxExecutions", "ProfileExecutions", "FuzzExtra", "ExecutionThreads", "",
         "0", "-1", "99999999999999999999", "0000000000000000000000000000000000000000-1"]
# execute() targets only fz:* keys, so the canary can never be touched legitimately.
COMMANDS = ["'set','fz:a','1'", "'get','fz:a'", "'incr','fz:n'", "'hset','fz:h','f','v'", "'lpush','fz:l','x'",
            "'del','fz:a'", "'xadd','fz:s','*','f','v'", "'nosuchcommand'", "'get'", "'lpush','fz:a','x'"]
LAMBDAS = ["lambda x: x", "lambda x: str(x)", "lambda x: 1/0", "lambda x: [x, x]", "lambda x: None",
           "lambda x: {'k': x}", "lambda x: b'\\xff'", "lambda x: 1.5", "lambda x: '-ERR x'", "lambda x: '+OK'",
           # async records: a future nobody continues, one a later callback may, coroutines
           "lambda x: gearsFuture()", "lambda x: pend(gearsFuture())", "lambda x: (gearsFuture(), gearsFuture())",
           "slow", "boom", "lambda x: createFuture()", "lambda x: runCoroutine(slow(x), pend(gearsFuture()))",
           "in_atomic", "lambda x: GB('ShardsIDReader').run()"]
OPS = ["map({f})", "flatmap({f})", "filter({f})", "foreach({f})", "limit(2)", "collect()", "count()",
       "distinct()", "sort()", "avg(lambda x: 1)", "countby(lambda x: 'k')", "accumulate(lambda a, r: r)",
       "groupby(lambda x: 'k', lambda k, a, r: 1)", "batchgroupby(lambda x: 'k', lambda k, l: len(l))",
       "aggregate(0, lambda a, r: a + 1, lambda a, r: a + r)", "repartition(lambda x: 'k')", "map(str)",
       "map(lambda a, b: a)"]
READERS = ["GB()", "GB('KeysReader')", "GB('KeysOnlyReader')", "GB('PythonReader')", "GB('ShardsIDReader')",
           "GB('StreamReader')", "GB('CommandReader')", "GB('Nope')", "GB(1)"]
RUNS = [".run()", ".run('fz:*')", ".run(lambda: (i for i in range(20)))", ".run(convertToStr=False)",
        ".run(mode='sync')", ".run('fz:a', noScan=True)", ".run(readValue=False)", ".register()",
        ".register(trigger='fz1')", ".register(trigger='fz2', mode='sync')", ".register(trigger=1)",
        ".register(trigger='fz3', onRegistered=lambda: execute('incr', 'fz:n'))", ".register(hook='set')",
        ".register(prefix='fz:*', mode='sync')", ".register(hook='get', keyprefix='fz:')",
        ".register(hook='hset', mode='sync')", ".register(prefix='fz:*', commands=['hset', 'incr'])",
        ".register(prefix='fz:*', batch=2, duration=20, onFailedPolicy='retry', onFailedRetryInterval=1)",
        ".register(prefix='fz:*', eventTypes=['keymiss'], mode='sync')", ".register(hook='multi')"]
# Every generated script starts with these helpers (for the async lambdas above).
PRELUDE = """import asyncio
waiting = []
def pend(f):
    waiting.append(f)
    return f
async def slow(x):
    await asyncio.sleep(0.01)
    for f in waiting[:2]:
        waiting.remove(f)
        f.continueRun(x)
    return x
async def boom(x):
    await asyncio.sleep(0)
    raise ValueError('async fuzz')
async def in_atomic(x):
    with atomic():
        await asyncio.sleep(0)
"""
SNIPPETS = ["x = 1", "runCoroutine(slow(1))", "isAsyncAllow()", "gearsFuture()", "raise ValueError('fuzz')", "def f(:", "import os\nos.close(3)", "import json\njson.x = 1",
            "l = [0] * 100000", "while True: pass", "import sys\nsys.setrecursionlimit(10**6)\ndef r(): r()\nr()",
            "with atomic():\n    execute('incr', 'fz:n')", "log('fuzz')", "print('fuzz')", "hashtag()",
            "configGet('FuzzExtra')", "open('/etc/passwd')", "import socket\nsocket.socket()",
            "bytearray(10**9)", "b'\\x00' * 1000", "exec('1+')", "__import__('gc').get_objects()[:10]",
            "registerTE(1, lambda: execute('incr', 'fz:te'))", "registerTE(1, lambda: 1/0, 'fz:tek')",
            "call_next('x')", "override_reply('x')", "get_command()",
            "GB('CommandReader').map(lambda x: call_next(*x[1:])).register(hook='incr', keyprefix='fz:')",
            "GB().foreach(lambda x: override_reply('-ERR fuzz')).register(prefix='fz:*', commands=['hset'])"]


def script(rng):
    parts = [PRELUDE]
    for _ in range(rng.randint(0, 3)):
        parts.append(rng.choice(SNIPPETS) if rng.random() < 0.5 else "execute(%s)" % rng.choice(COMMANDS))
    if rng.random() < 0.6:
        flow = rng.choice(READERS)
        for _ in range(rng.randint(0, 4)):
            flow += "." + rng.choice(OPS).format(f=rng.choice(LAMBDAS))
        parts.append(flow + rng.choice(RUNS))
    if rng.random() < 0.1:
        parts.append("".join(rng.choice("()[]{}:=+-*/'\"\\ abc\n") for _ in range(rng.randint(1, 30))))
    return "\n".join(parts)


def command(rng, known_ids):
    if rng.random() < 0.15:
        return list(rng.choice(PLAIN))
    name = rng.choice(RG_COMMANDS)
    if name == "RG.PYEXECUTE":
        args = [script(rng)] + rng.sample(WORDS, rng.randint(0, 2))
    elif name == "RG.CONFIGSET":
        args = rng.choice([["FuzzExtra", str(rng.random())], ["MaxExecutions", rng.choice(WORDS)],
                           ["ExecutionThreads", "2"], ["FuzzExtra"]])
    else:
        pool = list(known_ids) + WORDS
        args = [rng.choice(pool) for _ in range(rng.randint(0, 3))]
    if name == "RG.UNREGISTER" and rng.random() < 0.5:
        args = ["0" * 40 + "-" + str(rng.randint(1, 200))]
    if name == "RG.GETRESULTSBLOCKING":
        args = args[:1]  # may block until the execution ends: bounded by the time limit
    return [name] + args


CANARY = {f"canary:{i}": f"value-{i}" for i in range(20)}


def check_canary(r):
    assert r.ping()
    assert r.mget(list(CANARY)) == [v.encode() for v in CANARY.values()], "canary data changed"
    assert r.execute_command("RG.PYEXECUTE", "execute('set', 'fz:alive', '1')") in ("OK", b"OK")


def run(port, seconds=None, cases=None, seed=None, batch=50):
    seed = random.randrange(1 << 30) if seed is None else seed
    rng = random.Random(seed)
    # Raw replies: generated flows return binary data. A client may wait forever, as in
    # RedisGears, for a gearsFuture nobody continues: after 2 s it gives up and the
    # fuzzer goes on with a new connection (counted as `waited`).
    # Every 1000 cases all registrations are dropped with abortpending.
    connect = lambda: redis.Redis(port=port, decode_responses=False, socket_timeout=2)  # noqa: E731
    r = connect()
    canary = redis.Redis(port=port, decode_responses=False, socket_timeout=60)  # queued work may delay it
    canary.mset(CANARY)
    known_ids, done, errors, waited = set(), 0, 0, 0
    started = time.monotonic()
    while (cases is None or done < cases) and (seconds is None or time.monotonic() - started < seconds):
        for _ in range(batch):
            cmd = command(rng, known_ids)
            try:
                reply = r.execute_command(*cmd)
                if isinstance(reply, bytes) and reply.startswith(b"0" * 40 + b"-"):
                    known_ids.add(reply.decode())
            except redis.ResponseError:
                errors += 1
            except redis.TimeoutError:
                waited += 1
                r.close()
                r = connect()
            done += 1
        check_canary(canary)
        if done % 1000 < batch:
            # A hook or trigger parked on a future nobody continues would make every later
            # call wait: now and then everything registered is dropped, waiting records too.
            for entry in canary.execute_command("RG.DUMPREGISTRATIONS"):
                canary.execute_command("RG.UNREGISTER", entry[1], "abortpending")
    elapsed = time.monotonic() - started
    return {"seed": seed, "cases": done, "error_replies": errors, "waited": waited, "seconds": round(elapsed, 1),
            "per_second": round(done / elapsed, 1)}


if __name__ == "__main__":
    print(run(int(sys.argv[1]), seconds=float(os.environ.get("FUZZ_SECONDS", "60"))))
