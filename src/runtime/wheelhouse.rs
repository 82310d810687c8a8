//! `REQUIREMENTS`: there is no network at run time, so requirements come from a local
//! directory of pure-Python wheels (`WheelhouseDir`). Each session that asks for some gets
//! their bytes and imports from them in memory: nothing is installed, nothing shared.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::runtime::requirement_bundle::{Bundle, PURE_OS};

/// A resolved requirement: the wheel that satisfies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// As the user wrote it (`name` or `name==version`).
    pub spec: String,
    pub name: String,
    pub version: String,
    pub file: String,
    pub bytes: Arc<Vec<u8>>,
}

/// PEP 503 normalisation: case-insensitive, `-`, `_` and `.` alike.
fn normalize(name: &str) -> String {
    name.to_ascii_lowercase().replace(['_', '.'], "-")
}

/// `name` or `name==version`.
fn parse_spec(spec: &str) -> (String, Option<String>) {
    match spec.split_once("==") {
        Some((name, version)) => (normalize(name.trim()), Some(version.trim().to_string())),
        None => (normalize(spec.trim()), None),
    }
}

/// (normalised name, version) of a pure-Python wheel file name, else None:
/// `{dist}-{version}(-{build})?-{python}-none-any.whl`.
fn pure_wheel(file: &str) -> Option<(String, String)> {
    let stem = file.strip_suffix(".whl")?;
    let parts: Vec<&str> = stem.split('-').collect();
    if parts.len() < 5 || parts[parts.len() - 2] != "none" || parts[parts.len() - 1] != "any" {
        return None;
    }
    Some((normalize(parts[0]), parts[1].to_string()))
}

/// Numeric-aware version order ("1.10" > "1.9").
fn version_key(v: &str) -> Vec<(u64, String)> {
    v.split('.').map(|p| (p.parse().unwrap_or(0), p.to_string())).collect()
}

/// The wheel file (among `files`) for each spec: the newest matching one.
pub fn choose(files: &[String], specs: &[String]) -> Result<Vec<(String, String, String, String)>, String> {
    let wheels: Vec<(String, String, &String)> =
        files.iter().filter_map(|f| pure_wheel(f).map(|(n, v)| (n, v, f))).collect();
    specs
        .iter()
        .map(|spec| {
            let (name, version) = parse_spec(spec);
            wheels
                .iter()
                .filter(|(n, v, _)| *n == name && version.as_ref().is_none_or(|want| want == v))
                .max_by_key(|(_, v, _)| version_key(v))
                .map(|(n, v, f)| (spec.clone(), n.clone(), v.clone(), (*f).clone()))
                .ok_or_else(|| format!("Could not satisfy requirements, {spec} is not in the wheelhouse"))
        })
        .collect()
}

/// Resolves `specs` in `dir` and reads the wheels.
pub fn resolve(dir: Option<&Path>, specs: &[String]) -> Result<Vec<Requirement>, String> {
    if specs.is_empty() {
        return Ok(Vec::new());
    }
    let dir = dir.ok_or_else(|| {
        format!("Could not satisfy requirements (no WheelhouseDir is configured): {}", specs.join(" "))
    })?;
    let files: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| format!("Could not satisfy requirements, wheelhouse {}: {e}", dir.display()))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    let requirements = choose(&files, specs)?
        .into_iter()
        .map(|(spec, name, version, file)| {
            let bytes = std::fs::read(dir.join(&file)).map_err(|e| format!("Could not read wheel {file}: {e}"))?;
            Ok(Requirement { spec, name, version, file, bytes: Arc::new(bytes) })
        })
        .collect::<Result<Vec<_>, String>>()?;
    remember(requirements.iter().map(|r| (r.name.as_str(), r.version.as_str(), r.file.as_str())));
    Ok(requirements)
}

