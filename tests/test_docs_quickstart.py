"""RedisGears 1.2's documentation examples, run unchanged: the quick start tutorial (conventions: docs_helpers.py)."""
import pytest

from conftest import pyexec, wait_for
from docs_helpers import run_ok


# ---------------------------------------------------------------------------------------------
# "RedisGears quick start tutorial" (the 1.2-era quick start published with the Redis docs,
# modules/redisgears: title "RedisGears quick start tutorial", sections "Batch processing" and
# "Event processing"). It prints 1.2's own output, so it is asserted exactly, order included.

def test_quickstart_batch_processing_message(clean):
    # quick start "Batch processing": SET message "hello world"
    assert pyexec(clean, "GearsBuilder().run()") == [[], []]
    clean.set("message", "hello world")
    assert pyexec(clean, "GearsBuilder().run()") == [
        ["{'event': None, 'key': 'message', 'type': 'string', 'value': 'hello world'}"], []]


def test_quickstart_batch_processing_wordcount(clean):
    # quick start "Batch processing": wordcount.py over message, message:2, message:3.
    # Compared sorted: in 1.2 the order of 'hello' and 'universe' is not fixed. Both fall in
    # the same bucket of the Gears dict (SipHash-1-2, zero seed, 4 buckets) that countby's
    # groupby step iterates, so their order is the order they were first seen in. That order
    # depends on which key the keyspace scan reaches first (Redis seeds its dict hash at
    # random), and flatmap sends each split in reverse.
    clean.set("message", "hello world")
    clean.set("message:2", "hello galaxy")
    clean.set("message:3", "hello universe")
    script = ("gb = GearsBuilder()\n"
              "gb.map(lambda x: x['value'])     # map each key object to its string value\n"
              "gb.flatmap(lambda x: x.split())  # split each string into a list of words\n"
              "gb.countby()                     # run a count-unique on these words\n"
              "gb.run()\n")
    assert sorted(run_ok(clean, script)) == sorted(["{'key': 'world', 'value': 1}",
                                                    "{'key': 'galaxy', 'value': 1}",
                                                    "{'key': 'hello', 'value': 3}",
                                                    "{'key': 'universe', 'value': 1}"])


def test_quickstart_event_processing_maxage(clean):
    # quick start "Event processing": maxage.py, then HSET person:5 ... 17, person:6 ... 21
    clean.hset("person:3", mapping={"name": "Summer Smith", "age": 17})
    clean.hset("person:4", mapping={"name": "James Jameson", "age": 21})
    script = ("def age(x):\n"
              "  ''' Extracts the age from a person's record '''\n"
              "  return int(x['value']['age'])\n\n"
              "def compare_and_swap(x):\n"
              "  ''' Checks and sets the current maximum '''\n"
              "  k = 'age:maximum'\n"
              "  v = execute('GET', k)   # read key's current value\n"
              "  v = int(v) if v else 0  # initialize to 0 if None\n"
              "  if x > v:               # if a new maximum found\n"
              "    execute('SET', k, x)  # set key to new value\n\n"
              "# Event handling function registration\n"
              "gb = GearsBuilder()\n"
              "gb.map(age) # Extract the 'age' field from each hash\n"
              "gb.foreach(compare_and_swap) # Compare the max age to the value stored at age:maximum\n"
              "gb.register('person:*') # Only process keys matching the pattern 'person:*'\n")
    assert pyexec(clean, script) == "OK"
    clean.hset("person:5", mapping={"name": "Marek Michalski", "age": 17})
    clean.hset("person:6", mapping={"name": "Noya Beit", "age": 21})
    assert wait_for(lambda: clean.get("age:maximum") == "21", 10)
