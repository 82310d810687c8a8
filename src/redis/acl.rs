//! ACL checks and key positions of a command the module runs on a client's behalf (the
//! command a hook or `commands=` registration wraps), so that it is judged as if the client
//! had sent it itself.

use redis_module::{raw, Context, RedisString};
use std::os::raw::c_int;

fn pointers(args: &[RedisString]) -> Vec<*mut raw::RedisModuleString> {
    args.iter().map(|a| a.inner).collect()
}

/// The positions (in `args`) of the keys of the command `args`; empty for an unknown command.
pub fn key_positions(ctx: &Context, args: &[RedisString]) -> Vec<usize> {
    let mut argv = pointers(args);
    let mut count: c_int = 0;
    // SAFETY: `ctx` is the live command context; `argv` holds `args.len()` valid strings for
    // the duration of the call; the returned array (or null) is ours to free with RM_Free.
    unsafe {
        let keys = raw::RedisModule_GetCommandKeys.expect("Redis API")(
            ctx.ctx,
            argv.as_mut_ptr(),
            argv.len() as c_int,
            &mut count,
        );
        if keys.is_null() {
            return Vec::new();
        }
        let positions = std::slice::from_raw_parts(keys, count.max(0) as usize).iter().map(|&p| p as usize).collect();
        raw::RedisModule_Free.expect("Redis API")(keys.cast());
        positions
    }
}

/// Why the client of `ctx` may not run the command `args` (Redis's own NOPERM texts), if not.
pub fn denied(ctx: &Context, args: &[RedisString]) -> Option<String> {
    denied_for(ctx, &ctx.get_current_user(), args)
}

/// Why ACL user `name` may not run the command `args`, if not (`execute()` of a session
/// that runs as that user). A user that no longer exists, or is disabled, may do nothing.
pub fn denied_for_user(ctx: &Context, name: &str, args: &[&[u8]]) -> Option<String> {
    match AclUser::lookup(name) {
        Ok(user) => user.denied(ctx, args),
        Err(refusal) => Some(refusal),
    }
}

const NO_SUCH_USER: &str = "NOPERM no such user";

/// `ENOENT`, which RM_ACLCheckCommandPermissions sets for a command that does not exist.
const ENOENT: i32 = 2;

/// An ACL user, looked up once for several checks (a KeysReader batch checks every key).
pub struct AclUser {
    user: *mut raw::RedisModuleUser,
}

impl AclUser {
    /// The user `name`, or the refusal when it no longer exists or is disabled.
    pub fn lookup(name: &str) -> Result<AclUser, String> {
        AclUser::by_name(&RedisString::create_from_slice(std::ptr::null_mut(), name.as_bytes()))
            .ok_or_else(|| format!("NOPERM the user '{name}' of this session no longer exists or is disabled"))
    }

    fn by_name(name: &RedisString) -> Option<AclUser> {
        // SAFETY: the name string is valid for the call; the user returned (or null) is ours
        // until freed in Drop.
        let user = unsafe { raw::RedisModule_GetModuleUserFromUserName.expect("Redis API")(name.inner) };
        // A null user is never wrapped: dropping the wrapper frees its user.
        if user.is_null() {
            None
        } else {
            Some(AclUser { user })
        }
    }

    /// Why this user may not run the command `args`, if not (Redis's own NOPERM texts).
    pub fn denied(&self, ctx: &Context, args: &[&[u8]]) -> Option<String> {
        // Binary safe (a NUL in a name is refused later, by run_with).
        let args: Vec<RedisString> =
            args.iter().map(|a| RedisString::create_from_slice(std::ptr::null_mut(), a)).collect();
        self.denied_strings(ctx, &args)
    }

    fn denied_strings(&self, ctx: &Context, args: &[RedisString]) -> Option<String> {
        let mut argv = pointers(args);
        // SAFETY: `self.user` is a live user (freed only in Drop); `argv` holds `args.len()`
        // valid strings for the duration of the calls.
        unsafe {
            let allowed = raw::RedisModule_ACLCheckCommandPermissions.expect("Redis API")(
                self.user,
                argv.as_mut_ptr(),
                argv.len() as c_int,
            ) == raw::REDISMODULE_OK as c_int
                // No such command: RM_Call answers that itself ("unknown command").
                || std::io::Error::last_os_error().raw_os_error() == Some(ENOENT);
            if allowed {
                return None;
            }
            let key_denied = key_positions(ctx, args).into_iter().filter_map(|p| args.get(p)).any(|key| {
                raw::RedisModule_ACLCheckKeyPermissions.expect("Redis API")(self.user, key.inner, 0)
                    != raw::REDISMODULE_OK as c_int
            });
            Some(if key_denied {
                "NOPERM this user has no permissions to access one of the keys used as arguments".into()
            } else {
                format!(
                    "NOPERM this user has no permissions to run the '{}' command",
                    args.first().map(|a| a.to_string_lossy().to_lowercase()).unwrap_or_default()
                )
            })
        }
    }
}

impl Drop for AclUser {
    fn drop(&mut self) {
        // SAFETY: the user came from RM_GetModuleUserFromUserName and is freed once, here.
        unsafe { raw::RedisModule_FreeModuleUser.expect("Redis API")(self.user) };
    }
}

fn denied_for(ctx: &Context, name: &RedisString, args: &[RedisString]) -> Option<String> {
    match AclUser::by_name(name) {
        Some(user) => user.denied_strings(ctx, args),
        None => Some(NO_SUCH_USER.into()),
    }
}
