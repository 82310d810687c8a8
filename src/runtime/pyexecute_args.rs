//! Parsing of `RG.PYEXECUTE <script> [options...]` (spec §1.2). Pure logic.

use thiserror::Error;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct PyExecuteArgs {
    pub script: Vec<u8>,
    pub unblocking: bool,
    pub upgrade: bool,
    pub force_reinstall_requirements: bool,
    pub id: Option<String>,
    pub description: Option<String>,
    pub replace_with: Option<String>,
    /// `Some` when `REQUIREMENTS` was given (the list may be empty).
    pub requirements: Option<Vec<String>>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ArgsError {
    #[error("wrong number of arguments")]
    WrongArity,
    #[error("{0} is missing")]
    MissingValue(&'static str),
    #[error("ID must be compose of: ['A'-'Z' | 'a'-'z' | '0' - '9' | '-' | '_']")]
    BadId,
    #[error("Unknown arguments were given: {0}")]
    Unknown(String),
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `args` excludes the command name.
pub fn parse<S: AsRef<[u8]>>(args: &[S]) -> Result<PyExecuteArgs, ArgsError> {
    let (script, rest) = args.split_first().ok_or(ArgsError::WrongArity)?;
    let mut parsed = PyExecuteArgs { script: script.as_ref().to_vec(), ..Default::default() };
    let text = |s: &S| String::from_utf8_lossy(s.as_ref()).into_owned();
    let mut it = rest.iter();
    while let Some(token) = it.next() {
        let word = text(token).to_ascii_uppercase();
        let mut value = |name: &'static str| it.next().map(text).ok_or(ArgsError::MissingValue(name));
        match word.as_str() {
            "UNBLOCKING" => parsed.unblocking = true,
            "UPGRADE" => parsed.upgrade = true,
            "FORCE_REINSTALL_REQUIREMENTS" => parsed.force_reinstall_requirements = true,
            "ID" => {
                let id = value("ID")?;
                if !valid_id(&id) {
                    return Err(ArgsError::BadId);
                }
                parsed.id = Some(id);
            }
            "DESCRIPTION" => parsed.description = Some(value("DESCRIPTION")?),
            "REPLACE_WITH" => parsed.replace_with = Some(value("REPLACE_WITH")?),
            "REQUIREMENTS" => {
                // Blank strings come from the blank lines of a requirements file, which
                // gears-cli passes on verbatim: they name nothing and are ignored.
                parsed.requirements = Some(it.by_ref().map(text).filter(|r| !r.trim().is_empty()).collect());
            }
            _ => return Err(ArgsError::Unknown(text(token))),
        }
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_only() {
        let a = parse(&["x=1"]).unwrap();
        assert_eq!(a.script, b"x=1");
        assert!(!a.unblocking && a.id.is_none() && a.requirements.is_none());
    }

    #[test]
    fn options_are_case_insensitive_and_requirements_take_the_rest() {
        let a = parse(&["s", "unblocking", "Id", "my_id-1", "DESCRIPTION", "d", "upgrade", "REQUIREMENTS", "a", "ID"])
            .unwrap();
        assert!(a.unblocking && a.upgrade);
        assert_eq!(a.id.as_deref(), Some("my_id-1"));
        assert_eq!(a.description.as_deref(), Some("d"));
        assert_eq!(a.requirements, Some(vec!["a".to_string(), "ID".to_string()]));
        assert_eq!(parse(&["s", "REQUIREMENTS"]).unwrap().requirements, Some(vec![]));
        assert_eq!(parse(&["s", "REQUIREMENTS", "six", "", " "]).unwrap().requirements, Some(vec!["six".to_string()]));
    }

    #[test]
    fn errors_use_the_spec_texts() {
        let none: [&str; 0] = [];
        assert_eq!(parse(&none), Err(ArgsError::WrongArity));
        assert_eq!(parse(&["s", "ID"]).unwrap_err().to_string(), "ID is missing");
        assert_eq!(parse(&["s", "DESCRIPTION"]).unwrap_err().to_string(), "DESCRIPTION is missing");
        assert_eq!(parse(&["s", "REPLACE_WITH"]).unwrap_err().to_string(), "REPLACE_WITH is missing");
        assert_eq!(parse(&["s", "ID", "a b"]), Err(ArgsError::BadId));
        assert_eq!(parse(&["s", "bogus"]).unwrap_err().to_string(), "Unknown arguments were given: bogus");
    }
}
