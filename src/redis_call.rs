//! `execute()` from a sandbox: runs the command through RM_Call and converts its reply.

use crate::blocked::BlockedClient;
use crate::codec::Reply;
use crate::sandbox::RedisCaller;
use redis_module::{
    CallOptionResp, CallOptions, CallOptionsBuilder, CallReply, CallResult, Context, DetachedFromClient,
    ThreadSafeContext,
};
use std::sync::Arc;

/// Replicated like RedisGears' `!v` calls, with errors returned as replies.
fn call_options() -> CallOptions {
    CallOptionsBuilder::new().replicate().errors_as_replies().resp(CallOptionResp::Resp2).build()
}

fn convert(result: &CallResult<'_>) -> Reply {
    match result {
        Ok(reply) => convert_reply(reply),
        Err(err) => Reply::Error(err.to_utf8_string().unwrap_or_else(|| "ERR unknown error".into()).into_bytes()),
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
        CallReply::Map(m) => Reply::Array(m.iter().flat_map(|(k, v)| [convert(&k), convert(&v)]).collect()),
        CallReply::BigNumber(n) => Reply::Bulk(n.to_string().unwrap_or_default().into_bytes()),
        CallReply::VerbatimString(v) => Reply::Bulk(v.as_parts().map(|(_, b)| b.to_vec()).unwrap_or_default()),
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

/// `execute()` for a blocked client's worker: takes the Redis GIL for each call (or batch).
pub struct ClientCaller(pub Arc<BlockedClient>);

impl RedisCaller for ClientCaller {
    fn call(&mut self, args: &[&[u8]]) -> Reply {
        run_command(&self.0.lock(), args)
    }

    fn call_batch(&mut self, commands: &[Vec<&[u8]>]) -> Reply {
        let ctx = self.0.lock();
        Reply::Array(commands.iter().map(|c| run_command(&ctx, c)).collect())
    }
}

/// `execute()` for work no client waits on (an UNBLOCKING execution after its id was sent).
pub struct DetachedCaller(ThreadSafeContext<DetachedFromClient>);

impl RedisCaller for DetachedCaller {
    fn call(&mut self, args: &[&[u8]]) -> Reply {
        run_command(&self.0.lock(), args)
    }

    fn call_batch(&mut self, commands: &[Vec<&[u8]>]) -> Reply {
        let ctx = self.0.lock();
        Reply::Array(commands.iter().map(|c| run_command(&ctx, c)).collect())
    }
}

pub fn detached() -> Box<dyn RedisCaller> {
    Box::new(DetachedCaller(ThreadSafeContext::new()))
}

pub fn for_client(client: &Arc<BlockedClient>) -> Box<dyn RedisCaller> {
    Box::new(ClientCaller(Arc::clone(client)))
}
