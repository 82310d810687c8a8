"""The cluster as this shard sees it, from the host's RG.INFOCLUSTER (as 1.2's GearsBuilder.py
reads it for the ShardsIDReader): this shard's id and a hash tag that maps to its slots."""
import binascii
import itertools

import gears_host

SLOTS = 16384
# Tried in this order, shortest first: slot 0 gets '06S', as in 1.2's slot table.
_TAG_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
STANDALONE_TAG = "06S"
_tags = {}


def crc16(data):
    """Redis Cluster's CRC16 (XMODEM) of bytes."""
    return binascii.crc_hqx(data, 0)


def key_slot(text):
    """Redis Cluster's slot of a key without a {hash tag}: CRC16 (XMODEM) modulo 16384."""
    return binascii.crc_hqx(text.encode("utf-8"), 0) % SLOTS


def tag_for_slot(slot):
    """The first string of the alphabet (by length, then order) whose slot is `slot`."""
    tag = _tags.get(slot)
    if tag is None:
        for length in range(1, 5):
            for chars in itertools.product(_TAG_ALPHABET, repeat=length):
                candidate = "".join(chars)
                if key_slot(candidate) == slot:
                    tag = _tags[slot] = candidate
                    return tag
    return tag


def _text(value):
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _info():
    """RG.INFOCLUSTER's reply: None outside cluster mode."""
    reply = gears_host.call(["RG.INFOCLUSTER"])
    return reply if isinstance(reply, list) else None


def my_shard_id():
    """This shard's node id; '1' outside cluster mode (shardid_reader.c)."""
    info = _info()
    return "1" if info is None else _text(info[1])


def hashtag():
    """A hash tag whose slot is this shard's first (1.2: slot_table[minSlot]); standalone '06S'."""
    info = _info()
    if info is None:
        return STANDALONE_TAG
    my_id = _text(info[1])
    for shard in info[4]:
        fields = dict(zip(map(_text, shard[::2]), shard[1::2]))
        if _text(fields.get("id")) == my_id:
            return tag_for_slot(int(fields["minHslot"]))
    return STANDALONE_TAG
