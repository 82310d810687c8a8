"""RedisGears 1.2's documentation examples, run unchanged: operations.md (conventions: docs_helpers.py)."""
import ast

import pytest

from docs_helpers import run_ok, run_err, dicts, rec


# ---------------------------------------------------------------------------------------------
# operations.md (the snippets print no output: the expected values are worked out by hand
# from the data each test loads; KeysReader order is not fixed, so results are sorted)

def load_ops(r):
    r.mset({"foo": "bar", "fab": "bar", "hello": "world", "k": "v"})


OPS_RECORDS = sorted([rec("foo", "bar", "string"), rec("fab", "bar", "string"),
                      rec("hello", "world", "string"), rec("k", "v", "string")])


def test_operations_map(clean):
    # operations.md "Map", snippet operations/map.py
    load_ops(clean)
    script = ("# Will stringify the internal record representation\n"
              "gb = GB()\ngb.map(lambda x: str(x))\ngb.run()\n")
    assert sorted(run_ok(clean, script)) == OPS_RECORDS


def test_operations_flatmap(clean):
    # operations.md "FlatMap", snippet operations/flatmap.py
    load_ops(clean)
    script = ("# Split KeyReader's record into two: one for key the other for value\n"
              "gb = GB()\ngb.flatmap(lambda x: [x['key'], x['value']])\ngb.run()\n")
    assert sorted(run_ok(clean, script)) == sorted(
        ["foo", "bar", "fab", "bar", "hello", "world", "k", "v"])


def test_operations_foreach(clean):
    # operations.md "ForEach", snippet operations/foreach.py: one INCR of hashtag() per record
    load_ops(clean)
    script = ("# Increment a shard-local counter for each record processed\n"
              "gb = GB()\ngb.foreach(lambda x: execute('INCR', hashtag()))\ngb.run()\n")
    assert sorted(run_ok(clean, script)) == OPS_RECORDS
    [ht] = run_ok(clean, "GB('ShardsIDReader').map(lambda x: hashtag()).run()")
    assert clean.get(ht) == "4"


def test_operations_filter(clean):
    # operations.md "Filter", snippet operations/filter.py: keys longer than three characters
    load_ops(clean)
    script = ("# Filter out records where the key's length is less than four characters\n"
              "gb = GB()\ngb.filter(lambda x: len(x['key']) > 3)\ngb.run()\n")
    assert run_ok(clean, script) == [rec("hello", "world", "string")]


def test_operations_accumulate(clean):
    # operations.md "Accumulate", snippet operations/accumulate.py: 3 + 3 + 5 + 1
    load_ops(clean)
    script = ("# Sum the lengths of all records' keys\n"
              "gb = GB()\ngb.accumulate(lambda a, r: (a if a else 0) + len(r['key']))\ngb.run()\n")
    assert run_ok(clean, script) == ["12"]


FIRST_BYTE_COUNTS = [{"key": "f", "value": 2}, {"key": "h", "value": 1}, {"key": "k", "value": 1}]


def test_operations_localgroupby(clean):
    # operations.md "LocalGroupBy", snippet operations/localgroupby.py
    load_ops(clean)
    script = ("# Locally group and count records by the first byte in their key\n"
              "gb = GB()\ngb.localgroupby(lambda x: x['key'][:1],\n"
              "                lambda k, a, r: (a if a else 0) + 1)\ngb.run()\n")
    assert dicts(run_ok(clean, script)) == FIRST_BYTE_COUNTS


def test_operations_limit(clean):
    # operations.md "Limit", snippet operations/limit.py: limit(3, 1) gives three records
    load_ops(clean)
    script = ("# Limit the output to the three records starting with the first one\n"
              "gb = GB()\ngb.limit(3, 1)\ngb.run()\n")
    res = run_ok(clean, script)
    assert len(res) == 3 and len(set(res)) == 3 and set(res) <= set(OPS_RECORDS)


@pytest.mark.parametrize("script", [
    # operations.md "Collect", snippet operations/collect.py
    "# Shuffles all records to the originating shard\ngb = GB()\ngb.collect()\ngb.run()\n",
    # operations.md "Repartition", snippets operations/repartition-001.py and -002.py
    "# Will not repartition anything because the record's key is returned as-is\n"
    "gb = GB()\ngb.repartition(lambda x: x['key'])\ngb.run()\n",
    "# Will shuffle records by hashing the first byte in their key\n"
    "gb = GB()\ngb.repartition(lambda x: x['key'][:1])\ngb.run()\n",
], ids=["collect", "repartition-001", "repartition-002"])
def test_operations_collect_and_repartition(clean, script):
    load_ops(clean)
    assert sorted(run_ok(clean, script)) == OPS_RECORDS


def test_operations_aggregate(clean):
    # operations.md "Aggregate", snippet operations/aggregate.py: all values in one list
    load_ops(clean)
    script = ("# Will put all values in a single Python list\n"
              "gb = GB()\ngb.aggregate([],\n             lambda a, r: a + [r['value']],\n"
              "             lambda a, r: a + r)\ngb.run()\n")
    [res] = run_ok(clean, script)
    assert sorted(ast.literal_eval(res)) == ["bar", "bar", "v", "world"]


