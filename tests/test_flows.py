"""GB() flows run with RG.PYEXECUTE: readers, record formats, operations, result encoding, errors.

Every flow here is a blocking RG.PYEXECUTE, which replies `[[results...], [errors...]]`.
KeysReader results come in no particular order, so they are compared sorted.
PythonReader flows use generator expressions: the spec only promises that a *generator* is
iterated (any other return value is one record).
"""
import ast

import pytest
import redis

from conftest import pyexec, pyexec_err


def run_flow(r, script, *args):
    """Runs a flow; checks the `[[results], [errors]]` shape and returns (results, errors)."""
    reply = pyexec(r, script, *args)
    assert isinstance(reply, list) and len(reply) == 2, reply
    assert isinstance(reply[0], list) and isinstance(reply[1], list), reply
    return reply[0], reply[1]


def results(r, script, *args):
    """Results of a flow that must not report any error."""
    res, errs = run_flow(r, script, *args)
    assert errs == [], errs
    return res


def gen(values):
    """PythonReader argument: a function returning a generator over `values`."""
    return f"lambda: (x for x in {values!r})"


def reply_text(r, script):
    """The text of whatever RG.PYEXECUTE answers: an error's message or the reply's repr."""
    try:
        return repr(pyexec(r, script))
    except redis.exceptions.ResponseError as e:
        return str(e)


def set_k100(r):
    r.mset({f"k{i}": str(i) for i in range(100)})


def fill_types(r):
    r.set("s", "v")
    r.hset("h", mapping={"a": "1", "b": "2"})
    r.rpush("l", "x", "y", "z")
    r.sadd("st", "m1", "m2")
    r.zadd("z", {"m": 1})


KV = ".map(lambda x: '%s=%s' % (x['key'], x['value']))"


# ---------------------------------------------------------------- basics, KeysReader

def test_map_over_keys(r):
    set_k100(r)
    res = results(r, "GB().map(lambda r: r['key']).run()")
    assert sorted(res) == sorted(f"k{i}" for i in range(100))


def test_count_converts_to_str_by_default(r):
    set_k100(r)
    assert pyexec(r, "GB().count().run()") == [["100"], []]
    assert pyexec(r, "GB().count().run(convertToStr=False)") == [[100], []]


def test_empty_database(r):
    assert pyexec(r, "GB().run()") == [[], []]
    assert pyexec(r, "GB().map(lambda r: r['key']).run()") == [[], []]


def test_keysreader_glob(r):
    set_k100(r)
    r.set("other", "x")
    res = results(r, "GB('KeysReader').map(lambda r: r['key']).run('k1*')")
    assert sorted(res) == sorted(["k1"] + [f"k1{i}" for i in range(10)])


def test_default_result_is_str_of_record(r):
    r.set("a", "1")
    res = results(r, "GB().run()")
    assert len(res) == 1
    assert ast.literal_eval(res[0]) == {"key": "a", "value": "1", "type": "string", "event": None}


def test_keysreader_types(r):
    fill_types(r)
    res = results(r, "GB().map(lambda r: r['key'] + '=' + r['type']).run()")
    assert sorted(res) == ["h=hash", "l=list", "s=string", "st=set", "z=zset"]


def test_keysreader_values(r):
    fill_types(r)
    script = ("def desc(r):\n"
              "    v = r['value']\n"
              "    if isinstance(v, dict):\n"
              "        v = sorted(v.items())\n"
              "    return repr((r['key'], type(r['value']).__name__, v))\n"
              "GB().map(desc).run()\n")
    res = sorted(ast.literal_eval(x) for x in results(r, script))
    assert res == [("h", "dict", [("a", "1"), ("b", "2")]),
                   ("l", "list", ["x", "y", "z"]),
                   ("s", "str", "v"),
                   ("st", "NoneType", None),
                   ("z", "NoneType", None)]


def test_keysreader_read_value_false(r):
    fill_types(r)
    res = results(r, "GB().map(lambda r: str(sorted(r.keys()))).run(readValue=False)")
    assert res == ["['event', 'key']"] * 5
    res = results(r, "GB().map(lambda r: r['key']).run(readValue=False)")
    assert sorted(res) == ["h", "l", "s", "st", "z"]


def test_keysreader_event_is_none_for_run(r):
    r.set("a", "1")
    assert results(r, "GB().map(lambda r: repr(r['event'])).run()") == ["None"]


