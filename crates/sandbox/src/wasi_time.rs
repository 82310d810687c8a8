//! The guest's clocks and sleeps. WASI's `poll_oneoff` (behind `time.sleep`, `select`, ...)
//! would block the thread for as long as the guest asks, out of reach of the epoch deadline
//! (which only interrupts running wasm code): `time.sleep(10**9)` would hold a worker, or
//! Redis's main thread, forever. Here sleeping happens in short slices that honour the
//! entry's deadline and abort flag. `clock_time_get` is ours too, so absolute deadlines in
//! `poll_oneoff` are measured on the same monotonic clock.

use crate::state::{HostState, Stopped};
use std::sync::atomic::Ordering;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use wasmtime::{Caller, Extern, Linker};

const ERRNO_SUCCESS: i32 = 0;
const ERRNO_BADF: u16 = 8;
const ERRNO_INVAL: i32 = 28;
const SUBSCRIPTION_SIZE: usize = 48;
const EVENT_SIZE: usize = 32;
/// How often a sleeping guest rechecks its deadline and abort flag.
const SLICE: Duration = Duration::from_millis(10);

fn monotonic_ns() -> u64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Now on WASI clock `id` (realtime 0, monotonic 1, process/thread CPU time 2/3).
fn now_ns(id: u32) -> Option<u64> {
    match id {
        0 => Some(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)),
        1..=3 => Some(monotonic_ns()),
        _ => None,
    }
}

/// One subscription of `poll_oneoff`, decoded (pure: see the tests).
#[derive(Debug, PartialEq, Eq)]
enum Subscription {
    /// Fires after this many nanoseconds from now.
    Clock {
        userdata: u64,
        after_ns: u64,
    },
    /// An fd subscription: not supported in the sandbox, answered with EBADF at once.
    Fd {
        userdata: u64,
        kind: u8,
    },
    Invalid {
        userdata: u64,
    },
}

fn decode(raw: &[u8], now: impl Fn(u32) -> Option<u64>) -> Subscription {
    let u64_at = |o: usize| u64::from_le_bytes(raw[o..o + 8].try_into().unwrap_or_default());
    let userdata = u64_at(0);
    match raw[8] {
        0 => {
            let clock = u32::from_le_bytes(raw[16..20].try_into().unwrap_or_default());
            let timeout = u64_at(24);
            let absolute = u16::from_le_bytes(raw[40..42].try_into().unwrap_or_default()) & 1 == 1;
            match now(clock) {
                Some(t) if absolute => Subscription::Clock { userdata, after_ns: timeout.saturating_sub(t) },
                Some(_) => Subscription::Clock { userdata, after_ns: timeout },
                None => Subscription::Invalid { userdata },
            }
        }
        kind @ (1 | 2) => Subscription::Fd { userdata, kind },
        _ => Subscription::Invalid { userdata },
    }
}

fn event(userdata: u64, error: u16, kind: u8) -> [u8; EVENT_SIZE] {
    let mut e = [0u8; EVENT_SIZE];
    e[0..8].copy_from_slice(&userdata.to_le_bytes());
    e[8..10].copy_from_slice(&error.to_le_bytes());
    e[10] = kind;
    e
}

fn clock_time_get(mut caller: Caller<'_, HostState>, id: i32, _precision: i64, out: i32) -> wasmtime::Result<i32> {
    let Some(t) = now_ns(id as u32) else { return Ok(ERRNO_INVAL) };
    let Some(Extern::Memory(mem)) = caller.get_export("memory") else { wasmtime::bail!("guest exports no memory") };
    mem.write(&mut caller, out as u32 as usize, &t.to_le_bytes())?;
    Ok(ERRNO_SUCCESS)
}

