//! Property-based fuzzing of every parser and codec the host has (`make fuzz` runs many more
//! cases: PROPTEST_CASES). Invariants: no panic on any input; accepted input round-trips.

use crate::runtime::config::Config;
use crate::runtime::pyexecute_args;
use crate::session::deferred::{Completion, Table};
use proptest::prelude::*;
use std::sync::{Arc, Mutex};
use wasmgears_abi::RegistrationSpec;
use wasmgears_abi::{decode_args, decode_batch, encode_args, Reply};

/// One step a sequence of deferred-token operations may take (on token number `n`).
#[derive(Debug, Clone)]
enum TokenOp {
    Open,
    Attach(usize),
    Complete(usize, u32),
    Cancel(usize),
}

fn token_op() -> impl Strategy<Value = TokenOp> {
    prop_oneof![
        Just(TokenOp::Open),
        (0usize..6).prop_map(TokenOp::Attach),
        (0usize..6, any::<u32>()).prop_map(|(n, v)| TokenOp::Complete(n, v)),
        (0usize..6).prop_map(TokenOp::Cancel),
    ]
}

/// Registration fields as a guest could stage them (the guest is not trusted).
fn registration_fields() -> impl Strategy<Value = Vec<String>> {
    let word = prop_oneof![
        Just("KeysReader".to_string()),
        Just("reader".to_string()),
        Just("mode".to_string()),
        Just("async".to_string()),
        Just("prefix".to_string()),
        Just("trigger".to_string()),
        Just("batch".to_string()),
        Just("CommandReader".to_string()),
        Just("StreamReader".to_string()),
        Just("continue".to_string()),
        Just("retry".to_string()),
        Just("1".to_string()),
        Just(",".to_string()),
        "[a-z0-9:*,]{0,6}",
    ];
    proptest::collection::vec(word, 0..12)
}

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

    #[test]
    fn fuzz_registration_fields_never_panic(fields in registration_fields()) {
        let bytes: Vec<&[u8]> = fields.iter().map(|f| f.as_bytes()).collect();
        if let Ok(spec) = RegistrationSpec::decode(&bytes) {
            let again: Vec<Vec<u8>> = spec.encode().into_iter().map(String::into_bytes).collect();
            let again: Vec<&[u8]> = again.iter().map(Vec::as_slice).collect();
            prop_assert_eq!(RegistrationSpec::decode(&again), Ok(spec));
        }
    }

    /// Whatever the order of open/attach/complete/cancel, a continuation runs at most once,
    /// with the first result, and only for a token that was both attached and completed.
    #[test]
    fn fuzz_deferred_tokens_deliver_once(ops in proptest::collection::vec(token_op(), 0..40)) {
        let table: Table<u32> = Table::default();
        let runs: Arc<Mutex<Vec<(u64, u32)>>> = Arc::default();
        let mut tokens = Vec::new();
        let mut first_result: std::collections::HashMap<u64, u32> = Default::default();
        let mut cancelled = std::collections::HashSet::new();
        for op in ops {
            match op {
                TokenOp::Open => tokens.push(table.open()),
                TokenOp::Attach(n) => if let Some(&t) = tokens.get(n) {
                    let runs = Arc::clone(&runs);
                    table.attach(t, Box::new(move |v| runs.lock().unwrap().push((t, v))) as Completion<u32>);
                },
                TokenOp::Complete(n, v) => if let Some(&t) = tokens.get(n) {
                    if !cancelled.contains(&t) {
                        first_result.entry(t).or_insert(v);
                    }
                    table.complete(t, v);
                },
                TokenOp::Cancel(n) => if let Some(&t) = tokens.get(n) {
                    table.cancel(t);
                    cancelled.insert(t);
                },
            }
        }
        let runs = runs.lock().unwrap();
        let mut seen = std::collections::HashSet::new();
        for (t, v) in runs.iter() {
            prop_assert!(seen.insert(*t), "token {} delivered twice", t);
            prop_assert_eq!(Some(v), first_result.get(t));
        }
    }
}
