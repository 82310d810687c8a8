//! Writing a `Reply` (which may hold error elements inside arrays) to a Redis client.

use redis_module::{raw, Context};
use std::ffi::CString;
use wasmgears_abi::Reply;

fn c_text(bytes: &[u8]) -> CString {
    // Error and status texts are single RESP lines: no NULs, no line breaks.
    let clean: Vec<u8> = bytes.iter().map(|&b| if b == 0 || b == b'\r' || b == b'\n' { b' ' } else { b }).collect();
    CString::new(clean).unwrap_or_default()
}

pub fn send(ctx: &Context, reply: &Reply) {
    match reply {
        Reply::Bulk(b) => {
            raw::reply_with_string_buffer(ctx.ctx, b.as_ptr().cast(), b.len());
        }
        Reply::Status(s) => {
            raw::reply_with_simple_string(ctx.ctx, c_text(s).as_ptr());
        }
        Reply::Error(e) => {
            raw::reply_with_error(ctx.ctx, c_text(e).as_ptr());
        }
        Reply::Int(i) => {
            raw::reply_with_long_long(ctx.ctx, *i);
        }
        Reply::Double(d) => {
            raw::reply_with_double(ctx.ctx, *d);
        }
        Reply::Null => {
            raw::reply_with_null(ctx.ctx);
        }
        Reply::Array(items) => {
            raw::reply_with_array(ctx.ctx, items.len() as std::os::raw::c_long);
            items.iter().for_each(|item| send(ctx, item));
        }
    }
}

/// Bulk string helper for building replies.
pub fn bulk(s: impl Into<Vec<u8>>) -> Reply {
    Reply::Bulk(s.into())
}
