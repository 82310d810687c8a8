//! Build-time tool: pre-initialises the guest with Wizer (CPython booted, the `gears` runtime
//! imported) and precompiles the snapshot for the host's engine configuration.
//!
//! usage: wasmgears-snapshot <guest.wasm> <stdlib dir mounted at /lib> <out.wasm> <out.cwasm>

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use wasmgears_sandbox::engine_config;
use wasmtime::error::Context as _;
use wasmtime::{format_err, Result};
use wasmtime::{Engine, Instance, Linker, Module, Store, Val};
use wasmtime_wasi::p1::{self, WasiP1Ctx};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};
use wasmtime_wizer::{InstanceState, SnapshotVal, ValType, Wizer};

/// Reads the instance's globals and memory for Wizer's snapshot.
struct Snapshotted<'a> {
    store: &'a mut Store<WasiP1Ctx>,
    instance: Instance,
}

impl InstanceState for Snapshotted<'_> {
    async fn global_get(&mut self, name: &str, _: ValType) -> SnapshotVal {
        let global = self.instance.get_global(&mut *self.store, name).expect("global exported by wizer");
        match global.get(&mut *self.store) {
            Val::I32(x) => SnapshotVal::I32(x),
            Val::I64(x) => SnapshotVal::I64(x),
            Val::F32(x) => SnapshotVal::F32(x),
            Val::F64(x) => SnapshotVal::F64(x),
            Val::V128(x) => SnapshotVal::V128(x.as_u128()),
            other => panic!("global {name} has an unsupported type: {other:?}"),
        }
    }

    async fn memory_contents(&mut self, name: &str, contents: impl FnOnce(&[u8]) + Send) {
        let memory = self.instance.get_memory(&mut *self.store, name).expect("memory exported by wizer");
        contents(memory.data(&*self.store))
    }
}

/// Wizer's snapshot is async only in signature: it never suspends with these sync callbacks.
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = future.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

fn snapshot(guest: &[u8], stdlib_dir: &str) -> Result<Vec<u8>> {
    let wizer = Wizer::new();
    let (cx, instrumented) = wizer.instrument(guest)?;
    let engine = Engine::default();
    let module = Module::new(&engine, &instrumented)?;
    let mut linker: Linker<WasiP1Ctx> = Linker::new(&engine);
    p1::add_to_linker_sync(&mut linker, |t| t)?;
    // Initialisation calls only `log` (when it fails); the other host imports trap if used.
    linker.func_wrap(
        "gears",
        "log",
        |mut caller: wasmtime::Caller<'_, WasiP1Ctx>, _level: i32, ptr: i32, len: i32| {
            if let Some(wasmtime::Extern::Memory(mem)) = caller.get_export("memory") {
                let data = mem.data(&caller);
                let msg = data.get(ptr as usize..(ptr as usize).saturating_add(len as usize)).unwrap_or(b"?");
                eprintln!("guest: {}", String::from_utf8_lossy(msg));
            }
        },
    )?;
    linker.define_unknown_imports_as_traps(&module)?;
    // The run-time sandbox preopens exactly this, in this order: `/lib` must be fd 3 in both.
    let wasi = WasiCtxBuilder::new()
        .allow_blocking_current_thread(true)
        .inherit_stderr()
        .inherit_stdout()
        .preopened_dir(stdlib_dir, "/lib", FsPerms::ReadOnly)?
        .build_p1();
    let mut store = Store::new(&engine, wasi);
    let instance = linker.instantiate(&mut store, &module)?;
    instance.get_typed_func::<(), ()>(&mut store, "_initialize")?.call(&mut store, ())?;
    instance
        .get_typed_func::<(), ()>(&mut store, "wizer-initialize")?
        .call(&mut store, ())
        .context("the guest's initialisation failed")?;
    let wasm = block_on(wizer.snapshot(&cx, &mut Snapshotted { store: &mut store, instance }))?;
    Ok(wasm)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, guest, stdlib_dir, out_wasm, out_cwasm] = args.as_slice() else {
        return Err(format_err!("usage: wasmgears-snapshot <guest.wasm> <stdlib dir> <out.wasm> <out.cwasm>"));
    };
    let guest = std::fs::read(guest).with_context(|| format!("reading {guest}"))?;
    let snap = snapshot(&guest, stdlib_dir)?;
    std::fs::write(out_wasm, &snap)?;
    let engine = Engine::new(&engine_config::base_config())?;
    let compiled = engine.precompile_module(&snap)?;
    std::fs::write(out_cwasm, compiled)?;
    Ok(())
}
