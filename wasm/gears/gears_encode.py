"""Records to replies (spec §1.3), in the host<->guest encoding (crates/abi; vectors pinned by
crates/abi/vectors/codec.json), by the guest's C codec (codec.c: codec_put_record and
codec_put_results, checked by the guest's self-test). The host's payloads are decoded in C too
(`_gears_host.decode_args`)."""
import _gears_host

# encode_results(results, errors, durations=None) -> bytes: `[[results...], [errors...]]`
# (+ `[step durations in ms]` when profiling).
encode_results = _gears_host.encode_results

# encode_record(record) -> bytes: one record as RedisGears 1.2 sends it.
encode_record = _gears_host.encode_record