def test_operations_aggregateby(clean):
    # operations.md "AggregateBy", snippet operations/aggregateby.py. Its global reducer is
    # `lambda k, a, r: a + x` and `x` is not defined, so in 1.2 (GearsBuilder.aggregateby:
    # localgroupby then groupby calling that reducer) every group fails with NameError and no
    # result is given.
    load_ops(clean)
    script = ("# Will put all records of each value in a different list\n"
              "gb = GB()\ngb.aggregateby(lambda x: x['value'],\n               [],\n"
              "               lambda k, a, r: a + [r],\n"
              "               lambda k, a, r: a + x)\ngb.run()\n")
    errs = run_err(clean, script)
    assert all("name 'x' is not defined" in e for e in errs), errs


def test_operations_groupby(clean):
    # operations.md "GroupBy", snippet operations/groupby.py
    load_ops(clean)
    script = ("# Group and count records by the first byte in their key\n"
              "gb = GB()\ngb.groupby(lambda x: x['key'][:1],\n"
              "           lambda k, a, r: (a if a else 0) + 1)\ngb.run()\n")
    assert dicts(run_ok(clean, script)) == FIRST_BYTE_COUNTS


def test_operations_batchgroupby(clean):
    # operations.md "BatchGroupBy", snippet operations/batchgroupby.py
    load_ops(clean)
    script = ("# Group and count records by the first byte in their key\n"
              "gb = GB()\ngb.batchgroupby(lambda x: x['key'][:1],\n"
              "                lambda k, l: len(l))\ngb.run()\n")
    assert dicts(run_ok(clean, script)) == FIRST_BYTE_COUNTS


def test_operations_sort(clean):
    # operations.md "Sort", snippet operations/sort.py. 1.2's GearsBuilder.sort() collects the
    # records and calls sorted() on them; KeysReader records are dicts, which Python cannot
    # order, so 1.2 gives a TypeError (and no results) for this example on more than one key.
    load_ops(clean)
    script = "# Sorts the records in ascending order\ngb = GB()\ngb.sort(reverse=False)\ngb.run()\n"
    [err] = run_err(clean, script)
    assert "'<' not supported between instances of 'dict' and 'dict'" in err
    # On values that can be ordered: the snippet's comment says "ascending", but 1.2's sort()
    # ends with flatmap(lambda r: r), and execution_plan.c's flatmap pops the list from its end
    # (RG_ListRecordPop is array_pop), so sorted(..., reverse=False) comes out DEScending (and
    # the default reverse=True ascending, as RedisGears' own testSort expects).
    assert run_ok(clean, "GB().map(lambda x: x['key']).sort(reverse=False).run()") == [
        "k", "hello", "foo", "fab"]
    assert run_ok(clean, "GB().map(lambda x: x['key']).sort().run()") == [
        "fab", "foo", "hello", "k"]


def test_operations_distinct(clean):
    # operations.md "Distinct", snippet operations/distinct.py. 1.2's distinct() puts records in
    # a set(); dict records are unhashable, so 1.2 gives a TypeError for this example.
    load_ops(clean)
    [err] = run_err(clean, "# Makes every record distinct\ngb = GB()\ngb.distinct()\ngb.run()\n")
    assert "unhashable type: 'dict'" in err
    assert sorted(run_ok(clean, "GB().map(lambda x: x['value']).distinct().run()")) == [
        "bar", "v", "world"]


def test_operations_count(clean):
    # operations.md "Count", snippet operations/count.py
    load_ops(clean)
    assert run_ok(clean, "# Counts the records\ngb = GB()\ngb.count()\ngb.run()\n") == ["4"]


def test_operations_countby(clean):
    # operations.md "CountBy", snippet operations/countby.py
    load_ops(clean)
    script = ("# Counts the number of time each value is stored\n"
              "gb = GB()\ngb.countby(lambda x: x['value'])\ngb.run()\n")
    assert dicts(run_ok(clean, script)) == [
        {"key": "bar", "value": 2}, {"key": "v", "value": 1}, {"key": "world", "value": 1}]


def test_operations_avg(clean):
    # operations.md "Avg", snippet operations/avg.py. avg()'s default extractor is
    # float(x); on KeysReader dict records 1.2 raises TypeError ("float() argument must be a
    # string or a number, not 'dict'" in 1.2's Python 3.7; 3.13 words it "... or a real number").
    load_ops(clean)
    [err] = run_err(clean, "# Computes the average from all records' values\n"
                           "gb = GB()\ngb.avg()\ngb.run()\n")
    assert "float() argument must be a string or a" in err and "not 'dict'" in err
    clean.flushall()
    clean.mset({"a": "1", "b": "2", "c": "6"})
    assert run_ok(clean, "GB().map(lambda x: x['value']).avg().run()") == ["3.0"]


def test_operations_terminology_expander_hash_exploder(clean):
    # operations.md "Terminology" / "Expander" example callback hashExploder, used by flatmap
    script = ("def hashExploder(r):\n"
              "  ''' Splats a record's dict() 'value' into its keys '''\n"
              "  # Prefix each exploded key with the original in curly brackets and a colon\n"
              "  # for clustering safety, i.e.: {hashkeyname}:fieldname\n"
              "  pre = '{' + r['key'] + '}:'\n"
              "  l = [{ 'key': f'{pre}{x[0]}', 'value': x[1] } for x in r['value'].items()]\n"
              "  return l\n")
    clean.hset("person:1", mapping={"name": "Rick Sanchez", "age": 70})
    assert dicts(run_ok(clean, script + "GB().flatmap(hashExploder).run()")) == [
        {"key": "{person:1}:age", "value": "70"},
        {"key": "{person:1}:name", "value": "Rick Sanchez"}]
