//! The sandbox alone: a real guest (the built snapshot) run against a fake host, no Redis.
//!
//! The guest directory comes from `WASMGEARS_GUEST_DIR` (the Makefile sets it), else from
//! `target/.guest-dir` (written by `make module`); with neither the tests say so and pass
//! vacuously, unless `WASMGEARS_REQUIRE_GUEST` is set (as `make test` does).

use std::any::Any;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use wasmgears_abi::{GuestEntry, Reply, VECTORS_JSON};
use wasmgears_sandbox::{limits, Guest, HostServices, LogLevel, RedisCaller, Runtime, SandboxError, ScriptOutcome};

/// Host services that count ids and keep the log.
#[derive(Default)]
struct FakeServices {
    next: AtomicU64,
    log: Mutex<Vec<String>>,
}

impl HostServices for FakeServices {
    fn new_execution_id(&self) -> String {
        format!("exec-{}", self.next.fetch_add(1, Ordering::Relaxed))
    }
    fn new_registration_id(&self) -> String {
        format!("reg-{}", self.next.fetch_add(1, Ordering::Relaxed))
    }
    fn reserve_time_event(&self, _seconds: u64, _key: Option<Vec<u8>>, _redis: &mut dyn RedisCaller) -> Option<u64> {
        Some(self.next.fetch_add(1, Ordering::Relaxed))
    }
    fn open_deferred(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }
    fn config(&self, name: &str) -> Option<String> {
        (name == "FakeSetting").then(|| "42".to_string())
    }
    fn log(&self, _level: LogLevel, line: &str) {
        self.log.lock().unwrap().push(line.to_string());
    }
}

/// A "Redis" that answers every command with its own arguments, and remembers them.
#[derive(Clone, Default)]
struct EchoRedis {
    calls: Arc<Mutex<Vec<Vec<String>>>>,
}

impl RedisCaller for EchoRedis {
    fn call(&mut self, args: &[&[u8]]) -> Reply {
        let args: Vec<String> = args.iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        self.calls.lock().unwrap().push(args.clone());
        if args[0].eq_ignore_ascii_case("fail") {
            return Reply::Error(b"ERR fake failure".to_vec());
        }
        Reply::Array(args.into_iter().map(|a| Reply::Bulk(a.into_bytes())).collect())
    }
    fn atomic(&mut self, _enter: bool) {}
    fn with_host_handle(&mut self, _f: &mut dyn FnMut(&dyn Any)) {}
}

struct Fixture {
    runtime: Runtime,
    services: Arc<FakeServices>,
}

fn fixture() -> Option<&'static Fixture> {
    static FIXTURE: OnceLock<Option<Fixture>> = OnceLock::new();
    FIXTURE
        .get_or_init(|| {
            let built = || {
                let recorded = concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/.guest-dir");
                std::fs::read_to_string(recorded).ok().map(|d| PathBuf::from(d.trim()))
            };
            let Some(dir) = std::env::var_os("WASMGEARS_GUEST_DIR").map(PathBuf::from).or_else(built) else {
                assert!(
                    std::env::var_os("WASMGEARS_REQUIRE_GUEST").is_none(),
                    "WASMGEARS_GUEST_DIR is not set (make test sets it)"
                );
                eprintln!("no WASMGEARS_GUEST_DIR: the guest tests are skipped");
                return None;
            };
            let services = Arc::new(FakeServices::default());
            let runtime = Runtime::new(&dir, 8, services.clone()).expect("the guest loads");
            Some(Fixture { runtime, services })
        })
        .as_ref()
}

fn results(reply: Reply) -> (Vec<Reply>, Vec<Reply>) {
    match reply {
        Reply::Array(mut parts) if parts.len() >= 2 => {
            let errors = match parts.remove(1) {
                Reply::Array(e) => e,
                other => panic!("errors: {other:?}"),
            };
            match parts.remove(0) {
                Reply::Array(r) => (r, errors),
                other => panic!("results: {other:?}"),
            }
        }
        other => panic!("not results: {other:?}"),
    }
}

fn bulk(text: &str) -> Reply {
    Reply::Bulk(text.as_bytes().to_vec())
}

