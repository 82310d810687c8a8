//! The command filter behind `hook=` and `commands=`: a wrapped command `C args...` is
//! rewritten into `RG.INNERHOOK <token> C args...` (whose handler is in commands/hooks.rs).
//! The token is a secret of this process: a client that sends `RG.INNERHOOK` itself cannot
//! know it, so only commands that came through the filter reach the hook path. Which commands
//! are wrapped is published by the registrations (`set_wrapped`); the filter only reads it.
//! Commands this module runs itself bypass the filter (`NOSELF`).

use redis_module::{raw, Context};
use std::collections::HashSet;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

const INNER_COMMAND: &str = "rg.innerhook";

/// Whether any command is wrapped: the filter's fast path for every command Redis runs.
static ANY_WRAPPED: AtomicBool = AtomicBool::new(false);
/// The wrapped command names (lower case). Lock order: a leaf; taken by the filter on the
/// main thread and by `set_wrapped` with no other lock held.
static WRAPPED: OnceLock<Mutex<HashSet<Vec<u8>>>> = OnceLock::new();

/// The secret the filter puts after `RG.INNERHOOK` (32 hex digits, drawn at load).
static TOKEN: OnceLock<String> = OnceLock::new();

/// The token of this process.
pub fn token() -> &'static str {
    TOKEN.get_or_init(|| {
        let mut bytes = [0u8; 16];
        if std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)).is_err() {
            // No entropy device: the clock and an address still differ per process and load.
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
            bytes = (nanos ^ (&bytes as *const _ as u128)).to_le_bytes();
        }
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    })
}

/// Whether `arg` is this process's token (compared in constant time).
pub fn is_token(arg: &[u8]) -> bool {
    let token = token().as_bytes();
    arg.len() == token.len() && arg.iter().zip(token).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

fn wrapped() -> MutexGuard<'static, HashSet<Vec<u8>>> {
    WRAPPED.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner())
}

/// Publishes the commands a hook or `commands=` registration wraps.
pub fn set_wrapped(names: Vec<String>) {
    let names: HashSet<Vec<u8>> = names.into_iter().map(String::into_bytes).collect();
    ANY_WRAPPED.store(!names.is_empty(), Ordering::Release);
    *wrapped() = names;
}

/// Installs the filter (at load).
pub fn install(ctx: &Context) {
    token();
    // SAFETY: called from the module's OnLoad with its context; `filter` lives as long as the .so.
    unsafe {
        raw::RedisModule_RegisterCommandFilter.expect("Redis API")(
            ctx.ctx,
            Some(filter),
            raw::REDISMODULE_CMDFILTER_NOSELF as i32,
        )
    };
}

/// Runs for every command Redis executes: must be cheap when nothing is wrapped.
extern "C" fn filter(fctx: *mut raw::RedisModuleCommandFilterCtx) {
    if !ANY_WRAPPED.load(Ordering::Acquire) {
        return;
    }
    let _ = std::panic::catch_unwind(|| {
        // SAFETY: `fctx` is the live filter context Redis passed in; argument 0 exists when
        // the count is positive; the string it returns stays valid during this callback.
        let name = unsafe {
            if raw::RedisModule_CommandFilterArgsCount.expect("Redis API")(fctx) < 1 {
                return;
            }
            let arg = raw::RedisModule_CommandFilterArgGet.expect("Redis API")(fctx, 0);
            let mut len = 0usize;
            let ptr = raw::RedisModule_StringPtrLen.expect("Redis API")(arg, &mut len);
            std::slice::from_raw_parts(ptr.cast::<u8>(), len).to_ascii_lowercase()
        };
        if !wrapped().contains(&name) {
            return;
        }
        // SAFETY: strings created without a context are owned by us until ArgInsert takes
        // them; positions 0 and 1 exist (the command name is at 0 before the first insert).
        unsafe {
            let create = raw::RedisModule_CreateString.expect("Redis API");
            let insert = raw::RedisModule_CommandFilterArgInsert.expect("Redis API");
            let token = token();
            insert(fctx, 0, create(std::ptr::null_mut(), token.as_ptr().cast(), token.len()));
            insert(fctx, 0, create(std::ptr::null_mut(), INNER_COMMAND.as_ptr().cast(), INNER_COMMAND.len()));
        }
    });
}
