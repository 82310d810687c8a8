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
    // Binary safe (a NUL in a name is refused later, by run_with).
    let args: Vec<RedisString> = args.iter().map(|a| RedisString::create_from_slice(std::ptr::null_mut(), a)).collect();
    match denied_for(ctx, &RedisString::create_from_slice(std::ptr::null_mut(), name.as_bytes()), &args) {
        Some(e) if e == NO_SUCH_USER => {
            Some(format!("NOPERM the user '{name}' of this session no longer exists or is disabled"))
        }
        other => other,
    }
}

/// Whether ACL user `name` may run every one of `commands` (command and keys; false for a user
/// that no longer exists or is disabled). One lookup of the user for all of them.
pub fn user_may_run_all(name: &str, commands: &[&[&[u8]]]) -> bool {
    let name = RedisString::create_from_slice(std::ptr::null_mut(), name.as_bytes());
    // SAFETY: the user name string is valid for the call; the user returned (or null) is
    // freed before returning; each `argv` holds valid strings for the duration of its check.
    unsafe {
        let user = raw::RedisModule_GetModuleUserFromUserName.expect("Redis API")(name.inner);
        if user.is_null() {
            return false;
        }
        let allowed = commands.iter().all(|args| {
            let args: Vec<RedisString> =
                args.iter().map(|a| RedisString::create_from_slice(std::ptr::null_mut(), a)).collect();
            let mut argv = pointers(&args);
            raw::RedisModule_ACLCheckCommandPermissions.expect("Redis API")(
                user,
                argv.as_mut_ptr(),
                argv.len() as c_int,
            ) == raw::REDISMODULE_OK as c_int
        });
        raw::RedisModule_FreeModuleUser.expect("Redis API")(user);
        allowed
    }
}

const NO_SUCH_USER: &str = "NOPERM no such user";

/// `ENOENT`, which RM_ACLCheckCommandPermissions sets for a command that does not exist.
const ENOENT: i32 = 2;

fn denied_for(ctx: &Context, name: &RedisString, args: &[RedisString]) -> Option<String> {
    // SAFETY: the user name string is valid for the call; the user returned (or null) is
    // freed below, before returning; `argv` holds `args.len()` valid strings.
    unsafe {
        let user = raw::RedisModule_GetModuleUserFromUserName.expect("Redis API")(name.inner);
        if user.is_null() {
            return Some(NO_SUCH_USER.into());
        }
        let mut argv = pointers(args);
        let allowed = raw::RedisModule_ACLCheckCommandPermissions.expect("Redis API")(
            user,
            argv.as_mut_ptr(),
            argv.len() as c_int,
        ) == raw::REDISMODULE_OK as c_int
            // No such command: RM_Call answers that itself ("unknown command").
            || std::io::Error::last_os_error().raw_os_error() == Some(ENOENT);
        let key_denied = !allowed
            && key_positions(ctx, args).into_iter().filter_map(|p| args.get(p)).any(|key| {
                raw::RedisModule_ACLCheckKeyPermissions.expect("Redis API")(user, key.inner, 0)
                    != raw::REDISMODULE_OK as c_int
            });
        raw::RedisModule_FreeModuleUser.expect("Redis API")(user);
        match (allowed, key_denied) {
            (true, _) => None,
            (false, true) => {
                Some("NOPERM this user has no permissions to access one of the keys used as arguments".into())
            }
            (false, false) => Some(format!(
                "NOPERM this user has no permissions to run the '{}' command",
                args.first().map(|a| a.to_string_lossy().to_lowercase()).unwrap_or_default()
            )),
        }
    }
}
