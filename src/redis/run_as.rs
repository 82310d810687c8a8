//! Whose authority a session's `execute()` runs with: by default the ACL user of the client
//! that created the session (`RunScriptsAs creator`), or, as in RedisGears 1.2, the module's
//! own, unchecked (`RunScriptsAs module`).

use std::sync::Arc;

/// The identity commands run under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunAs {
    /// Unchecked, like RedisGears 1.2 and a module's own calls.
    Module,
    /// Checked against this ACL user before every command (looked up each time: a user
    /// deleted or disabled since can no longer act).
    User(Arc<str>),
}

impl RunAs {
    /// The user name saved with a session (None: the module).
    pub fn user_name(&self) -> Option<&str> {
        match self {
            RunAs::Module => None,
            RunAs::User(name) => Some(name),
        }
    }

    /// From a saved user name.
    pub fn from_name(name: Option<&str>) -> RunAs {
        name.map_or(RunAs::Module, |n| RunAs::User(n.into()))
    }
}
