//! The guest's imports (module `gears`): run a Redis command, log, read configuration.
//! Guest memory is only touched through wasmtime's bounds-checked slices.

use super::limits::MemoryLimiter;
use crate::codec::{decode_args, decode_batch, Reply};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;
use wasmtime::{Caller, Extern, Linker, Memory};
use wasmtime_wasi::p1::{self, WasiP1Ctx};

/// Runs Redis commands for the guest in whatever context the current entry has (a worker
/// holding a blocked client, the main thread, ...). Set before each entry, cleared after.
pub trait RedisCaller: Send {
    fn call(&mut self, args: &[&[u8]]) -> Reply;

    /// Several commands; implementations may run them under one lock acquisition.
    fn call_batch(&mut self, commands: &[Vec<&[u8]>]) -> Reply {
        Reply::Array(commands.iter().map(|c| self.call(c)).collect())
    }

    /// Enters (`true`) or leaves an `atomic()` block: the Redis GIL is held in between.
    fn atomic(&mut self, enter: bool);

    /// Runs `f` with a context on which the Redis GIL is held (to open keys directly).
    fn with_context(&mut self, f: &mut dyn FnMut(&redis_module::Context));
}

/// The command a hook (`hook=`) or a `commands=` registration runs within: what
/// `get_command()`, `call_next()` and `override_reply()` act on.
#[derive(Clone)]
pub struct CommandCtx {
    pub args: Vec<Vec<u8>>,
    /// A hook may `call_next`; a `commands=` registration may `override_reply`.
    pub hook: bool,
    pub override_reply: Option<Reply>,
}

/// An execution a script created with `run()`: its id and plan (see executions.rs).
pub struct CreatedExecution {
    pub id: String,
    pub plan: Vec<String>,
}

/// A registration a script staged with `register()`: its id and fields
/// `[reader, mode, trigger, inorder, desc, has_desc]`.
pub struct CreatedRegistration {
    pub id: String,
    pub fields: Vec<String>,
}

/// What the host knows about the entry into the guest in progress.
pub(super) struct Entry {
    pub redis: Option<Box<dyn RedisCaller>>,
    pub created: Vec<CreatedExecution>,
    pub registrations: Vec<CreatedRegistration>,
    pub abort: Option<Arc<AtomicBool>>,
    pub deadline: Instant,
    pub command: Option<CommandCtx>,
    /// Time events `registerTE` reserved; the session starts them after the entry.
    pub time_events: Vec<u64>,
    /// Re-creating a session: its registrations get these ids back, in order.
    pub restore_ids: std::collections::VecDeque<String>,
    /// A script's requirements: (name, wheel bytes) it imports from.
    pub wheels: Vec<(String, Arc<Vec<u8>>)>,
    /// On Redis's main thread (the session's loop then continues on a worker).
    pub main_thread: bool,
    /// Records may wait (not inside MULTI/Lua, nor for a client that cannot block).
    pub async_allowed: bool,
    /// The entry's own results come later, with this token (see deferred.rs).
    pub deferred: Option<u64>,
    /// Earlier deferred results that this entry completed: (token, encoded results).
    pub completions: Vec<(u64, Vec<u8>)>,
    /// When the session's event loop wants to run again (ms from now).
    pub wake_ms: Option<u64>,
}

/// What an entry left for the host to do once the session is free again.
#[derive(Default)]
pub struct AfterEntry {
    pub deferred: Option<u64>,
    pub completions: Vec<(u64, Vec<u8>)>,
    pub wake_ms: Option<u64>,
}

impl Entry {
    pub fn idle() -> Entry {
        Entry {
            redis: None,
            created: Vec::new(),
            registrations: Vec::new(),
            abort: None,
            deadline: Instant::now(),
            command: None,
            time_events: Vec::new(),
            restore_ids: Default::default(),
            wheels: Vec::new(),
            main_thread: false,
            async_allowed: false,
            deferred: None,
            completions: Vec::new(),
            wake_ms: None,
        }
    }

    /// Takes what the entry left for after it.
    pub fn take_after(&mut self) -> AfterEntry {
        AfterEntry {
            deferred: self.deferred.take(),
            completions: std::mem::take(&mut self.completions),
            wake_ms: self.wake_ms.take(),
        }
    }
}

