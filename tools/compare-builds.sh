#!/usr/bin/env bash
# Measures two builds of the module side by side, alternating them, with every baseline (plain
# SET, Lua FCALL/EVAL) in the same run: the figures of docs/performance.md's before/after table.
#
#   tools/compare-builds.sh OLD.so NEW.so [rounds]
#
# Build OLD.so from an older commit with `git worktree add /tmp/old <commit> && make -C /tmp/old
# module`. Copy each .so somewhere stable first: a server keeps the file it loaded open.
set -euo pipefail
old=$1 new=$2 rounds=${3:-2}
port=$((20000 + RANDOM % 20000))
lua='#!lua name=benchlib
redis.register_function("setinc", function(keys, args)
  redis.call("set", keys[1], args[1])
  return redis.call("incr", "lua_counter")
end)
redis.register_function("noop", function(keys, args) return 1 end)'
flow="GB().map(lambda r: len(r['value'])).aggregate(0, lambda a, r: a + r, lambda a, r: a + r).run()"
scan="local cursor, n = '0', 0
repeat
  local res = redis.call('SCAN', cursor, 'COUNT', 1000)
  cursor = res[1]
  for _, k in ipairs(res[2]) do n = n + string.len(redis.call('GET', k)) end
until cursor == '0'
return n"

start() {
  redis-server --port "$port" --bind 127.0.0.1 --save '' --enable-debug-command yes --daemonize yes \
    --logfile "/tmp/compare-builds-$port.log" --loadmodule "$1"
  for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && return; sleep 0.1; done
  echo "redis-server did not start (see /tmp/compare-builds-$port.log)" >&2; exit 1
}
stop() { redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; sleep 0.5; }
rps() { redis-benchmark -p "$port" -n "$1" -c 50 -r 1000 --csv "${@:2}" | tail -1 | cut -d, -f2 | tr -d '"' | cut -d. -f1; }
ms() { local s e; s=$(date +%s%N); redis-cli -p "$port" "$@" >/dev/null; e=$(date +%s%N); echo $(((e - s) / 1000000)); }

measure() {
  start "$1"
  redis-cli -p "$port" FUNCTION LOAD REPLACE "$lua" >/dev/null
  redis-cli -p "$port" RG.PYEXECUTE "GB().foreach(lambda r: execute('incr','c')).register(prefix='g:*', eventTypes=['set'], mode='sync')
GB('CommandReader').register(trigger='noop_sync', mode='sync')" >/dev/null
  for p in 1 16; do
    n=$((p == 1 ? 100000 : 500000))
    echo "  -P $p: SET $(rps $n -P $p SET p:__rand_int__ v)  SET+sync $(rps $n -P $p SET g:__rand_int__ v)" \
         " FCALL setinc $(rps $n -P $p FCALL setinc 1 l:__rand_int__ v)  RG.TRIGGER sync $(rps $n -P $p RG.TRIGGER noop_sync)" \
         " FCALL noop $(rps $n -P $p FCALL noop 0)  (req/s)"
  done
  redis-cli -p "$port" FLUSHALL >/dev/null
  redis-cli -p "$port" DEBUG POPULATE 100000 key 10 >/dev/null
  redis-cli -p "$port" RG.PYEXECUTE "$flow" >/dev/null
  echo "  flow over 100k keys: $(ms RG.PYEXECUTE "$flow") $(ms RG.PYEXECUTE "$flow") $(ms RG.PYEXECUTE "$flow") ms" \
       "  Lua EVAL: $(ms EVAL "$scan" 0) $(ms EVAL "$scan" 0) $(ms EVAL "$scan" 0) ms"
  stop
}

trap stop EXIT
for round in $(seq "$rounds"); do
  echo "round $round, old ($old):"; measure "$old"
  echo "round $round, new ($new):"; measure "$new"
done