/// The requirements installed so far, by name: (version, wheel file). As in RedisGears 1.2, a
/// requirement stays listed (RG.PYDUMPREQS) after the script that installed it has ended,
/// `gears-cli install-requirements` relies on it. Lock order: level 3, taken alone.
static INSTALLED: Mutex<BTreeMap<String, (String, String)>> = Mutex::new(BTreeMap::new());

/// Lists (name, version, wheel file) of each requirement as installed.
fn remember<'a>(requirements: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>) {
    let mut installed = INSTALLED.lock().unwrap_or_else(|p| p.into_inner());
    for (name, version, file) in requirements {
        installed.insert(name.to_string(), (version.to_string(), file.to_string()));
    }
}

/// (name, version, wheel file) of every requirement installed so far, by name.
pub fn installed() -> Vec<(String, String, String)> {
    let installed = INSTALLED.lock().unwrap_or_else(|p| p.into_inner());
    installed.iter().map(|(name, (version, file))| (name.clone(), version.clone(), file.clone())).collect()
}

/// The installed requirement `name` (a name or `name==version`, as RG.PYEXPORTREQ is given
/// it): its name, wheel file and the bundle RedisGears 1.2 exports.
pub fn export(dir: Option<&Path>, name: &str) -> Result<(String, String, Bundle), String> {
    let wanted = parse_spec(name).0;
    let (name, _version, file) =
        installed().into_iter().find(|(n, _, _)| *n == wanted).ok_or("requirement does not exists")?;
    let dir = dir.ok_or("requirement does not exists")?;
    let path = dir.join(&file);
    let bytes = std::fs::read(&path).map_err(|_| format!("Could not open file {}", path.display()))?;
    let bundle = Bundle { name: name.clone(), os: PURE_OS.to_string(), wheels: vec![(file.clone(), bytes)] };
    Ok((name, file, bundle))
}

/// RG.PYIMPORTREQ: puts the bundle's wheels into the wheelhouse and lists them as installed.
/// Only pure-Python wheels with a plain file name are taken (nothing else can be imported in a
/// sandbox, and a name with a path in it could write elsewhere).
pub fn import(dir: Option<&Path>, bundle: &Bundle) -> Result<(), String> {
    let dir = dir.ok_or("Could not import requirement: no WheelhouseDir is configured")?;
    let mut checked = Vec::new();
    for (file, bytes) in &bundle.wheels {
        let plain = !file.contains(['/', '\\', '\0']) && !file.starts_with('.');
        let Some((name, version)) = pure_wheel(file).filter(|_| plain) else {
            return Err(format!("Can not import {file}: only pure-Python wheels (*-none-any.whl) can be imported"));
        };
        checked.push((name, version, file, bytes));
    }
    for (_, _, file, bytes) in &checked {
        let partial = dir.join(format!(".{file}.importing"));
        std::fs::write(&partial, bytes)
            .and_then(|()| std::fs::rename(&partial, dir.join(file)))
            .map_err(|e| format!("Failed writing data to file {file}: {e}"))?;
    }
    remember(checked.iter().map(|(name, version, file, _)| (name.as_str(), version.as_str(), file.as_str())));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn picks_the_newest_pure_wheel_matching_each_spec() {
        let have = files(&[
            "Tiny_Lib-1.9-py3-none-any.whl",
            "tiny_lib-1.10-py3-none-any.whl",
            "native-2.0-cp313-cp313-manylinux_2_17_x86_64.whl",
            "README.txt",
        ]);
        let chosen = choose(&have, &files(&["tiny-lib", "TINY.LIB==1.9"])).unwrap();
        assert_eq!(chosen[0].3, "tiny_lib-1.10-py3-none-any.whl");
        assert_eq!(chosen[1].3, "Tiny_Lib-1.9-py3-none-any.whl");
        let err = choose(&have, &files(&["native"])).unwrap_err();
        assert!(err.contains("native is not in the wheelhouse"));
        assert!(choose(&have, &files(&["tiny-lib==3"])).is_err());
    }
}
