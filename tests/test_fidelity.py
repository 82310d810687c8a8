"""Behaviour as RedisGears 1.2's own code has it (docs/fidelity-audit.md has the sources)."""
import pytest

from conftest import pyexec


def gen(values):
    return f"lambda: iter({values!r})"


EMPTY = ["count()", "aggregate(0, lambda a, r: a + r, lambda a, r: a + r)", "avg()", "sort()",
         "distinct()", "accumulate(lambda a, r: (a or 0) + 1)", "countby()"]


@pytest.mark.parametrize("ops", EMPTY)
def test_aggregates_over_no_records_give_no_record(clean, ops):
    # RedisGears' accumulator starts as no record: over nothing it emits nothing.
    assert pyexec(clean, f"GB().{ops}.run()") == [[], []]
    assert pyexec(clean, f"GB('PythonReader').{ops}.run({gen([])})") == [[], []]


def test_an_accumulator_that_returns_none_still_emits_it(clean):
    assert pyexec(clean, f"GB('PythonReader').accumulate(lambda a, r: None).run({gen([1, 2])})") == [["None"], []]


def test_group_keys_are_text(clean):
    script = f"GB('PythonReader').countby(lambda x: x % 2).map(lambda g: (g['key'], g['value'])).run({gen([1, 2, 3])})"
    assert sorted(pyexec(clean, script)[0]) == ["('0', 1)", "('1', 2)"]
    kinds = ("GB('PythonReader').groupby(lambda x: x % 2, lambda k, a, r: type(k).__name__)"
             f".map(lambda g: g['value']).run({gen([1, 2])})")
    assert pyexec(clean, kinds) == [["str", "str"], []]
    unhashable = f"GB('PythonReader').countby(lambda x: [x]).map(lambda g: g['key']).run({gen([1, 1])})"
    assert pyexec(clean, unhashable) == [["[1]"], []]


# ---------------------------------------------------------------- RG.* commands of RedisGears 1.2

def test_cluster_commands_standalone(r):
    # cluster.c Cluster_GetClusterInfo: `#define NO_CLUSTER_MODE_REPLY "no cluster mode"`, a bulk.
    assert r.execute_command("RG.INFOCLUSTER") == "no cluster mode"
    assert r.execute_command("RG.REFRESHCLUSTER") == "OK"
    script = ("GB('ShardsIDReader').map(lambda x: str((execute('RG.INFOCLUSTER'), "
              "execute('RG.REFRESHCLUSTER')))).run()")
    assert pyexec(r, script) == [["('no cluster mode', 'OK')"], []]


def test_commands_kept_for_compatibility(r):
    assert r.execute_command("RG.PYEXECUTEREMOTE", "x") == "Execute remote is not longer supported"
    assert r.execute_command("RG.PYFREEINTERPRETER") == "Free interpreter is not longer supported"
    # module.c Command_DumpPlugins: [name, version] per plugin.
    assert r.execute_command("RG.DUMPPLUGINS") == [["GearsPythonPlugin", 10000]]
