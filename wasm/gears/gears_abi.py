"""The operation codes of the host<->guest boundary (the Rust side: crates/abi/src/ops.rs).

Pure data, importable by the native CPython too: tests/test_abi_vectors.py checks these
tables against crates/abi/vectors/codec.json, as the Rust tests do for ops.rs."""

# A value inside MAX_DEPTH arrays crosses the boundary; one more level does not.
MAX_DEPTH = 64

# The longest interval a script may ask for, in seconds (registerTE, onFailedRetryInterval;
# a StreamReader's duration may be this many seconds in ms): 2**31 - 1, about 68 years.
MAX_INTERVAL_SECS = 2**31 - 1

# Or-ed into an entry's code (gears_enter's op): `profile` when ProfileExecutions is on; the
# entry itself is the code's low bits (`code_mask`).
ENTRY_FLAGS = {"profile": 0x100, "code_mask": 0xff}

# What the host asks the guest to do: gears_enter(op, payload).
GUEST_ENTRIES = {
    "reseed": 1,
    "exec_script": 2,
    "run_execution": 3,
    "run_trigger": 4,
    "key_event": 5,
    "stream_batch": 6,
    "time_event": 7,
    "loop": 8,
    "cancel": 9,
    "cancel_registration": 10,
    "profile": 11,
    "self_test": 12,
    "export_plan": 13,
    "import_plan": 14,
    "run_stage": 15,
    "forget_plan": 16,
    "export_registrations": 17,
    "plan_registered": 18,
}

# What the guest asks the host for: gears.host(op, request).
HOST_REQUESTS = {
    "call": 1,
    "call_batch": 2,
    "atomic": 3,
    "log": 4,
    "config_get": 5,
    "create_execution": 6,
    "create_registration": 7,
    "get_command": 8,
    "override_reply": 9,
    "call_next": 10,
    "time_event": 11,
    "entry": 12,
    "defer": 13,
    "complete": 14,
    "wake": 15,
    "requirements": 16,
    "read_keys": 17,
}
