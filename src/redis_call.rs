//! `execute()` from a sandbox: runs the command through RM_Call and converts its reply.

use crate::codec::Reply;
use crate::sandbox::RedisCaller;
use redis_module::{
    BlockedClient, CallOptionResp, CallOptions, CallOptionsBuilder, CallReply, CallResult, Context,
    ThreadSafeContext,
};
use std::sync::Arc;

/// Replicated like RedisGears' `!v` calls, with errors returned as replies.
fn call_options() -> CallOptions {
    CallOptionsBuilder::new()
        .replicate()
        .errors_as_replies()
        .resp(CallOptionResp::Resp2)
        .build()
}

fn convert(result: &CallResult<'_>) -> Reply {
    match result {
        Ok(reply) => convert_reply(reply),
        Err(err) => Reply::Error(
            err.to_utf8_string()
                .unwrap_or_else(|| "ERR unknown error".into())
                .into_bytes(),
        ),
    }
}

fn convert_reply(reply: &CallReply<'_>) -> Reply {
    match reply {
        CallReply::I64(i) => Reply::Int(i.to_i64()),
        CallReply::String(s) => Reply::Bulk(s.as_bytes().to_vec()),
        CallReply::Array(a) => Reply::Array(a.iter().map(|r| convert(&r)).collect()),
        CallReply::Null(_) => Reply::Null,
        CallReply::Bool(b) => Reply::Int(b.to_bool() as i64),
        CallReply::Double(d) => Reply::Double(d.to_double()),
        CallReply::Set(s) => Reply::Array(s.iter().map(|r| convert(&r)).collect()),
        CallReply::Map(m) => Reply::Array(
            m.iter()
                .flat_map(|(k, v)| [convert(&k), convert(&v)])
                .collect(),
        ),
        CallReply::BigNumber(n) => Reply::Bulk(n.to_string().unwrap_or_default().into_bytes()),
        CallReply::VerbatimString(v) => {
            Reply::Bulk(v.as_parts().map(|(_, b)| b.to_vec()).unwrap_or_default())
        }
        CallReply::Unknown => Reply::Null,
    }
}

/// Runs one command in `ctx` (the Redis GIL must be held).
pub fn run_command(ctx: &Context, args: &[&[u8]]) -> Reply {
    let Ok(command) = std::str::from_utf8(args[0]) else {
        return Reply::Error(b"ERR unknown command".to_vec());
    };
    let result: CallResult = ctx.call_ext(command, &call_options(), &args[1..]);
    convert(&result)
}

/// `execute()` from a worker thread: takes the Redis GIL for each call.
pub struct WorkerCaller(pub Arc<ThreadSafeContext<BlockedClient>>);

impl RedisCaller for WorkerCaller {
    fn call(&mut self, args: &[&[u8]]) -> Reply {
        let ctx = self.0.lock();
        run_command(&ctx, args)
    }
}