def test_keysreader_no_scan_is_exact_key(r):
    r.mset({"k*": "star", "k1": "one", "k2": "two"})
    script = "GB().map(lambda r: r['key'] + '=' + r['value']).run('k*'%s)"
    assert results(r, script % ", noScan=True") == ["k*=star"]
    assert sorted(results(r, script % "")) == ["k*=star", "k1=one", "k2=two"]


# ---------------------------------------------------------------- operations

OPERATIONS = [
    ("map", "map(lambda x: x * 2)", [1, 2, 3], ["2", "4", "6"]),
    ("flatmap_list", "flatmap(lambda x: [x, x * 10])", [1, 2], ["1", "10", "2", "20"]),
    ("flatmap_tuple_is_one_record", "flatmap(lambda x: (x, x))", [1], ["(1, 1)"]),
    ("flatmap_str_is_one_record", "flatmap(lambda x: 'ab')", [1], ["ab"]),
    ("filter", "filter(lambda x: x % 2 == 0)", list(range(10)), ["0", "2", "4", "6", "8"]),
    ("foreach_passes_record", "foreach(lambda x: x * 100)", [1, 2, 3], ["1", "2", "3"]),
    ("accumulate_count", "accumulate(lambda a, r: (a or 0) + 1)", [5, 6, 7], ["3"]),
    ("accumulate_sum", "accumulate(lambda a, r: (a or 0) + r)", list(range(5)), ["10"]),
    ("localgroupby", "localgroupby(lambda x: x % 2, lambda k, a, r: (a or 0) + r)" + KV,
     list(range(10)), ["0=20", "1=25"]),
    ("groupby", "groupby(lambda x: x % 2, lambda k, a, r: (a or 0) + r)" + KV,
     list(range(10)), ["0=20", "1=25"]),
    ("batchgroupby", "batchgroupby(lambda x: x % 2, lambda k, recs: sum(recs))" + KV,
     list(range(10)), ["0=20", "1=25"]),
    ("limit_with_start", "limit(2, 1)", [10, 20, 30, 40, 50], ["20", "30"]),
    ("limit", "limit(3)", [10, 20, 30, 40, 50], ["10", "20", "30"]),
    ("limit_past_end", "limit(5, 4)", [10, 20, 30, 40, 50], ["50"]),
    ("collect", "collect()", [1, 2], ["1", "2"]),
    ("repartition", "repartition(lambda x: str(x))", [1, 2, 3], ["1", "2", "3"]),
    ("aggregate", "aggregate(0, lambda a, r: a + r, lambda a, r: a + r)", list(range(5)), ["10"]),
    ("aggregate_list_zero", "aggregate([], lambda a, r: a + [r], lambda a, r: a + r)"
                            ".map(lambda l: sorted(l))", [3, 1, 2], ["[1, 2, 3]"]),
    ("aggregateby", "aggregateby(lambda x: x % 2, 0, lambda k, a, r: a + r, "
                    "lambda k, a, r: a + r)" + KV, list(range(10)), ["0=20", "1=25"]),
    ("count", "count()", ["a", "b", "c"], ["3"]),
    ("countby", "countby()", ["a", "b", "a"],
     ["{'key': 'a', 'value': 2}", "{'key': 'b', 'value': 1}"]),
    ("countby_extractor", "countby(lambda x: x % 3)" + KV, list(range(7)), ["0=3", "1=2", "2=2"]),
    ("avg", "avg()", [1, 2, 3, 4], ["2.5"]),
    ("avg_extractor", "avg(lambda x: x['v'])", [{"v": 1}, {"v": 2}], ["1.5"]),
    ("distinct", "distinct()", [1, 2, 2, 3, 3, 3], ["1", "2", "3"]),
]


@pytest.mark.parametrize("name,ops,values,expected", OPERATIONS, ids=[o[0] for o in OPERATIONS])
def test_operation(r, name, ops, values, expected):
    res = results(r, f"GB('PythonReader').{ops}.run({gen(values)})")
    assert sorted(res) == sorted(expected)


def test_sort_default_is_ascending(r):
    # RedisGears 1.2's sort(reverse=True) sorts descending, then its flatmap emits the list
    # last item first: ascending (its own testSort asserts it).
    assert results(r, f"GB('PythonReader').sort().run({gen([3, 1, 2])})") == ["1", "2", "3"]
    assert results(r, f"GB('PythonReader').sort(reverse=False).run({gen([3, 1, 2])})") \
        == ["3", "2", "1"]
    assert results(r, f"GB('PythonReader').sort(False).run({gen(['b', 'c', 'a'])})") \
        == ["c", "b", "a"]


