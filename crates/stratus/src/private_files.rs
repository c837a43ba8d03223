//! The data directory is private to the user running Stratus.
//!
//! It holds the issuer's signing key (inside the database), the bootstrap administrator's API
//! key, the host credential, imported images that are tenants' disks, and the guests' disks and
//! consoles. Any local user who can read one of them can mint tokens or read a tenant's data,
//! so nothing in it is readable by group or others:
//!
//! - at start, `serve` and `agent` set the process's umask to `077`, so every file and directory
//!   made from then on (by Stratus, SQLite, `qemu-img` or QEMU) is `0600`/`0700` from creation;
//! - the data directory itself becomes `0700`, and anything inside that a former version (or an
//!   operator) left open to group or others loses those bits, each fix said in the log.
//!
//! The umask is a property of the whole process; `serve` and `agent` own theirs. Symbolic links
//! are neither followed nor changed.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Group and other permission bits.
const OPEN_BITS: u32 = 0o077;

/// Makes everything created from now on by this process private to its user.
pub fn restrict_umask() {
    // SAFETY: umask only sets the process's file mode creation mask; it cannot fail.
    unsafe {
        libc::umask(OPEN_BITS as libc::mode_t);
    }
}

/// Makes `data_dir` (created when missing) and everything in it private; returns how many
/// entries had to be fixed.
pub fn make_private(data_dir: &Path) -> std::io::Result<usize> {
    restrict_umask();
    std::fs::create_dir_all(data_dir)?;
    let mut fixed = 0;
    fix(data_dir, &mut fixed)?;
    if fixed > 0 {
        tracing::warn!(
            dir = %data_dir.display(),
            fixed,
            "entries of the data directory were readable by other users; they are private now"
        );
    }
    Ok(fixed)
}

fn fix(path: &Path, fixed: &mut usize) -> std::io::Result<()> {
    let metadata = std::fs::symlink_metadata(path)?;
    if metadata.file_type().is_symlink() {
        return Ok(());
    }
    let mode = metadata.permissions().mode();
    if mode & OPEN_BITS != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & !OPEN_BITS))?;
        tracing::info!(path = %path.display(), from = format!("{:o}", mode & 0o7777), "made private");
        *fixed += 1;
    }
    if metadata.is_dir() {
        for entry in std::fs::read_dir(path)? {
            let entry = entry?;
            // A file that disappears meanwhile (a guest's socket) is no longer a concern.
            match fix(&entry.path(), fixed) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                other => other?,
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn open_files_and_directories_lose_group_and_other_bits() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("images")).unwrap();
        std::fs::write(data.join("stratus.db"), b"x").unwrap();
        std::fs::write(data.join("images/disk.raw"), b"x").unwrap();
        let outside = dir.path().join("outside");
        std::fs::write(&outside, b"x").unwrap();
        for (path, mode) in [
            (data.clone(), 0o755),
            (data.join("images"), 0o775),
            (data.join("stratus.db"), 0o644),
            (data.join("images/disk.raw"), 0o666),
            (outside.clone(), 0o644),
        ] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        symlink(&outside, data.join("link")).unwrap();

        assert_eq!(make_private(&data).unwrap(), 4);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("images")), 0o700);
        assert_eq!(mode(&data.join("stratus.db")), 0o600);
        assert_eq!(mode(&data.join("images/disk.raw")), 0o600);
        assert_eq!(mode(&outside), 0o644, "a link's target is left alone");
        assert_eq!(make_private(&data).unwrap(), 0, "nothing left to fix");
        let created = data.join("new");
        std::fs::write(&created, b"x").unwrap();
        assert_eq!(mode(&created), 0o600, "the umask keeps new files private");
    }
}
