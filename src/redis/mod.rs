//! The Redis adapter: everything that speaks to Redis's module API on behalf of the layers
//! above (contexts of blocked clients, `RM_Call`, replies, the log, the command filter,
//! context flags). It imports nothing from the module's other layers.

pub mod acl;
pub mod caller;
pub mod cluster_api;
pub mod command_filter;
pub mod flags;
pub mod key_reader;
pub mod log;
pub mod reply;
pub mod reply_convert;
pub mod run_as;
pub mod worker_context;