/// Why an entry was stopped (by the epoch check or a sleep that reached the deadline).
#[derive(Debug, thiserror::Error)]
pub(super) enum Stopped {
    #[error("aborted")]
    Aborted,
    #[error("deadline")]
    Deadline,
}

pub struct HostState {
    pub(super) wasi: WasiP1Ctx,
    pub(super) limiter: MemoryLimiter,
    pub(super) entry: Entry,
}

type GuestCaller<'a> = Caller<'a, HostState>;

fn memory(caller: &mut GuestCaller<'_>) -> wasmtime::Result<Memory> {
    match caller.get_export("memory") {
        Some(Extern::Memory(m)) => Ok(m),
        _ => wasmtime::bail!("guest exports no memory"),
    }
}

fn read_bytes(caller: &mut GuestCaller<'_>, ptr: u32, len: u32) -> wasmtime::Result<Vec<u8>> {
    let mem = memory(caller)?;
    let range = ptr as usize..(ptr as usize).saturating_add(len as usize);
    match mem.data(&caller).get(range) {
        Some(bytes) => Ok(bytes.to_vec()),
        None => wasmtime::bail!("guest passed an out-of-bounds buffer"),
    }
}

/// Copies `bytes` into a fresh guest allocation and stores its address and length at
/// `ptr_out`/`len_out`. Returns false when the guest cannot allocate that much.
fn give_to_guest(caller: &mut GuestCaller<'_>, bytes: &[u8], ptr_out: u32, len_out: u32) -> wasmtime::Result<bool> {
    let Ok(len) = u32::try_from(bytes.len()) else {
        return Ok(false);
    };
    let alloc = match caller.get_export("gears_alloc") {
        Some(Extern::Func(f)) => f.typed::<u32, u32>(&caller)?,
        _ => wasmtime::bail!("guest exports no gears_alloc"),
    };
    let ptr = alloc.call(&mut *caller, len)?;
    if ptr == 0 {
        return Ok(false);
    }
    let mem = memory(caller)?;
    mem.write(&mut *caller, ptr as usize, bytes)?;
    mem.write(&mut *caller, ptr_out as usize, &ptr.to_le_bytes())?;
    mem.write(&mut *caller, len_out as usize, &len.to_le_bytes())?;
    Ok(true)
}

/// The shape every request import shares: read the guest's request, answer it with a reply
/// written into guest memory (0), or -1 when the guest cannot hold the reply.
fn serve(
    caller: &mut GuestCaller<'_>,
    (ptr, len, reply_ptr, reply_len): (u32, u32, u32, u32),
    answer: impl FnOnce(&mut HostState, &[u8]) -> Reply,
) -> wasmtime::Result<i32> {
    let request = read_bytes(caller, ptr, len)?;
    let reply = answer(caller.data_mut(), &request);
    let mut bytes = reply.to_bytes();
    if let Some(refusal) = super::limits::reply_too_large(bytes.len()) {
        bytes = Reply::Error(format!("ERR {refusal}").into_bytes()).to_bytes();
    }
    Ok(if give_to_guest(caller, &bytes, reply_ptr, reply_len)? { 0 } else { -1 })
}

fn not_available() -> Reply {
    Reply::Error(b"ERR execute() is not available here".to_vec())
}

fn malformed(e: crate::codec::CodecError) -> Reply {
    Reply::Error(format!("ERR malformed request from the sandbox: {e}").into_bytes())
}

fn call(mut caller: GuestCaller<'_>, ptr: u32, len: u32, reply_ptr: u32, reply_len: u32) -> wasmtime::Result<i32> {
    serve(&mut caller, (ptr, len, reply_ptr, reply_len), |state, request| match decode_args(request) {
        Ok(args) if args.is_empty() => Reply::Error(b"ERR wrong number of arguments".to_vec()),
        Ok(args) => state.entry.redis.as_mut().map_or_else(not_available, |redis| redis.call(&args)),
        Err(e) => malformed(e),
    })
}

