//! The command a hooked or wrapped run acts on (shared by the entry state and the host traits).

use wasmgears_abi::Reply;

/// The command a hook (`hook=`) or a `commands=` registration runs within: what
/// `get_command()`, `call_next()` and `override_reply()` act on.
#[derive(Clone)]
pub struct CommandCtx {
    /// The command's arguments, its name first.
    pub args: Vec<Vec<u8>>,
    /// A hook may `call_next`; a `commands=` registration may `override_reply`.
    pub hook: bool,
    /// The registration id of the hook running (its `call_next` goes to the next older one).
    pub hook_id: Option<String>,
    /// The reply `override_reply()` set, if any.
    pub override_reply: Option<Reply>,
}
