//! The shapes that ride on the encoding: the payloads of the guest entries and the results
//! flows hand back. Built and read here only, so no caller depends on positions.

use crate::args::encode_args;
use crate::value::Reply;

/// [`crate::GuestEntry::RunTrigger`]: `[registration id, trigger or command, args...]`.
pub fn trigger<A: AsRef<[u8]>>(registration: &str, record: &[A]) -> Vec<u8> {
    let mut fields: Vec<&[u8]> = vec![registration.as_bytes()];
    fields.extend(record.iter().map(AsRef::as_ref));
    encode_args(&fields)
}

/// The key of an event as the host read it when the event fired (a `sync` run inline: the
/// guest would read the same, nothing runs in between).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyRead<'a> {
    /// The key's type as `TYPE` names it (`none`, `string`, `hash`, ..., `module`).
    pub type_name: &'a str,
    /// A string's value (for other types the guest reads the value itself).
    pub value: Option<&'a [u8]>,
}

/// [`crate::GuestEntry::KeyEvent`]: `[registration id, key, event]`, then with `read` the
/// key's `[type]` and, for a string, its `[value]`.
pub fn key_event(registration: &str, key: &[u8], event: &str, read: Option<KeyRead<'_>>) -> Vec<u8> {
    let mut fields: Vec<&[u8]> = vec![registration.as_bytes(), key, event.as_bytes()];
    if let Some(read) = read {
        fields.push(read.type_name.as_bytes());
        fields.extend(read.value);
    }
    encode_args(&fields)
}

/// [`crate::GuestEntry::StreamBatch`]: which entries of which stream a batch reads.
pub struct StreamBatch<'a> {
    /// The StreamReader registration.
    pub registration: &'a str,
    /// The stream key.
    pub key: &'a [u8],
    /// Read the entries delivered before and never acknowledged (id `0`), not new ones.
    pub read_pending: bool,
    /// At most this many entries (0: no limit).
    pub count: usize,
    /// Trim the stream to what was not processed once the batch is acknowledged.
    pub trim: bool,
    /// `onFailedPolicy` (`continue` acknowledges even after a failure).
    pub policy: &'a str,
}

impl StreamBatch<'_> {
    /// Its payload: `[registration id, key, read pending "0"/"1", count, trim "0"/"1", policy]`.
    pub fn encode(&self) -> Vec<u8> {
        let count = self.count.to_string();
        encode_args(&[
            self.registration.as_bytes(),
            self.key,
            if self.read_pending { b"1" } else { b"0" },
            count.as_bytes(),
            if self.trim { b"1" } else { b"0" },
            self.policy.as_bytes(),
        ])
    }
}

/// [`crate::GuestEntry::TimeEvent`], [`crate::GuestEntry::Cancel`] and the other entries whose
/// payload is one id.
pub fn one_id(id: &str) -> Vec<u8> {
    encode_args(&[id])
}

/// What a flow entry hands back: `[[results...], [errors...]]`, plus `[ms per step...]` when
/// profiling. A stream batch's results are `[number read, last id read]`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FlowResults {
    /// The records, as values.
    pub results: Vec<Reply>,
    /// The errors, as text.
    pub errors: Vec<String>,
    /// Milliseconds per step (only with ProfileExecutions).
    pub step_ms: Vec<u64>,
}

impl FlowResults {
    /// Reads the shape; None when the value is not one.
    pub fn decode(reply: Reply) -> Option<FlowResults> {
        let text = |r: Reply| match r {
            Reply::Bulk(b) | Reply::Status(b) | Reply::Error(b) => String::from_utf8_lossy(&b).into_owned(),
            other => format!("{other:?}"),
        };
        let Reply::Array(parts) = reply else { return None };
        let mut parts = parts.into_iter();
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(Reply::Array(results)), Some(Reply::Array(errors)), durations, None) => {
                let step_ms = match durations {
                    Some(Reply::Array(d)) => {
                        d.iter().map(|x| if let Reply::Int(ms) = x { *ms as u64 } else { 0 }).collect()
                    }
                    None => Vec::new(),
                    Some(_) => return None,
                };
                Some(FlowResults { results, errors: errors.into_iter().map(text).collect(), step_ms })
            }
            _ => None,
        }
    }

    /// Its encoding (what the guest's `gears_encode.encode_results` produces).
    pub fn to_reply(&self) -> Reply {
        let mut parts = vec![
            Reply::Array(self.results.clone()),
            Reply::Array(self.errors.iter().map(|e| Reply::Bulk(e.as_bytes().to_vec())).collect()),
        ];
        if !self.step_ms.is_empty() {
            parts.push(Reply::Array(self.step_ms.iter().map(|&ms| Reply::Int(ms as i64)).collect()));
        }
        Reply::Array(parts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::decode_args;

    #[test]
    fn payloads_put_the_registration_first() {
        let p = trigger("0000-1", &["t", "a"]);
        assert_eq!(decode_args(&p).unwrap(), vec![&b"0000-1"[..], b"t", b"a"]);
        let p = StreamBatch { registration: "r", key: b"s", read_pending: true, count: 3, trim: true, policy: "abort" };
        assert_eq!(decode_args(&p.encode()).unwrap(), vec![&b"r"[..], b"s", b"1", b"3", b"1", b"abort"]);
    }

    #[test]
    fn a_key_event_carries_what_the_host_read() {
        let p = key_event("r", b"k", "set", None);
        assert_eq!(decode_args(&p).unwrap(), vec![&b"r"[..], b"k", b"set"]);
        let p = key_event("r", b"k", "set", Some(KeyRead { type_name: "string", value: Some(b"v") }));
        assert_eq!(decode_args(&p).unwrap(), vec![&b"r"[..], b"k", b"set", b"string", b"v"]);
        let p = key_event("r", b"k", "hset", Some(KeyRead { type_name: "hash", value: None }));
        assert_eq!(decode_args(&p).unwrap(), vec![&b"r"[..], b"k", b"hset", b"hash"]);
    }

    #[test]
    fn results_round_trip_and_refuse_other_shapes() {
        let r = FlowResults { results: vec![Reply::Int(1)], errors: vec!["bad".into()], step_ms: vec![2, 3] };
        assert_eq!(FlowResults::decode(r.to_reply()), Some(r));
        assert_eq!(FlowResults::decode(Reply::Null), None);
        assert_eq!(FlowResults::decode(Reply::Array(vec![Reply::Array(vec![])])), None);
    }
}