fn call_batch(
    mut caller: GuestCaller<'_>,
    ptr: u32,
    len: u32,
    reply_ptr: u32,
    reply_len: u32,
) -> wasmtime::Result<i32> {
    serve(&mut caller, (ptr, len, reply_ptr, reply_len), |state, request| match decode_batch(request) {
        Ok(commands) if commands.iter().any(|c| c.is_empty()) => Reply::Error(b"ERR empty command".to_vec()),
        Ok(commands) => state.entry.redis.as_mut().map_or_else(not_available, |redis| redis.call_batch(&commands)),
        Err(e) => malformed(e),
    })
}

fn atomic(mut caller: GuestCaller<'_>, enter: i32) -> wasmtime::Result<i32> {
    match caller.data_mut().entry.redis.as_mut() {
        Some(redis) => {
            redis.atomic(enter != 0);
            Ok(0)
        }
        None => Ok(-1),
    }
}

/// The shape `run()` and `register()` share: the guest sends a list of text fields, the host
/// allocates an id, stages the item on the entry and answers with the id.
fn stage(
    caller: &mut GuestCaller<'_>,
    io: (u32, u32, u32, u32),
    next_id: fn(&mut Entry) -> String,
    push: fn(&mut Entry, String, Vec<String>),
) -> wasmtime::Result<i32> {
    serve(caller, io, |state, request| match decode_args(request) {
        Ok(fields) => {
            let id = next_id(&mut state.entry);
            let fields = fields.iter().map(|f| String::from_utf8_lossy(f).into_owned()).collect();
            push(&mut state.entry, id.clone(), fields);
            Reply::Bulk(id.into_bytes())
        }
        Err(e) => malformed(e),
    })
}

/// `run()`: allocates the execution id; the host runs the flow after the script returns.
fn create_execution(
    mut caller: GuestCaller<'_>,
    ptr: u32,
    len: u32,
    out_ptr: u32,
    out_len: u32,
) -> wasmtime::Result<i32> {
    stage(
        &mut caller,
        (ptr, len, out_ptr, out_len),
        |_| crate::executions::next_id(),
        |entry, id, plan| entry.created.push(CreatedExecution { id, plan }),
    )
}

/// `register()`: allocates the registration id; the host applies it if the script succeeds.
fn create_registration(
    mut caller: GuestCaller<'_>,
    ptr: u32,
    len: u32,
    out_ptr: u32,
    out_len: u32,
) -> wasmtime::Result<i32> {
    let next_id = |entry: &mut Entry| entry.restore_ids.pop_front().unwrap_or_else(crate::registrations::next_id);
    stage(&mut caller, (ptr, len, out_ptr, out_len), next_id, |entry, id, fields| {
        entry.registrations.push(CreatedRegistration { id, fields })
    })
}

fn error(msg: &str) -> Reply {
    Reply::Error(msg.as_bytes().to_vec())
}

/// `registerTE(seconds, callback, keyName)`: reserves the event (and its key); an id, or 0
/// when the key already exists.
fn time_event(entry: &mut Entry, fields: &[&[u8]]) -> Reply {
    let text = |i: usize| fields.get(i).map(|f| String::from_utf8_lossy(f).into_owned()).unwrap_or_default();
    let Ok(seconds) = text(0).parse::<u64>() else {
        return error("time argument must be a positive long");
    };
    if seconds == 0 {
        return error("time argument must be a positive long");
    }
    let key = (text(2) == "1").then(|| fields.get(1).map(|k| k.to_vec()).unwrap_or_default());
    let Some(redis) = entry.redis.as_mut() else {
        return error("can not create time event here");
    };
    match crate::time_events::reserve(seconds, key, redis.as_mut()) {
        Some(id) => {
            entry.time_events.push(id);
            Reply::Int(id as i64)
        }
        None => Reply::Int(0),
    }
}

