//! The tagged value encoding. All integers are little-endian.
//!
//! One value: `$` bulk, `+` status, `-` error (each `u32 len` + bytes), `:` i64, `,` f64,
//! `_` null, `*` `u32 n` + n values. Arrays nest at most [`MAX_DEPTH`] deep.

use std::fmt;

/// A Redis reply as it crosses the boundary (also a flow's encoded results).
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `$`: a bulk string (any bytes).
    Bulk(Vec<u8>),
    /// `+`: a status reply.
    Status(Vec<u8>),
    /// `-`: an error reply.
    Error(Vec<u8>),
    /// `:`: a signed 64-bit integer.
    Int(i64),
    /// `,`: a double.
    Double(f64),
    /// `_`: null.
    Null,
    /// `*`: an array of values.
    Array(Vec<Reply>),
}

/// Why bytes are not a valid encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodecError {
    /// The input ends inside a value.
    Truncated,
    /// A value starts with a tag the format does not have.
    UnknownTag(u8),
    /// Bytes follow the value.
    Trailing,
    /// Arrays nest deeper than [`MAX_DEPTH`].
    TooDeep,
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::Truncated => write!(f, "truncated input"),
            CodecError::UnknownTag(tag) => write!(f, "unknown tag {tag:#04x}"),
            CodecError::Trailing => write!(f, "trailing bytes after the value"),
            CodecError::TooDeep => write!(f, "nested deeper than {MAX_DEPTH}"),
        }
    }
}

impl std::error::Error for CodecError {}

/// The deepest nesting accepted: a value inside `MAX_DEPTH` arrays decodes, one more level is
/// refused. The C decoder (`wasm/codec.c`) and the Python encoder use the same bound.
pub const MAX_DEPTH: usize = 64;

pub(crate) struct Cursor<'a> {
    pub(crate) data: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if self.data.len() < n {
            return Err(CodecError::Truncated);
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Ok(head)
    }

    pub(crate) fn u32(&mut self) -> Result<usize, CodecError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }

    fn u64(&mut self) -> Result<u64, CodecError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }

    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], CodecError> {
        let n = self.u32()?;
        self.take(n)
    }

    pub(crate) fn finish(&self) -> Result<(), CodecError> {
        if self.data.is_empty() {
            Ok(())
        } else {
            Err(CodecError::Trailing)
        }
    }
}

pub(crate) fn put_len(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&(n as u32).to_le_bytes());
}

impl Reply {
    /// Appends this reply's encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let tagged = |out: &mut Vec<u8>, tag: u8, bytes: &[u8]| {
            out.push(tag);
            put_len(out, bytes.len());
            out.extend_from_slice(bytes);
        };
        match self {
            Reply::Bulk(b) => tagged(out, b'$', b),
            Reply::Status(b) => tagged(out, b'+', b),
            Reply::Error(b) => tagged(out, b'-', b),
            Reply::Int(i) => {
                out.push(b':');
                out.extend_from_slice(&i.to_le_bytes());
            }
            Reply::Double(d) => {
                out.push(b',');
                out.extend_from_slice(&d.to_le_bytes());
            }
            Reply::Null => out.push(b'_'),
            Reply::Array(items) => {
                out.push(b'*');
                put_len(out, items.len());
                items.iter().for_each(|item| item.encode(out));
            }
        }
    }

    /// This reply's encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// Decodes one reply (the inverse of `encode`).
    pub fn decode(data: &[u8]) -> Result<Reply, CodecError> {
        let mut cur = Cursor { data };
        let value = decode_value(&mut cur, 0)?;
        cur.finish()?;
        Ok(value)
    }
}

fn decode_value(cur: &mut Cursor<'_>, depth: usize) -> Result<Reply, CodecError> {
    if depth > MAX_DEPTH {
        return Err(CodecError::TooDeep);
    }
    let tag = cur.take(1)?[0];
    Ok(match tag {
        b'$' => Reply::Bulk(cur.bytes()?.to_vec()),
        b'+' => Reply::Status(cur.bytes()?.to_vec()),
        b'-' => Reply::Error(cur.bytes()?.to_vec()),
        b':' => Reply::Int(cur.u64()? as i64),
        b',' => Reply::Double(f64::from_bits(cur.u64()?)),
        b'_' => Reply::Null,
        b'*' => {
            let n = cur.u32()?;
            if n > cur.data.len() {
                return Err(CodecError::Truncated);
            }
            let items = (0..n).map(|_| decode_value(cur, depth + 1)).collect::<Result<_, _>>()?;
            Reply::Array(items)
        }
        other => return Err(CodecError::UnknownTag(other)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{decode_args, decode_batch, encode_args};

    #[test]
    fn args_round_trip_including_binary_and_empty() {
        let args: Vec<&[u8]> = vec![b"SET", b"", b"\x00\xff bin"];
        let enc = encode_args(&args);
        assert_eq!(decode_args(&enc).unwrap(), args);
    }

    #[test]
    fn args_refuse_truncated_trailing_and_huge_counts() {
        let enc = encode_args(&[b"GET", b"key"]);
        assert_eq!(decode_args(&enc[..enc.len() - 1]), Err(CodecError::Truncated));
        let mut longer = enc.clone();
        longer.push(0);
        assert_eq!(decode_args(&longer), Err(CodecError::Trailing));
        assert_eq!(decode_args(&u32::MAX.to_le_bytes()), Err(CodecError::Truncated));
    }

    #[test]
    fn batches_decode_and_refuse_truncation() {
        let mut enc = 2u32.to_le_bytes().to_vec();
        enc.extend(encode_args(&[&b"TYPE"[..], b"k"]));
        enc.extend(encode_args(&[&b"GET"[..], b"k"]));
        let batch = decode_batch(&enc).unwrap();
        assert_eq!(batch, vec![vec![&b"TYPE"[..], b"k"], vec![&b"GET"[..], b"k"]]);
        assert_eq!(decode_batch(&enc[..enc.len() - 1]), Err(CodecError::Truncated));
        assert_eq!(decode_batch(&[9, 9, 9, 9]), Err(CodecError::Truncated));
    }

    #[test]
    fn replies_round_trip() {
        let reply = Reply::Array(vec![
            Reply::Bulk(b"v".to_vec()),
            Reply::Status(b"OK".to_vec()),
            Reply::Error(b"ERR x".to_vec()),
            Reply::Int(-7),
            Reply::Double(1.5),
            Reply::Null,
            Reply::Array(vec![]),
        ]);
        assert_eq!(Reply::decode(&reply.to_bytes()).unwrap(), reply);
    }

    #[test]
    fn reply_layout_is_the_documented_one() {
        assert_eq!(Reply::Bulk(b"ab".to_vec()).to_bytes(), b"$\x02\x00\x00\x00ab");
        assert_eq!(Reply::Int(1).to_bytes(), b":\x01\x00\x00\x00\x00\x00\x00\x00");
        assert_eq!(Reply::Null.to_bytes(), b"_");
    }

    #[test]
    fn replies_refuse_deep_nesting_and_unknown_tags() {
        let mut deep = Reply::Null;
        for _ in 0..=MAX_DEPTH {
            deep = Reply::Array(vec![deep]);
        }
        assert_eq!(Reply::decode(&deep.to_bytes()), Err(CodecError::TooDeep));
        assert_eq!(Reply::decode(b"?"), Err(CodecError::UnknownTag(b'?')));
        assert_eq!(Reply::decode(b"*\xff\xff\xff\xff"), Err(CodecError::Truncated));
    }
}
