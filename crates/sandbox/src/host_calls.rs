//! The guest's one import, `gears.host(op, ptr, len, reply_ptr, reply_len)`: reads the
//! request (an argument encoding), answers the [`HostRequest`] `op` names, and writes the
//! reply (one value) into a fresh guest allocation. Guest memory is only touched through
//! wasmtime's bounds-checked slices.

use crate::services::LogLevel;
use crate::state::{CreatedExecution, CreatedRegistration, Entry, HostState, ReplySpace};
use std::sync::Arc;
use wasmgears_abi::{decode_args, decode_batch, CodecError, HostRequest, RegistrationSpec, Reply, MAX_INTERVAL_SECS};
use wasmtime::{Caller, Extern, Linker};
use wasmtime_wasi::p1;

type GuestCaller<'a> = Caller<'a, HostState>;

/// The guest's memory and allocator (found once per instance; by name before that).
fn reply_space(caller: &mut GuestCaller<'_>) -> wasmtime::Result<Arc<ReplySpace>> {
    if let Some(space) = &caller.data().reply_space {
        return Ok(Arc::clone(space));
    }
    let memory = match caller.get_export("memory") {
        Some(Extern::Memory(m)) => m,
        _ => wasmtime::bail!("guest exports no memory"),
    };
    let alloc = match caller.get_export("gears_alloc") {
        Some(Extern::Func(f)) => f.typed::<u32, u32>(&caller)?,
        _ => wasmtime::bail!("guest exports no gears_alloc"),
    };
    Ok(Arc::new(ReplySpace { memory, alloc }))
}

/// Copies `bytes` into a fresh guest allocation and stores its address and length at
/// `ptr_out`/`len_out`. Returns false when the guest cannot allocate that much.
fn give_to_guest(
    caller: &mut GuestCaller<'_>,
    space: &ReplySpace,
    bytes: &[u8],
    ptr_out: u32,
    len_out: u32,
) -> wasmtime::Result<bool> {
    let Ok(len) = u32::try_from(bytes.len()) else {
        return Ok(false);
    };
    let ptr = space.alloc.call(&mut *caller, len)?;
    if ptr == 0 {
        return Ok(false);
    }
    let mem = space.memory;
    mem.write(&mut *caller, ptr as usize, bytes)?;
    mem.write(&mut *caller, ptr_out as usize, &ptr.to_le_bytes())?;
    mem.write(&mut *caller, len_out as usize, &len.to_le_bytes())?;
    Ok(true)
}

fn error(msg: &str) -> Reply {
    Reply::Error(msg.as_bytes().to_vec())
}

fn ok() -> Reply {
    Reply::Status(b"OK".to_vec())
}

fn not_available() -> Reply {
    error("ERR execute() is not available here")
}

fn malformed(e: CodecError) -> Reply {
    Reply::Error(format!("ERR malformed request from the sandbox: {e}").into_bytes())
}

fn text(field: &[u8]) -> String {
    String::from_utf8_lossy(field).into_owned()
}

fn number<T: std::str::FromStr>(field: Option<&&[u8]>) -> Option<T> {
    std::str::from_utf8(field?).ok()?.parse().ok()
}

/// The one import. 0 with the reply written, -1 when the guest cannot hold the reply.
fn host(
    mut caller: GuestCaller<'_>,
    op: u32,
    ptr: u32,
    len: u32,
    reply_ptr: u32,
    reply_len: u32,
) -> wasmtime::Result<i32> {
    let space = reply_space(&mut caller)?;
    let range = ptr as usize..(ptr as usize).saturating_add(len as usize);
    let Some(request) = space.memory.data(&caller).get(range).map(<[u8]>::to_vec) else {
        wasmtime::bail!("guest passed an out-of-bounds buffer");
    };
    let reply = match HostRequest::from_code(op) {
        Some(HostRequest::CallBatch) => call_batch(caller.data_mut(), &request),
        Some(op) => match decode_args(&request) {
            Ok(fields) => answer(caller.data_mut(), op, &fields),
            Err(e) => malformed(e),
        },
        None => error("ERR unknown host request"),
    };
    let mut bytes = reply.to_bytes();
    if let Some(refusal) = crate::limits::reply_too_large(bytes.len()) {
        bytes = Reply::Error(format!("ERR {refusal}").into_bytes()).to_bytes();
    }
    Ok(if give_to_guest(&mut caller, &space, &bytes, reply_ptr, reply_len)? { 0 } else { -1 })
}

fn call_batch(state: &mut HostState, request: &[u8]) -> Reply {
    match decode_batch(request) {
        Ok(commands) if commands.iter().any(|c| c.is_empty()) => error("ERR empty command"),
        Ok(commands) => state.entry.redis.as_mut().map_or_else(not_available, |redis| redis.call_batch(&commands)),
        Err(e) => malformed(e),
    }
}

