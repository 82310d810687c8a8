//! Command arguments (`u32 argc`, then `argc` times `u32 len` + bytes) and batches of
//! commands (`u32 n`, then n argument encodings). Also used for every list of text fields
//! (requests, plans, registration specs).

use crate::value::{put_len, CodecError, Cursor};

/// Encodes command args (or any list of fields) as the guest does.
pub fn encode_args<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    let mut out = Vec::new();
    put_len(&mut out, args.len());
    for a in args {
        put_len(&mut out, a.as_ref().len());
        out.extend_from_slice(a.as_ref());
    }
    out
}

/// Decodes the command args a guest sent.
pub fn decode_args(data: &[u8]) -> Result<Vec<&[u8]>, CodecError> {
    let mut cur = Cursor { data };
    let argc = cur.u32()?;
    // Each arg takes at least its 4-byte length: refuse counts the input cannot hold.
    if argc > data.len() / 4 {
        return Err(CodecError::Truncated);
    }
    let args = (0..argc).map(|_| cur.bytes()).collect::<Result<Vec<_>, _>>()?;
    cur.finish()?;
    Ok(args)
}

/// Decodes a batch of commands: `u32 n`, then n command-args encodings.
pub fn decode_batch(data: &[u8]) -> Result<Vec<Vec<&[u8]>>, CodecError> {
    let mut cur = Cursor { data };
    let n = cur.u32()?;
    if n > data.len() / 4 {
        return Err(CodecError::Truncated);
    }
    let mut commands = Vec::with_capacity(n);
    for _ in 0..n {
        let argc = cur.u32()?;
        if argc > cur.data.len() / 4 {
            return Err(CodecError::Truncated);
        }
        commands.push((0..argc).map(|_| cur.bytes()).collect::<Result<Vec<_>, _>>()?);
    }
    cur.finish()?;
    Ok(commands)
}

/// Encodes a batch of commands (the inverse of [`decode_batch`]).
pub fn encode_batch<A: AsRef<[u8]>>(commands: &[Vec<A>]) -> Vec<u8> {
    let mut out = Vec::new();
    put_len(&mut out, commands.len());
    for command in commands {
        out.extend(encode_args(command));
    }
    out
}
