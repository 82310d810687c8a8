//! The RDB's second string (saved_state.rs), where StreamReader positions were kept before
//! they became the streams' consumer group (streams.rs). It is still written (empty) so that
//! RDBs load in older versions of the module, and read (and set aside) so that older RDBs
//! load here: their registrations re-read their streams from their consumer group, which
//! such streams do not have yet, so from the stream's start.

use wasmgears_abi::{decode_args, encode_args};

const FORMAT: &[u8] = b"wasmgears-stream-positions-1";

/// The string of no positions.
pub fn encode_none() -> Vec<u8> {
    encode_args(&[FORMAT])
}

/// How many positions an older RDB's string holds; an error if it is not one.
pub fn count(blob: &[u8]) -> Result<usize, String> {
    let flat = decode_args(blob).map_err(|e| e.to_string())?;
    let (tag, flat) = flat.split_first().ok_or("empty")?;
    if *tag != FORMAT {
        return Err(format!("unknown format {}", String::from_utf8_lossy(tag)));
    }
    if flat.len() % 3 != 0 {
        return Err("truncated stream position".into());
    }
    Ok(flat.len() / 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_positions_are_counted_and_garbage_refused() {
        assert_eq!(count(&encode_none()).unwrap(), 0);
        assert_eq!(count(&encode_args(&[FORMAT, b"0-1", b"s", b"5-1", b"0-2", b"t", b"7-0"])).unwrap(), 2);
        assert!(count(b"garbage").is_err());
        assert!(count(&encode_args(&[FORMAT, b"0-1"])).is_err());
    }
}
