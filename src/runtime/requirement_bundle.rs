//! A requirement as RedisGears 1.2 exports and imports it (`RG.PYEXPORTREQ`, `RG.PYIMPORTREQ`,
//! gears-cli's `Data.bin`): its `PythonRequirement_Serialize` layout in 1.2's Gears_Buffer
//! encoding (a long is 8 bytes little-endian on x86-64; a buffer is its length as a long, then
//! its bytes; a string is a buffer holding its bytes and a trailing NUL):
//!
//! ```text
//! long version (2)          string name          string compiled os (version >= 1)
//! long in requirements dict (version >= 2)       long wheel count
//! per wheel: string file name, buffer wheel bytes
//! ```
//!
//! So a zip exported from a real RedisGears 1.2 with pure-Python wheels imports here, and ours
//! into it.

/// PY_REQ_VERSION of RedisGears 1.2.13.
pub const VERSION: i64 = 2;
const WITH_OS: i64 = 1;
const WITH_DICT_FLAG: i64 = 2;

/// The compiled-OS tag of a bundle of pure-Python wheels (any platform).
pub const PURE_OS: &str = "any";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    pub name: String,
    pub os: String,
    pub wheels: Vec<(String, Vec<u8>)>,
}

/// `bundle` in 1.2's layout, as a requirement of its requirements dictionary.
pub fn encode(bundle: &Bundle) -> Vec<u8> {
    let mut out = Vec::new();
    let long = |out: &mut Vec<u8>, n: i64| out.extend_from_slice(&n.to_le_bytes());
    let buffer = |out: &mut Vec<u8>, bytes: &[u8]| {
        out.extend_from_slice(&(bytes.len() as i64).to_le_bytes());
        out.extend_from_slice(bytes);
    };
    let string = |out: &mut Vec<u8>, text: &str| {
        let mut bytes = text.as_bytes().to_vec();
        bytes.push(0);
        buffer(out, &bytes);
    };
    long(&mut out, VERSION);
    string(&mut out, &bundle.name);
    string(&mut out, &bundle.os);
    long(&mut out, 1);
    long(&mut out, bundle.wheels.len() as i64);
    for (file, bytes) in &bundle.wheels {
        string(&mut out, file);
        buffer(&mut out, bytes);
    }
    out
}

struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn long(&mut self) -> Option<i64> {
        let (head, rest) = self.data.split_first_chunk::<8>()?;
        self.data = rest;
        Some(i64::from_le_bytes(*head))
    }

    fn buffer(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.long()?).ok()?;
        if len > self.data.len() {
            return None;
        }
        let (bytes, rest) = self.data.split_at(len);
        self.data = rest;
        Some(bytes)
    }

    fn string(&mut self) -> Option<String> {
        let bytes = self.buffer()?;
        let text = bytes.strip_suffix(&[0]).unwrap_or(bytes);
        Some(String::from_utf8_lossy(text).into_owned())
    }
}

/// Reads a bundle, with 1.2's error texts (PythonRequirement_Deserialize).
pub fn decode(data: &[u8]) -> Result<Bundle, String> {
    let mut r = Reader { data };
    let version = r.long().ok_or("Bad serialization format on reading requirement version")?;
    if version > VERSION {
        return Err("Requirement version is not compatible, upgrade to newer RedisGears.".into());
    }
    let name = r.string().ok_or("Bad serialization format on reading requirement name")?;
    let os = if version >= WITH_OS {
        r.string().ok_or("Bad serialization format on reading requirement os")?
    } else {
        String::new()
    };
    if version >= WITH_DICT_FLAG {
        r.long().ok_or("Bad serialization format on reading requirement wheels amount")?;
    }
    let count = r.long().ok_or("Bad serialization format on reading requirement wheels amount")?;
    let mut wheels = Vec::new();
    for _ in 0..count.max(0) {
        let file = r.string().ok_or("Bad serialization format on reading wheel file name")?;
        let bytes = r.buffer().ok_or("Bad serialization format on reading wheel file data")?;
        wheels.push((file, bytes.to_vec()));
    }
    Ok(Bundle { name, os, wheels })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn six() -> Bundle {
        Bundle {
            name: "six".into(),
            os: PURE_OS.into(),
            wheels: vec![("six-1.17.0-py2.py3-none-any.whl".into(), b"PK\x03\x04wheel".to_vec())],
        }
    }

    #[test]
    fn the_layout_of_1_2() {
        let data = encode(&six());
        assert_eq!(&data[..8], &[2, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&data[8..16], &4i64.to_le_bytes()); // "six\0"
        assert_eq!(&data[16..20], b"six\0");
        assert_eq!(decode(&data).unwrap(), six());
    }

    #[test]
    fn version_one_has_no_dictionary_flag() {
        let mut data = 1i64.to_le_bytes().to_vec();
        for text in [&b"six\0"[..], &b"linux\0"[..]] {
            data.extend_from_slice(&(text.len() as i64).to_le_bytes());
            data.extend_from_slice(text);
        }
        data.extend_from_slice(&0i64.to_le_bytes());
        let bundle = decode(&data).unwrap();
        assert_eq!((bundle.name.as_str(), bundle.os.as_str(), bundle.wheels.len()), ("six", "linux", 0));
    }

    #[test]
    fn truncated_or_newer_data_is_refused_in_1_2s_words() {
        let data = encode(&six());
        assert_eq!(decode(&data[..4]).unwrap_err(), "Bad serialization format on reading requirement version");
        assert_eq!(decode(&data[..12]).unwrap_err(), "Bad serialization format on reading requirement name");
        assert_eq!(decode(&data[..data.len() - 1]).unwrap_err(), "Bad serialization format on reading wheel file data");
        let mut newer = data.clone();
        newer[0] = 3;
        assert_eq!(decode(&newer).unwrap_err(), "Requirement version is not compatible, upgrade to newer RedisGears.");
        let mut huge = data;
        huge[8..16].copy_from_slice(&i64::MAX.to_le_bytes());
        assert!(decode(&huge).is_err());
    }
}
