//! Whether a precompiled guest image may be trusted: it is native code, so whoever can write
//! the file (or replace it in its directory) could run code inside Redis. Only this process's
//! own user and root may.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Who besides this process's user (and root) could change `image`, if anyone: the reason to
/// refuse it. A missing file is not refused here (loading it fails on its own).
pub(crate) fn untrusted_writers(image: &Path) -> Option<String> {
    // The owner of /proc/self is this process's effective user.
    let me = std::fs::metadata("/proc/self").map(|m| m.uid()).ok()?;
    let dir = image.parent().unwrap_or(Path::new("."));
    for (what, path) in [("the file", image), ("its directory", dir)] {
        let Ok(meta) = std::fs::metadata(path) else { continue };
        if meta.uid() != me && meta.uid() != 0 {
            return Some(format!("{what} is owned by uid {} (Redis runs as uid {me})", meta.uid()));
        }
        let mode = meta.mode() & 0o777;
        if mode & 0o022 != 0 {
            return Some(format!("{what} is writable by its group or others (mode {mode:03o})"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn group_or_world_writable_images_and_directories_are_refused() {
        let dir = std::env::temp_dir().join(format!("wasmgears-image-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let image = dir.join("gears.cwasm");
        std::fs::write(&image, b"x").unwrap();
        std::fs::set_permissions(&image, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(untrusted_writers(&image), None);
        std::fs::set_permissions(&image, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(untrusted_writers(&image).unwrap().contains("the file is writable"));
        std::fs::set_permissions(&image, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o775)).unwrap();
        assert!(untrusted_writers(&image).unwrap().contains("its directory is writable"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