/// Every request but `CallBatch` (whose request is a batch, not a list of fields).
fn answer(state: &mut HostState, op: HostRequest, fields: &[&[u8]]) -> Reply {
    let HostState { entry, services, .. } = state;
    match op {
        HostRequest::Call if fields.is_empty() => error("ERR wrong number of arguments"),
        HostRequest::Call => entry.redis.as_mut().map_or_else(not_available, |redis| redis.call(fields)),
        HostRequest::ReadKeys => entry.redis.as_mut().map_or_else(not_available, |redis| redis.read_keys(fields)),
        HostRequest::CallBatch => error("ERR call_batch takes a batch"),
        HostRequest::Atomic => match entry.redis.as_mut() {
            Some(redis) => {
                redis.atomic(fields.first() == Some(&b"1".as_slice()));
                ok()
            }
            None => error("atomic() is not available here"),
        },
        HostRequest::Log => {
            let level = number::<i64>(fields.first()).unwrap_or(2);
            let msg = fields.get(1).map(|m| text(m)).unwrap_or_default();
            services.log(LogLevel::from_guest(level), &format!("GEARS: {msg}"));
            Reply::Null
        }
        HostRequest::ConfigGet => match fields.first().and_then(|name| services.config(&text(name))) {
            Some(value) => Reply::Bulk(value.into_bytes()),
            None => Reply::Null,
        },
        HostRequest::CreateExecution => {
            let id = services.new_execution_id();
            entry.created.push(CreatedExecution { id: id.clone(), plan: fields.iter().map(|f| text(f)).collect() });
            Reply::Bulk(id.into_bytes())
        }
        HostRequest::CreateRegistration => match RegistrationSpec::decode(fields) {
            Ok(spec) => {
                let id = entry.restore_ids.pop_front().unwrap_or_else(|| services.new_registration_id());
                entry.registrations.push(CreatedRegistration { id: id.clone(), spec });
                Reply::Bulk(id.into_bytes())
            }
            Err(e) => Reply::Error(e.to_string().into_bytes()),
        },
        HostRequest::GetCommand => match &entry.command {
            Some(cmd) => Reply::Array(cmd.args.iter().map(|a| Reply::Bulk(a.clone())).collect()),
            None => error("Can not get command ctx"),
        },
        HostRequest::OverrideReply => match (&mut entry.command, fields) {
            (Some(cmd), [encoded]) if !cmd.hook => {
                if cmd.override_reply.is_some() {
                    return error("Can only override reply once");
                }
                match Reply::decode(encoded) {
                    Ok(reply) => {
                        cmd.override_reply = Some(reply);
                        ok()
                    }
                    Err(e) => malformed(e),
                }
            }
            _ => error("Can not get command ctx"),
        },
        HostRequest::CallNext => match (&entry.command, entry.redis.as_mut()) {
            (Some(cmd), Some(redis)) if cmd.hook && !cmd.args.is_empty() => {
                let mut args: Vec<&[u8]> = vec![cmd.args[0].as_slice()];
                args.extend_from_slice(fields);
                services.call_next(redis.as_mut(), cmd, &args)
            }
            _ => error("Can not get CommandHook ctx"),
        },
        HostRequest::TimeEvent => time_event(entry, services.as_ref(), fields),
        HostRequest::Entry => {
            Reply::Array(vec![Reply::Int(i64::from(entry.main_thread)), Reply::Int(i64::from(entry.async_allowed))])
        }
        HostRequest::Defer if entry.async_allowed => {
            let token = *entry.after.deferred.get_or_insert_with(|| services.open_deferred());
            Reply::Int(token as i64)
        }
        HostRequest::Defer => error("Creating async record is not allow"),
        HostRequest::Complete => match fields {
            [token, encoded] => match number::<u64>(Some(token)) {
                Some(token) => {
                    entry.after.completions.push((token, encoded.to_vec()));
                    ok()
                }
                None => error("ERR bad token"),
            },
            _ => error("ERR wrong number of arguments"),
        },
        HostRequest::Wake => match number::<u64>(fields.first()) {
            Some(ms) => {
                entry.after.wake_ms = Some(entry.after.wake_ms.map_or(ms, |w| w.min(ms)));
                ok()
            }
            None => error("ERR bad delay"),
        },
        HostRequest::Requirements => Reply::Array(
            entry
                .wheels
                .iter()
                .map(|(name, bytes)| {
                    Reply::Array(vec![Reply::Bulk(name.clone().into_bytes()), Reply::Bulk(bytes.to_vec())])
                })
                .collect(),
        ),
    }
}

/// `registerTE(seconds, callback, keyName)`: reserves the event (and its key); an id, or 0
/// when the key already exists.
fn time_event(entry: &mut Entry, services: &dyn crate::HostServices, fields: &[&[u8]]) -> Reply {
    let seconds = match number::<u64>(fields.first()) {
        Some(s) if (1..=MAX_INTERVAL_SECS).contains(&s) => s,
        _ => {
            return Reply::Error(
                format!("time argument must be a positive long of at most {MAX_INTERVAL_SECS} seconds").into_bytes(),
            )
        }
    };
    let key = (fields.get(2) == Some(&b"1".as_slice())).then(|| fields.get(1).map(|k| k.to_vec()).unwrap_or_default());
    let Some(redis) = entry.redis.as_mut() else {
        return error("can not create time event here");
    };
    match services.reserve_time_event(seconds, key, redis.as_mut()) {
        Some(id) => {
            entry.after.time_events.push(id);
            Reply::Int(id as i64)
        }
        None => Reply::Int(0),
    }
}

pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    p1::add_to_linker_sync(linker, |state: &mut HostState| &mut state.wasi)?;
    crate::wasi_time::add_to_linker(linker)?;
    linker.func_wrap("gears", "host", host)?;
    Ok(())
}
