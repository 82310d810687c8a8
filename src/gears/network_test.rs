//! RG.NETWORKTEST (RedisGears 1.2: src/module.c): a `test` message to every peer, which logs
//! that it got it. The simplest use of the links between shards.

use redis_module::Context;

use crate::transport;

const FUNCTION: &str = "RG_NetworkTest";

pub fn install() {
    transport::on(FUNCTION, received);
}

pub fn send() -> Result<(), String> {
    transport::broadcast(FUNCTION, b"test")
}

fn received(_ctx: &Context, sender: &str, payload: &[u8]) {
    crate::redis::log::notice(&format!(
        "wasmgears: Got test network message from {sender}: {}",
        String::from_utf8_lossy(payload)
    ));
}
