//! The gears domain: executions and their flows, registrations and what fires them (key
//! events, triggers and hooks, streams, time events), and persistence of the sessions behind
//! them. Stands on sessions, the runtime services and the Redis adapter; commands stand on it.

pub mod client_callbacks;
pub mod cluster_query;
pub mod command_hooks;
pub mod command_scope;
pub mod distributed;
pub mod executions;
pub mod flows;
pub mod host_services;
pub mod in_order;
pub mod key_events;
pub mod key_index;
pub mod linked_sessions;
pub mod network_test;
pub mod persistence;
pub mod rdb;
pub mod registration_dump;
pub mod registration_stats;
pub mod registrations;
pub mod saved_state;
pub mod shard_registrations;
pub mod stream_positions;
pub mod stream_registration;
pub mod streams;
pub mod time_events;
pub mod topology;
