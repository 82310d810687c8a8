//! Where StreamReader registrations are in their streams (the last id each processed per
//! stream), as persisted: saved in the RDB beside the sessions (saved_state.rs), sent to
//! replicas and the AOF as `RG.INNERSTREAMPOS` after each batch (streams.rs), and applied to
//! the re-created registrations when loading. A position whose registration belongs to a
//! session that failed to restore is kept (and saved) for when it comes back.

use crate::gears::persistence;
use crate::gears::registrations;
use crate::gears::stream_registration::StreamPosition;
use std::sync::{Mutex, MutexGuard};
use wasmgears_abi::{decode_args, encode_args};

const FORMAT: &[u8] = b"wasmgears-stream-positions-1";

/// Positions of registrations that do not exist here (their session failed to restore).
/// Lock order: level 3, taken alone.
static KEPT: Mutex<Vec<StreamPosition>> = Mutex::new(Vec::new());

fn kept() -> MutexGuard<'static, Vec<StreamPosition>> {
    KEPT.lock().unwrap_or_else(|p| p.into_inner())
}

/// The format tag, then `registration, key, last id` per position.
pub fn encode(positions: &[StreamPosition]) -> Vec<u8> {
    let mut flat: Vec<&[u8]> = vec![FORMAT];
    flat.extend(positions.iter().flat_map(|p| [p.registration.as_bytes(), p.key.as_slice(), p.last_id.as_bytes()]));
    encode_args(&flat)
}

pub fn decode(blob: &[u8]) -> Result<Vec<StreamPosition>, String> {
    let flat = decode_args(blob).map_err(|e| e.to_string())?;
    let (tag, flat) = flat.split_first().ok_or("empty")?;
    if *tag != FORMAT {
        return Err(format!("unknown format {}", String::from_utf8_lossy(tag)));
    }
    if flat.len() % 3 != 0 {
        return Err("truncated stream position".into());
    }
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    Ok(flat
        .chunks(3)
        .map(|p| StreamPosition { registration: text(p[0]), key: p[1].to_vec(), last_id: text(p[2]) })
        .collect())
}

/// A restored or replicated position: the registration continues after it; if there is no
/// such registration, it is kept for a session that failed to restore (else dropped).
pub fn apply(position: StreamPosition) {
    if let Some((_, stream)) = registrations::stream_registration(&position.registration) {
        return stream.set_position(&position.key, &position.last_id);
    }
    let failed = persistence::failed_sessions();
    if failed.iter().any(|s| s.registration_ids.contains(&position.registration)) {
        let mut kept = kept();
        kept.retain(|p| !(p.registration == position.registration && p.key == position.key));
        kept.push(position);
    }
}

/// Every position to save: the registrations' and those kept for failed sessions (the kept
/// ones whose session was since unregistered or came back are dropped).
pub fn current() -> Vec<StreamPosition> {
    let mut out = registrations::stream_positions();
    let failed: Vec<String> = persistence::failed_sessions().into_iter().flat_map(|s| s.registration_ids).collect();
    let mut kept = kept();
    kept.retain(|p| failed.contains(&p.registration));
    out.extend(kept.iter().cloned());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip() {
        let positions = vec![
            StreamPosition { registration: "0-1".into(), key: b"s\x00\xff".to_vec(), last_id: "5-1".into() },
            StreamPosition { registration: "0-2".into(), key: b"t".to_vec(), last_id: "7-0".into() },
        ];
        assert_eq!(decode(&encode(&positions)).unwrap(), positions);
        assert_eq!(decode(&encode(&[])).unwrap(), vec![]);
        assert!(decode(b"garbage").is_err());
        assert!(decode(&encode_args(&[FORMAT, b"0-1"])).is_err());
    }
}