#[test]
fn a_script_runs_and_its_execute_reaches_the_host() {
    let Some(fx) = fixture() else { return };
    let mut guest = Guest::new(&fx.runtime).unwrap();
    let redis = EchoRedis::default();
    let script = br#"
r = execute('SET', 'k', 1)
assert r == ['SET', 'k', '1'], r
assert configGet('FakeSetting') == '42'
log('hello from the guest')
GB('CommandReader').map(lambda x: x[1:]).register(trigger='t')
"#;
    let (outcome, created) = guest.exec_script(script, Box::new(redis.clone()), Vec::new(), Vec::new()).unwrap();
    assert_eq!(outcome, ScriptOutcome::Ok);
    assert_eq!(redis.calls.lock().unwrap()[0], ["SET", "k", "1"]);
    assert!(fx.services.log.lock().unwrap().iter().any(|l| l == "GEARS: hello from the guest"));
    assert_eq!(created.registrations.len(), 1);
    let id = &created.registrations[0].id;
    assert!(id.starts_with("reg-"), "{id}");
    assert_eq!(created.registrations[0].spec.reader_name(), "CommandReader");

    let payload = wasmgears_abi::encode_args(&[id.as_str(), "t", "a", "b"]);
    let reply =
        guest.run(GuestEntry::RunTrigger, &payload, wasmgears_sandbox::EntrySetup::new(Box::new(redis))).unwrap();
    let (records, errors) = results(reply);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(records, vec![bulk("['a', 'b']")]);
}

#[test]
fn a_python_error_is_the_scripts_outcome() {
    let Some(fx) = fixture() else { return };
    let mut guest = Guest::new(&fx.runtime).unwrap();
    let (outcome, _) =
        guest.exec_script(b"execute('fail')", Box::new(EchoRedis::default()), Vec::new(), Vec::new()).unwrap();
    match outcome {
        ScriptOutcome::PythonError(text) => assert!(text.contains("ERR fake failure"), "{text}"),
        ScriptOutcome::Ok => panic!("the error reply must raise"),
    }
    // The session is still usable after a Python error.
    let (outcome, _) = guest.exec_script(b"x = 1", Box::new(EchoRedis::default()), Vec::new(), Vec::new()).unwrap();
    assert_eq!(outcome, ScriptOutcome::Ok);
}

#[test]
fn a_runaway_script_meets_the_deadline_and_poisons_its_guest() {
    let Some(fx) = fixture() else { return };
    let mut guest = Guest::new(&fx.runtime).unwrap();
    let before = limits::time_limit_ms();
    limits::set_time_limit_ms(300);
    let started = std::time::Instant::now();
    let result = guest.exec_script(b"while True: pass", Box::new(EchoRedis::default()), Vec::new(), Vec::new());
    limits::set_time_limit_ms(before as i64);
    assert!(matches!(result, Err(SandboxError::TimeLimit(300, _))), "{:?}", result.err());
    assert!(started.elapsed().as_secs() < 5);
    let again = guest.exec_script(b"x = 1", Box::new(EchoRedis::default()), Vec::new(), Vec::new());
    assert!(matches!(again, Err(SandboxError::Poisoned(_))));
}

#[test]
fn a_greedy_script_meets_the_memory_cap() {
    let Some(fx) = fixture() else { return };
    let mut guest = Guest::new(&fx.runtime).unwrap();
    // The cap is process-wide; 64 MB is well above what the other tests use.
    limits::set_memory_cap_mb(64);
    let script = b"
try:
    hog = bytearray(200 * 1024 * 1024)
    outcome = 'allocated'
except MemoryError:
    outcome = 'refused'
execute('RESULT', outcome)
";
    let redis = EchoRedis::default();
    let (outcome, _) = guest.exec_script(script, Box::new(redis.clone()), Vec::new(), Vec::new()).unwrap();
    limits::set_memory_cap_mb(256);
    assert_eq!(outcome, ScriptOutcome::Ok);
    assert_eq!(redis.calls.lock().unwrap().last().unwrap(), &["RESULT", "refused"]);
}

