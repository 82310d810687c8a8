//! Runtime services with no knowledge of gears: configuration, the worker pool, timers, the
//! insertion-ordered registry, the wheelhouse and `RG.PYEXECUTE`'s argument parser.

pub mod config;
pub mod fork_safe;
pub mod pyexecute_args;
pub mod registry;
pub mod requirement_bundle;
pub mod settings;
pub mod timers;
pub mod wheelhouse;
pub mod workers;