def test_avg_without_conversion_is_a_float(r):
    assert pyexec(r, f"GB('PythonReader').avg().run({gen([1, 2, 3, 4])}, convertToStr=False)") \
        == [["2.500000"], []]


def test_countby_over_key_types(r):
    r.mset({"s1": "a", "s2": "b", "s3": "c"})
    r.hset("h1", "f", "v")
    r.hset("h2", "f", "v")
    res = results(r, "GB().countby(lambda x: x['type']).run()")
    assert sorted(res) == sorted(["{'key': 'string', 'value': 3}", "{'key': 'hash', 'value': 2}"])


def test_chained_operations_over_keys(r):
    set_k100(r)
    script = ("GB().map(lambda r: int(r['value']))"
              ".filter(lambda v: v % 10 == 0)"
              ".aggregate(0, lambda a, v: a + v, lambda a, v: a + v).run()")
    assert results(r, script) == [str(sum(range(0, 100, 10)))]


def test_foreach_can_write_with_execute(r):
    res = results(r, f"GB('PythonReader').foreach(lambda x: execute('sadd', 'seen', x))"
                     f".run({gen(['a', 'b'])})")
    assert sorted(res) == ["a", "b"]
    assert r.smembers("seen") == {"a", "b"}


def test_steps_share_script_globals(r):
    script = ("factor = 7\n"
              "def times(x):\n"
              "    return x * factor\n"
              f"GB('PythonReader').map(times).run({gen([1, 2])})\n")
    assert sorted(results(r, script)) == ["14", "7"]


# ---------------------------------------------------------------- other readers

def test_pythonreader_generator_function(r):
    script = "def g():\n    for i in range(3):\n        yield i\nGB('PythonReader').run(g)\n"
    assert sorted(results(r, script)) == ["0", "1", "2"]


def test_pythonreader_value_is_the_record_of_every_pull(r):
    # 1.2's PythonReader_Next calls a function that is not a generator again on each pull
    assert pyexec(r, "GB('PythonReader').limit(2).run(lambda: 42)") == [["42", "42"], []]
    assert pyexec(r, "GB('PythonReader').limit(1).run(lambda: 42, convertToStr=False)") == [[42], []]
    # ... and a None record ends the reading
    assert pyexec(r, "GB('PythonReader').run(lambda: None)") == [[], []]
    assert pyexec(r, "GB('PythonReader').run(lambda: iter([1, None, 2]))") == [["1"], []]


def test_pythonreader_argument_errors(r):
    # GearsBuilder.run() substitutes defaultArg '*' for a missing argument, so RedisGears 1.2
    # answers the second message here; the first one is what the C-level run() says.
    err = pyexec_err(r, "GB('PythonReader').run()")
    assert "python reader function is not given" in err or \
        "pyreader argument must be a function" in err, err
    assert "pyreader argument must be a function" in pyexec_err(r, "GB('PythonReader').run('*')")
    assert "pyreader argument must be a function" in pyexec_err(r, "GB('PythonReader').run(str)")


def test_shards_id_reader(r):
    assert pyexec(r, "GB('ShardsIDReader').run()") == [["1"], []]


def test_keys_only_reader(r):
    r.mset({"k1": "a", "k2": "b", "x": "c"})
    assert sorted(results(r, "GB('KeysOnlyReader').run('k*')")) == ["k1", "k2"]
    assert sorted(results(r, "GB('KeysOnlyReader').run()")) == ["k1", "k2", "x"]


def test_stream_reader(r):
    id1 = r.xadd("s", {"a": "1"})
    id2 = r.xadd("s", {"a": "1"})
    assert results(r, "GB('StreamReader').map(lambda r: r['value']['a']).run('s')") == ["1", "1"]
    res = results(r, "GB('StreamReader').map(lambda r: repr((r['key'], r['id'], r['value'])))"
                     ".run('s')")
    assert sorted(ast.literal_eval(x) for x in res) == [("s", id1, {"a": "1"}),
                                                        ("s", id2, {"a": "1"})]


# ---------------------------------------------------------------- builder and run() errors

