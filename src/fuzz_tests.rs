//! Property-based fuzzing of every parser and codec the host has (`make fuzz` runs many more
//! cases: PROPTEST_CASES). Invariants: no panic on any input; accepted input round-trips.

use crate::codec::{decode_args, decode_batch, encode_args, Reply};
use crate::config::Config;
use crate::pyexecute_args;
use proptest::prelude::*;

fn reply_strategy() -> impl Strategy<Value = Reply> {
    let leaf = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..32).prop_map(Reply::Bulk),
        proptest::collection::vec(any::<u8>(), 0..16).prop_map(Reply::Status),
        proptest::collection::vec(any::<u8>(), 0..16).prop_map(Reply::Error),
        any::<i64>().prop_map(Reply::Int),
        (-1e300f64..1e300).prop_map(Reply::Double),
        Just(Reply::Null),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| proptest::collection::vec(inner, 0..8).prop_map(Reply::Array))
}

proptest! {
    #[test]
    fn fuzz_decode_args_never_panics_and_round_trips(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(args) = decode_args(&data) {
            prop_assert_eq!(encode_args(&args), data);
        }
    }

    #[test]
    fn fuzz_decode_batch_never_panics(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode_batch(&data);
    }

    #[test]
    fn fuzz_reply_decode_never_panics_and_is_canonical(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(reply) = Reply::decode(&data) {
            prop_assert_eq!(reply.to_bytes(), data);
        }
    }

    #[test]
    fn fuzz_reply_round_trips(reply in reply_strategy()) {
        prop_assert_eq!(Reply::decode(&reply.to_bytes()).unwrap(), reply);
    }

    #[test]
    fn fuzz_module_args_and_config_never_panic(args in proptest::collection::vec("[A-Za-z0-9 _-]{0,12}", 0..8)) {
        if let Ok(mut config) = Config::from_module_args(&args) {
            for pair in args.chunks(2) {
                let _ = config.set(&pair[0], pair.get(1).map_or("", |v| v.as_str()), false);
                let _ = config.get(&pair[0]);
                let _ = config.lookup_for_script(&pair[0]);
            }
        }
    }

    #[test]
    fn fuzz_pyexecute_args_never_panic(args in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..12), 0..8)) {
        if let Ok(parsed) = pyexecute_args::parse(&args) {
            prop_assert_eq!(&parsed.script, &args[0]);
        }
    }
}