#[test]
fn a_host_panic_poisons_the_guest_instead_of_unwinding_further() {
    struct PanickingRedis;
    impl RedisCaller for PanickingRedis {
        fn call(&mut self, _args: &[&[u8]]) -> Reply {
            panic!("fake host bug")
        }
        fn atomic(&mut self, _enter: bool) {}
        fn with_host_handle(&mut self, _f: &mut dyn FnMut(&dyn Any)) {}
    }
    let Some(fx) = fixture() else { return };
    let mut guest = Guest::new(&fx.runtime).unwrap();
    let result = guest.exec_script(b"execute('PING')", Box::new(PanickingRedis), Vec::new(), Vec::new());
    assert!(matches!(&result, Err(SandboxError::Host(m)) if m.contains("fake host bug")), "{:?}", result.err());
    let again = guest.exec_script(b"x = 1", Box::new(EchoRedis::default()), Vec::new(), Vec::new());
    assert!(matches!(again, Err(SandboxError::Poisoned(_))));
}

/// A "Redis" whose `atomic()` holds a lock (like the Redis GIL) until left or dropped, and
/// whose commands panic.
struct LockingRedis {
    held: Arc<Mutex<u32>>,
    dropped: Arc<AtomicU64>,
}

impl RedisCaller for LockingRedis {
    fn call(&mut self, _args: &[&[u8]]) -> Reply {
        panic!("fake host bug inside atomic")
    }
    fn atomic(&mut self, enter: bool) {
        *self.held.lock().unwrap() += u32::from(enter);
    }
    fn with_host_handle(&mut self, _f: &mut dyn FnMut(&dyn Any)) {}
}

impl Drop for LockingRedis {
    fn drop(&mut self) {
        *self.held.lock().unwrap() = 0; // what WorkerCaller's drop does: the lock is released
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn a_host_panic_inside_atomic_releases_the_callers_lock_and_poisons() {
    let Some(fx) = fixture() else { return };
    let (held, dropped) = (Arc::new(Mutex::new(0)), Arc::new(AtomicU64::new(0)));
    let redis = LockingRedis { held: Arc::clone(&held), dropped: Arc::clone(&dropped) };
    let mut guest = Guest::new(&fx.runtime).unwrap();
    let script = b"with atomic():\n    execute('PING')\n";
    let result = guest.exec_script(script, Box::new(redis), Vec::new(), Vec::new());
    assert!(matches!(&result, Err(SandboxError::Host(m)) if m.contains("inside atomic")), "{:?}", result.err());
    assert_eq!(dropped.load(Ordering::Relaxed), 1, "the entry's caller is dropped when the entry ends");
    assert_eq!(*held.lock().unwrap(), 0, "the atomic() lock is released");
    assert!(matches!(guest.poisoned(), Some(SandboxError::Host(_))));
}

#[test]
fn sessions_do_not_share_globals() {
    let Some(fx) = fixture() else { return };
    let mut a = Guest::new(&fx.runtime).unwrap();
    let mut b = Guest::new(&fx.runtime).unwrap();
    let run =
        |g: &mut Guest, s: &[u8]| g.exec_script(s, Box::new(EchoRedis::default()), Vec::new(), Vec::new()).unwrap().0;
    assert_eq!(run(&mut a, b"import builtins; builtins.shared = 1"), ScriptOutcome::Ok);
    assert!(matches!(run(&mut b, b"import builtins; builtins.shared"), ScriptOutcome::PythonError(_)));
}

#[test]
fn the_golden_vectors_pass_inside_the_guest() {
    let Some(fx) = fixture() else { return };
    let mut guest = Guest::new(&fx.runtime).unwrap();
    let failures = guest.self_test(VECTORS_JSON, Box::new(EchoRedis::default())).unwrap();
    assert_eq!(failures, "", "vectors the guest disagrees with");
}

#[test]
fn a_vector_the_guest_encodes_differently_fails_its_self_test() {
    let Some(fx) = fixture() else { return };
    let mut vectors: serde_json::Value = serde_json::from_str(VECTORS_JSON).unwrap();
    let records = vectors["records"].as_array_mut().unwrap();
    let record = records.iter_mut().find(|v| v["name"] == "list nested at the limit").unwrap();
    record["record"]["nest"] = 65.into(); // cut one level past the limit: not these bytes
    let mut guest = Guest::new(&fx.runtime).unwrap();
    let failures = guest.self_test(&vectors.to_string(), Box::new(EchoRedis::default())).unwrap();
    assert!(failures.contains("C encode_record list nested at the limit"), "{failures}");
}