def test_unknown_reader(r):
    assert "reader does not exists" in pyexec_err(r, "GB('NoSuchReader').run()")


def test_reader_must_be_a_string(r):
    assert "reader argument must be a string" in pyexec_err(r, "GB(1).run()")


def test_command_reader_cannot_run(r):
    assert "Given reader do not support run or not exists" in \
        pyexec_err(r, "GB('CommandReader').run()")


@pytest.mark.parametrize("op,builtin", [("map", "str"), ("filter", "bool"), ("flatmap", "list"),
                                        ("foreach", "print"), ("accumulate", "max")])
def test_callback_must_be_a_python_function(r, op, builtin):
    err = pyexec_err(r, f"GB('PythonReader').{op}({builtin}).run({gen([1])})")
    assert f"{op} argument must be a function" in err


def test_wrong_number_of_args_to_an_operation(r):
    err = pyexec_err(r, f"GB('PythonReader').map(lambda x: x, lambda x: x).run({gen([1])})")
    assert "wrong number of args to map function" in err


def test_callback_with_wrong_arity(r):
    # Either refused while building (spec wording) or a TypeError in the errors list (1.2 code).
    text = reply_text(r, f"GB('PythonReader').map(lambda a, b: a).run({gen([1])})")
    assert "wrong number of args to map function" in text or \
        "missing 1 required positional argument" in text, text


def test_two_runs_in_one_script(r):
    err = pyexec_err(r, f"GB('PythonReader').run({gen([1])})\nGB('PythonReader').run({gen([2])})")
    assert "more then 1" in err


def test_sync_mode_is_refused_for_run(r):
    assert "unknown execution mode" in pyexec_err(r, f"GB('PythonReader').run({gen([1])}, mode='sync')")


def test_async_local_mode_runs(r):
    assert pyexec(r, f"GB('PythonReader').run({gen([1])}, mode='async_local')") == [["1"], []]


# ---------------------------------------------------------------- result encoding (convertToStr=False)

@pytest.mark.parametrize("expr,expected", [
    ("'abc'", "abc"),
    ("'+OK'", "OK"),
    ("1.5", "1.500000"),
    ("[1, 'a']", [1, "a"]),
    ("[1.5, [2, 'x']]", ["1.500000", [2, "x"]]),
    ("b'xy'", "xy"),
    ("{'a': 1}", "PY RECORD"),
    ("(1, 2)", "PY RECORD"),
    ("bytearray(b'x')", "PY RECORD"),
    ("7", 7),
    ("'+'", "+"),
], ids=["str", "status", "float", "list", "nested", "bytes", "dict", "tuple", "none", "int",
        "lone-plus"])
def test_result_encoding(r, expr, expected):
    reply = pyexec(r, f"GB('PythonReader').run(lambda: (x for x in [{expr}]), convertToStr=False)")
    assert reply == [[expected], []]


def test_error_string_result_is_an_error_element(r):
    reply = pyexec(r, "GB('PythonReader').run(lambda: (x for x in ['-ERR boom']), convertToStr=False)")
    assert len(reply) == 2 and reply[1] == [] and len(reply[0]) == 1, reply
    assert isinstance(reply[0][0], redis.exceptions.ResponseError), reply
    assert "boom" in str(reply[0][0])


def test_str_conversion_applies_to_every_type(r):
    res = results(r, f"GB('PythonReader').run({gen([1.5, (1, 2), [1], {'a': 1}])})")
    assert sorted(res) == sorted(["1.5", "(1, 2)", "[1]", "{'a': 1}"])


# ---------------------------------------------------------------- step errors

def test_step_errors_are_collected(r):
    # the first error stops the reading (1.2: the reader is pulled only while there is none)
    res, errs = run_flow(r, f"GB('PythonReader').map(lambda x: 1/x).run({gen([1, 0, 2])})")
    assert res == ["1.0"]
    assert len(errs) == 1
    assert isinstance(errs[0], str)  # a bulk string, not an error reply
    assert "ZeroDivisionError" in errs[0]


def test_a_step_error_ends_the_input_of_later_steps(r):
    script = f"GB('PythonReader').filter(lambda x: undefined_wg if x == 2 else True).count()" \
             f".run({gen([1, 2, 3, 4])})"
    res, errs = run_flow(r, script)
    assert res == ["1"]
    assert len(errs) == 1 and "undefined_wg" in errs[0] and "is not defined" in errs[0]
