//! The golden vectors (vectors/codec.json) against the Rust side of the format.

use serde_json::Value as Json;
use wasmgears_abi::{
    decode_args, decode_batch, encode_args, encode_batch, CodecError, FlowResults, GuestEntry, HostRequest, Reply,
    MAX_DEPTH, VECTORS_JSON,
};

fn vectors() -> Json {
    serde_json::from_str(VECTORS_JSON).expect("vectors/codec.json is valid JSON")
}

fn unhex(text: &Json) -> Vec<u8> {
    let text = text.as_str().expect("hex is a string");
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex digits")).collect()
}

/// A tagged JSON value (see the file's `_about`) as a Reply.
fn value(json: &Json) -> Reply {
    if let Some(n) = json.get("nest") {
        let mut inner = value(&json["in"]);
        for _ in 0..n.as_u64().unwrap() {
            inner = Reply::Array(vec![inner]);
        }
        return inner;
    }
    let (tag, v) = json.as_object().and_then(|o| o.iter().next()).expect("a tagged value");
    match tag.as_str() {
        "bulk" => Reply::Bulk(v.as_str().unwrap().as_bytes().to_vec()),
        "bulk_hex" => Reply::Bulk(unhex(v)),
        "status" => Reply::Status(v.as_str().unwrap().as_bytes().to_vec()),
        "error" => Reply::Error(v.as_str().unwrap().as_bytes().to_vec()),
        "int" => Reply::Int(v.as_str().unwrap().parse().unwrap()),
        "double" => Reply::Double(v.as_f64().unwrap()),
        "null" => Reply::Null,
        "array" => Reply::Array(v.as_array().unwrap().iter().map(value).collect()),
        other => panic!("unknown value tag {other}"),
    }
}

fn each<'a>(json: &'a Json, section: &str) -> impl Iterator<Item = (&'a str, &'a Json)> {
    json[section]
        .as_array()
        .unwrap_or_else(|| panic!("section {section}"))
        .iter()
        .map(|v| (v["name"].as_str().unwrap(), v))
}

#[test]
fn values_encode_and_decode_to_their_bytes() {
    let json = vectors();
    assert_eq!(json["max_depth"].as_u64(), Some(MAX_DEPTH as u64));
    assert_eq!(json["max_interval_secs"].as_u64(), Some(wasmgears_abi::MAX_INTERVAL_SECS));
    assert_eq!(json["entry_flags"]["profile"].as_u64(), Some(wasmgears_abi::ENTRY_PROFILE_FLAG as u64));
    assert_eq!(json["entry_flags"]["code_mask"].as_u64(), Some(wasmgears_abi::ENTRY_CODE_MASK as u64));
    for (name, v) in each(&json, "values") {
        let (expected, bytes) = (value(&v["value"]), unhex(&v["hex"]));
        assert_eq!(expected.to_bytes(), bytes, "encoding of {name}");
        assert_eq!(Reply::decode(&bytes).as_ref(), Ok(&expected), "decoding of {name}");
    }
}

#[test]
fn refused_bytes_fail_with_their_error() {
    for (name, v) in each(&vectors(), "refused") {
        let err = Reply::decode(&unhex(&v["hex"])).expect_err(name);
        let kind = match err {
            CodecError::Truncated => "truncated",
            CodecError::UnknownTag(_) => "unknown_tag",
            CodecError::Trailing => "trailing",
            CodecError::TooDeep => "too_deep",
        };
        assert_eq!(kind, v["error"].as_str().unwrap(), "{name}");
    }
}

#[test]
fn args_and_batches_match_their_bytes() {
    let json = vectors();
    for (name, v) in each(&json, "args") {
        let args: Vec<Vec<u8>> = v["args"].as_array().unwrap().iter().map(unhex).collect();
        let bytes = unhex(&v["hex"]);
        assert_eq!(encode_args(&args), bytes, "encoding of {name}");
        assert_eq!(decode_args(&bytes).unwrap(), args.iter().map(Vec::as_slice).collect::<Vec<_>>(), "{name}");
    }
    for (name, v) in each(&json, "batches") {
        let commands: Vec<Vec<Vec<u8>>> = v["commands"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_array().unwrap().iter().map(unhex).collect())
            .collect();
        let bytes = unhex(&v["hex"]);
        assert_eq!(encode_batch(&commands), bytes, "encoding of {name}");
        let decoded: Vec<Vec<Vec<u8>>> =
            decode_batch(&bytes).unwrap().into_iter().map(|c| c.into_iter().map(<[u8]>::to_vec).collect()).collect();
        assert_eq!(decoded, commands, "decoding of {name}");
    }
}

#[test]
fn records_the_guest_encodes_are_values_the_host_reads() {
    for (name, v) in each(&vectors(), "records") {
        assert_eq!(Reply::decode(&unhex(&v["hex"])), Ok(value(&v["value"])), "{name}");
    }
}

#[test]
fn operation_codes_are_the_vectors_ones() {
    let json = vectors();
    let table = |section: &str| json[section].as_object().unwrap().clone();
    let entries = table("guest_entries");
    assert_eq!(entries.len(), GuestEntry::ALL.len());
    for op in GuestEntry::ALL {
        assert_eq!(entries[op.name()].as_u64(), Some(op.code() as u64), "guest entry {}", op.name());
    }
    let requests = table("host_requests");
    assert_eq!(requests.len(), HostRequest::ALL.len());
    for op in HostRequest::ALL {
        assert_eq!(requests[op.name()].as_u64(), Some(op.code() as u64), "host request {}", op.name());
    }
}

#[test]
fn flow_results_read_as_the_guest_writes_them() {
    for (name, v) in each(&vectors(), "results") {
        let expected = FlowResults {
            results: v["results"].as_array().unwrap().iter().map(|pair| value(&pair[1])).collect(),
            errors: v["errors"].as_array().unwrap().iter().map(|e| e.as_str().unwrap().to_string()).collect(),
            step_ms: v["durations"].as_array().map_or(Vec::new(), |d| d.iter().map(|x| x.as_u64().unwrap()).collect()),
        };
        let reply = Reply::decode(&unhex(&v["hex"])).unwrap();
        assert_eq!(FlowResults::decode(reply.clone()), Some(expected.clone()), "{name}");
        assert_eq!(expected.to_reply(), reply, "{name}");
    }
}