fn poll_oneoff(
    mut caller: Caller<'_, HostState>,
    subs: i32,
    events: i32,
    n: i32,
    nevents: i32,
) -> wasmtime::Result<i32> {
    let n = n as u32 as usize;
    if n == 0 || n > 4096 {
        return Ok(ERRNO_INVAL);
    }
    let Some(Extern::Memory(mem)) = caller.get_export("memory") else { wasmtime::bail!("guest exports no memory") };
    let mut raw = vec![0u8; n * SUBSCRIPTION_SIZE];
    mem.read(&caller, subs as u32 as usize, &mut raw)?;
    let started = Instant::now();
    let decoded: Vec<Subscription> = raw.chunks(SUBSCRIPTION_SIZE).map(|s| decode(s, now_ns)).collect();
    let immediate = decoded.iter().any(|s| !matches!(s, Subscription::Clock { .. }));
    let first_due = decoded
        .iter()
        .filter_map(|s| match s {
            Subscription::Clock { after_ns, .. } => Some(started + Duration::from_nanos(*after_ns)),
            _ => None,
        })
        .min();
    if !immediate {
        if let Some(due) = first_due {
            loop {
                let entry = &caller.data().entry;
                if entry.abort.as_ref().is_some_and(|a| a.load(Ordering::Relaxed)) {
                    return Err(wasmtime::Error::new(Stopped::Aborted));
                }
                let now = Instant::now();
                if now >= entry.deadline {
                    return Err(wasmtime::Error::new(Stopped::Deadline));
                }
                if now >= due {
                    break;
                }
                std::thread::sleep(SLICE.min(due - now).min(entry.deadline - now));
            }
        }
    }
    let now = Instant::now();
    let mut out = Vec::new();
    for s in &decoded {
        match *s {
            Subscription::Clock { userdata, after_ns } if started + Duration::from_nanos(after_ns) <= now => {
                out.extend(event(userdata, 0, 0))
            }
            Subscription::Clock { .. } => {}
            Subscription::Fd { userdata, kind } => out.extend(event(userdata, ERRNO_BADF, kind)),
            Subscription::Invalid { userdata } => out.extend(event(userdata, ERRNO_INVAL as u16, 0)),
        }
    }
    mem.write(&mut caller, events as u32 as usize, &out)?;
    mem.write(&mut caller, nevents as u32 as usize, &((out.len() / EVENT_SIZE) as u32).to_le_bytes())?;
    Ok(ERRNO_SUCCESS)
}

/// Replaces WASI's `poll_oneoff` and `clock_time_get` (after `add_to_linker_sync`).
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    linker.func_wrap("wasi_snapshot_preview1", "poll_oneoff", poll_oneoff)?;
    linker.func_wrap("wasi_snapshot_preview1", "clock_time_get", clock_time_get)?;
    linker.allow_shadowing(false);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock_sub(userdata: u64, clock: u32, timeout: u64, absolute: bool) -> [u8; SUBSCRIPTION_SIZE] {
        let mut s = [0u8; SUBSCRIPTION_SIZE];
        s[0..8].copy_from_slice(&userdata.to_le_bytes());
        s[16..20].copy_from_slice(&clock.to_le_bytes());
        s[24..32].copy_from_slice(&timeout.to_le_bytes());
        s[40..42].copy_from_slice(&(absolute as u16).to_le_bytes());
        s
    }

    #[test]
    fn subscriptions_decode_relative_and_absolute_clocks() {
        let now = |_| Some(1_000);
        assert_eq!(decode(&clock_sub(7, 1, 500, false), now), Subscription::Clock { userdata: 7, after_ns: 500 });
        assert_eq!(decode(&clock_sub(7, 1, 1_500, true), now), Subscription::Clock { userdata: 7, after_ns: 500 });
        assert_eq!(decode(&clock_sub(7, 1, 10, true), now), Subscription::Clock { userdata: 7, after_ns: 0 });
        assert_eq!(decode(&clock_sub(7, 9, 10, false), |_| None), Subscription::Invalid { userdata: 7 });
        let mut fd = clock_sub(3, 0, 0, false);
        fd[8] = 1;
        assert_eq!(decode(&fd, now), Subscription::Fd { userdata: 3, kind: 1 });
    }
}
