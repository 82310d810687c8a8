//! The host<->guest boundary of wasmgears, defined once.
//!
//! - [`value`]: the tagged value encoding (a Redis reply, a flow's results);
//! - [`args`]: command arguments and batches of commands;
//! - [`ops`]: the names of every operation that crosses the boundary, as enums;
//! - [`registration`]: what `register()` stages, as named fields;
//! - [`payload`]: the entries' payloads and the flows' results, built and read in one place.
//!
//! The guest side implements the same format in `wasm/codec.c` (C) and
//! `wasm/gears/gears_encode.py` (Python). `vectors/codec.json` pins all three: the Rust tests
//! here, a pytest under the native CPython and a self-test inside the guest read it.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod args;
pub mod ops;
pub mod payload;
pub mod registration;
pub mod value;

pub use args::{decode_args, decode_batch, encode_args, encode_batch};
pub use ops::{GuestEntry, HostRequest, ENTRY_CODE_MASK, ENTRY_PROFILE_FLAG};
pub use payload::{FlowResults, StreamBatch};
pub use registration::{ReaderSpec, RegistrationSpec, SpecError, MAX_INTERVAL_SECS};
pub use value::{CodecError, Reply, MAX_DEPTH};

/// The golden vectors (JSON), for tests on every side.
pub const VECTORS_JSON: &str = include_str!("../vectors/codec.json");
