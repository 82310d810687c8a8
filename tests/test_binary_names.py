"""Binary key names, field names and values round-trip exactly through readers and events: a
script sees `str` where the bytes are UTF-8 and the raw bytes otherwise (names as `bytes`,
values as the decoder's `bytearray`), and what it writes back lands on exactly those keys."""
import pytest

from conftest import pyexec, wait_for

KEY = b"bin\xff\xfe"
STREAM = b"st\xff\x01"

# Writes a copy of each record under b'copy:' + its key, and notes the key name's type.
COPY = ("def raw(name):\n"
        "    return name if isinstance(name, bytes) else name.encode()\n"
        "def copy(r):\n"
        "    k = raw(r['key'])\n"
        "    if isinstance(r.get('value'), dict):\n"
        "        for f, v in r['value'].items():\n"
        "            execute('HSET', b'copy:' + k, f, v)\n"
        "    elif 'value' in r:\n"
        "        execute('SET', b'copy:' + k, r['value'])\n"
        "    execute('HSET', 'types', k, type(r['key']).__name__)\n")


@pytest.fixture
def raw(server, clean):
    """A client that neither encodes nor decodes: the bytes as Redis holds them."""
    return server.client(decode_responses=False)


def test_keys_reader_run_over_binary_names(clean, raw):
    raw.set(KEY, b"v\xff\x00")
    raw.set(b"bin:text", b"plain")
    raw.hset(b"binh\xff", mapping={b"f\xfe": b"x\xff", b"g": b"y"})
    assert pyexec(clean, COPY + "GB().foreach(copy).run('bin*')")[1] == []
    assert raw.get(b"copy:" + KEY) == b"v\xff\x00"
    assert raw.get(b"copy:bin:text") == b"plain"
    assert raw.hgetall(b"copy:binh\xff") == {b"f\xfe": b"x\xff", b"g": b"y"}
    assert raw.hgetall(b"types") == {KEY: b"bytes", b"bin:text": b"str", b"binh\xff": b"bytes"}


def test_keys_only_reader_gives_the_exact_names(clean, raw):
    raw.set(KEY, b"1")
    raw.set(b"bin:text", b"2")
    script = ("GB('KeysOnlyReader').foreach(lambda k: execute('SADD', 'names', k))"
              ".run('bin*')")
    assert pyexec(clean, script)[1] == []
    assert raw.smembers(b"names") == {KEY, b"bin:text"}


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_key_events_on_binary_names(clean, raw, mode):
    script = COPY + ("GB().foreach(copy).foreach(lambda r: execute('RPUSH', 'events', raw(r['key']), r['event']))"
                     f".register(prefix='bin*', eventTypes=['set', 'hset'], mode='{mode}')\n")
    assert pyexec(clean, script) == "OK"
    raw.set(KEY, b"v\xff")
    raw.hset(b"binh\xff", b"f\xfe", b"x\xff")
    assert wait_for(lambda: raw.llen(b"events") == 4, timeout=5)
    assert raw.lrange(b"events", 0, -1) == [KEY, b"set", b"binh\xff", b"hset"]
    assert raw.get(b"copy:" + KEY) == b"v\xff"
    assert raw.hgetall(b"copy:binh\xff") == {b"f\xfe": b"x\xff"}
    assert raw.hget(b"types", KEY) == b"bytes"


def test_stream_reader_run_and_register_over_a_binary_stream_name(clean, raw):
    raw.xadd(STREAM, {b"f\xfe": b"v\xff", b"g": b"w"})
    # run() reads the one stream it names (1.2: no pattern); a name that is not UTF-8 as bytes
    assert pyexec(clean, COPY + "GB('StreamReader').foreach(copy).run(b'st\\xff\\x01')")[1] == []
    assert raw.hgetall(b"copy:" + STREAM) == {b"f\xfe": b"v\xff", b"g": b"w"}
    assert raw.hget(b"types", STREAM) == b"bytes"
    raw.delete(b"copy:" + STREAM, STREAM)

    script = COPY + "GB('StreamReader').foreach(copy).register(prefix='st*', trimStream=True)\n"
    assert pyexec(clean, script) == "OK"
    raw.xadd(STREAM, {b"h\xfd": b"z\xfc"})
    # The batch read the entries of exactly that stream, and trimmed exactly them.
    assert wait_for(lambda: raw.hget(b"copy:" + STREAM, b"h\xfd") == b"z\xfc", timeout=5)
    assert wait_for(lambda: raw.xlen(STREAM) == 0, timeout=5)


def test_trigger_arguments_keep_their_bytes(clean, raw):
    script = ("GB('CommandReader').map(lambda x: execute('SET', x[1], x[2]))"
              ".register(trigger='put')\n")
    assert pyexec(clean, script) == "OK"
    assert raw.execute_command("RG.TRIGGER", "put", KEY, b"\x00\xff") == [b"OK"]
    assert raw.get(KEY) == b"\x00\xff"


def test_results_with_lone_surrogates_and_signs_reach_the_client_as_1_2_sends_them(raw):
    # A str is sent as its UTF-8 bytes, lone surrogates as they are (surrogatepass); a leading
    # '+' or '-' makes a status or an error reply of the rest.
    script = ("GB('ShardsIDReader').flatmap(lambda x: ['\\udc80x', '+\\udc80', 2 ** 70, -1.5, True])"
              ".run(convertToStr=False)")
    results, errors = raw.execute_command("RG.PYEXECUTE", script)
    assert errors == []
    # flatmap hands the list on from its end (1.2's order)
    assert results == [1, b"-1.500000", b"1180591620717411303424", b"\xed\xb2\x80", b"\xed\xb2\x80x"]
