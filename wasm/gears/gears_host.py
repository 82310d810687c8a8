"""The host's requests, by name, over the one import (`_gears_host.request`, glue.c)."""
from functools import partial

import _gears_host
from gears_abi import HOST_REQUESTS

error = _gears_host.error  # gears.error: a Redis error reply


class flat_error(Exception):
    """gears.flat_error: reported verbatim, without a traceback."""


flat_error.__module__ = "gears"

call = partial(_gears_host.request, HOST_REQUESTS["call"])  # call([cmd, args...]) -> reply
call_batch = partial(_gears_host.request_batch, HOST_REQUESTS["call_batch"])  # [[cmd, ...], ...]
config_get = partial(_gears_host.request, HOST_REQUESTS["config_get"])  # config_get([name]) -> str | None
# read_keys([key, ...]) -> [[TYPE's answer, the value's reply], ...] (errors as instances)
read_keys = partial(_gears_host.request_pairs, HOST_REQUESTS["read_keys"])


def request(name, *fields):
    """Any other request: `name` from gears_abi.HOST_REQUESTS, its fields as str/bytes."""
    return _gears_host.request(HOST_REQUESTS[name], list(fields))