/// What `_gears_host.request([op, ...])` asks for.
fn answer_request(entry: &mut Entry, op: &[u8], fields: &[&[u8]]) -> Reply {
    match op {
        b"get_command" => match &entry.command {
            Some(cmd) => Reply::Array(cmd.args.iter().map(|a| Reply::Bulk(a.clone())).collect()),
            None => error("Can not get command ctx"),
        },
        b"override_reply" => match (&mut entry.command, fields) {
            (Some(cmd), [encoded]) if !cmd.hook => {
                if cmd.override_reply.is_some() {
                    return error("Can not override reply twice");
                }
                match Reply::decode(encoded) {
                    Ok(reply) => {
                        cmd.override_reply = Some(reply);
                        Reply::Status(b"OK".to_vec())
                    }
                    Err(e) => malformed(e),
                }
            }
            _ => error("Can not get command ctx"),
        },
        b"call_next" => match (&entry.command, entry.redis.as_mut()) {
            (Some(cmd), Some(redis)) if cmd.hook && !cmd.args.is_empty() => {
                let mut args: Vec<&[u8]> = vec![cmd.args[0].as_slice()];
                args.extend_from_slice(fields);
                redis.call(&args)
            }
            _ => error("Can not get CommandHook ctx"),
        },
        b"time_event" => time_event(entry, fields),
        b"entry" => {
            Reply::Array(vec![Reply::Int(i64::from(entry.main_thread)), Reply::Int(i64::from(entry.async_allowed))])
        }
        b"defer" if entry.async_allowed => {
            let token = *entry.deferred.get_or_insert_with(|| crate::deferred::results().open());
            Reply::Int(token as i64)
        }
        b"defer" => error("Creating async record is not allow"),
        b"complete" => match fields {
            [token, encoded] => match std::str::from_utf8(token).ok().and_then(|t| t.parse().ok()) {
                Some(token) => {
                    entry.completions.push((token, encoded.to_vec()));
                    Reply::Status(b"OK".to_vec())
                }
                None => error("ERR bad token"),
            },
            _ => error("ERR wrong number of arguments"),
        },
        b"wake" => match fields.first().and_then(|f| std::str::from_utf8(f).ok()?.parse::<u64>().ok()) {
            Some(ms) => {
                entry.wake_ms = Some(entry.wake_ms.map_or(ms, |w| w.min(ms)));
                Reply::Status(b"OK".to_vec())
            }
            None => error("ERR bad delay"),
        },
        b"requirements" => Reply::Array(
            entry
                .wheels
                .iter()
                .map(|(name, bytes)| {
                    Reply::Array(vec![Reply::Bulk(name.clone().into_bytes()), Reply::Bulk(bytes.to_vec())])
                })
                .collect(),
        ),
        _ => error("unknown request"),
    }
}

fn request(mut caller: GuestCaller<'_>, ptr: u32, len: u32, reply_ptr: u32, reply_len: u32) -> wasmtime::Result<i32> {
    serve(&mut caller, (ptr, len, reply_ptr, reply_len), |state, request| match decode_args(request) {
        Ok(fields) if !fields.is_empty() => answer_request(&mut state.entry, fields[0], &fields[1..]),
        Ok(_) => error("empty request"),
        Err(e) => malformed(e),
    })
}

fn log(mut caller: GuestCaller<'_>, level: i32, ptr: u32, len: u32) -> wasmtime::Result<()> {
    let msg = read_bytes(&mut caller, ptr, len)?;
    let line = format!("GEARS: {}", String::from_utf8_lossy(&msg));
    match level {
        0 => crate::redis_log::debug(&line),
        1 => crate::redis_log::verbose(&line),
        3 => crate::redis_log::warning(&line),
        _ => crate::redis_log::notice(&line),
    }
    Ok(())
}

fn config_get(
    mut caller: GuestCaller<'_>,
    key_ptr: u32,
    key_len: u32,
    out_ptr: u32,
    out_len: u32,
) -> wasmtime::Result<i32> {
    let key = read_bytes(&mut caller, key_ptr, key_len)?;
    let value = crate::settings::lookup_for_script(&String::from_utf8_lossy(&key));
    match value {
        Some(v) => Ok(give_to_guest(&mut caller, v.as_bytes(), out_ptr, out_len)? as i32),
        None => Ok(0),
    }
}

pub(super) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    p1::add_to_linker_sync(linker, |state: &mut HostState| &mut state.wasi)?;
    super::wasi_time::add_to_linker(linker)?;
    linker.func_wrap("gears", "call", call)?;
    linker.func_wrap("gears", "log", log)?;
    linker.func_wrap("gears", "config_get", config_get)?;
    linker.func_wrap("gears", "call_batch", call_batch)?;
    linker.func_wrap("gears", "create_execution", create_execution)?;
    linker.func_wrap("gears", "atomic", atomic)?;
    linker.func_wrap("gears", "create_registration", create_registration)?;
    linker.func_wrap("gears", "request", request)?;
    Ok(())
}
