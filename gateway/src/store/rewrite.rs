//! Writing the store anew, in place: after an erasure, sled still holds the old versions of what
//! it rewrote in its files until it reuses their space (the erased name and e-mail would be on
//! the card). The store is backed up, restored into a working directory inside the data
//! directory, and its files swapped in for sled's old ones; nothing else in the directory (the
//! spool, the disk reserve) is touched, and nothing outside it is needed (on a Pi the data
//! directory is systemd's `StateDirectory`, whose parent the gateway cannot write).
//!
//! The command line does it right after an erasure (the gateway stopped); an erasure from the
//! dashboard leaves [`PENDING`] in the data directory and the gateway does it at its next start,
//! before it opens the store. A rewrite cut short (power lost) is put right at the next one:
//! sled's `db` file is moved in last, so the new store is in place exactly when it is there.

use std::path::{Path, PathBuf};

use super::SledStore;

/// The marker an erasure in the running gateway leaves: the store is to be written anew.
pub const PENDING: &str = "rewrite-pending";
/// The working directory, inside the data directory.
const WORK: &str = ".rewrite";

/// sled 0.34's own files in a directory: `conf`, `db`, `blobs/`, `snap.*`.
fn sled_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            matches!(n.as_str(), "conf" | "db" | "blobs") || n.starts_with("snap.")
        })
        .map(|e| e.path())
        .collect();
    // `db` last: its arrival says the whole store has arrived.
    out.sort_by_key(|p| p.file_name().is_some_and(|n| n == "db"));
    Ok(out)
}

fn move_all(files: &[PathBuf], to: &Path) -> Result<(), String> {
    for f in files {
        let name = f.file_name().ok_or("a file without a name")?;
        std::fs::rename(f, to.join(name)).map_err(|e| format!("{}: {e}", f.display()))?;
    }
    Ok(())
}

/// A rewrite cut short: its old files go back unless the new store is wholly in place.
fn recover(data: &Path) -> Result<(), String> {
    let work = data.join(WORK);
    let old = work.join("old");
    if old.exists() && !data.join("db").exists() {
        for f in sled_files(data)? {
            let _ = if f.is_dir() {
                std::fs::remove_dir_all(&f)
            } else {
                std::fs::remove_file(&f)
            };
        }
        move_all(&sled_files(&old)?, data)?;
        tracing::warn!("a rewrite of the store was cut short: the store is back as it was");
    }
    if work.exists() {
        std::fs::remove_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    }
    Ok(())
}

/// Writes the store in `data` anew; the records written. On failure the store is as it was.
pub fn rewrite_in_place(data: &Path) -> Result<u64, String> {
    recover(data)?;
    let work = data.join(WORK);
    let e = |e: std::io::Error| e.to_string();
    std::fs::create_dir_all(&work).map_err(e)?;
    let copy = work.join("copy.kbk");
    let new = work.join("new");
    let old = work.join("old");
    let n = (|| -> Result<u64, String> {
        {
            let s = SledStore::open(data).map_err(|e| e.to_string())?;
            crate::service::write_backup(&s, &copy)?;
        }
        let mut input = std::io::BufReader::new(std::fs::File::open(&copy).map_err(e)?);
        let n = SledStore::restore(&new, &mut input).map_err(|e| e.to_string())?;
        drop(SledStore::open(&new).map_err(|e| e.to_string())?);
        // The new files belong to whoever owns the data directory (the gateway's user, when
        // the command runs as root).
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let meta = std::fs::metadata(data).map_err(e)?;
            let mut todo = vec![new.clone()];
            while let Some(p) = todo.pop() {
                std::os::unix::fs::chown(&p, Some(meta.uid()), Some(meta.gid())).map_err(e)?;
                if p.is_dir() {
                    todo.extend(
                        std::fs::read_dir(&p)
                            .map_err(e)?
                            .flatten()
                            .map(|e| e.path()),
                    );
                }
            }
        }
        std::fs::create_dir_all(&old).map_err(e)?;
        move_all(&sled_files(data)?, &old)?;
        move_all(&sled_files(&new)?, data)?;
        Ok(n)
    })();
    // Done or not, the working directory goes (a failure half-way puts the old files back).
    recover(data)?;
    n
}

/// At start: writes the store anew if an erasure asked for it, and says so. A rewrite that
/// fails leaves the marker (tried again at the next start) and the store as it was.
pub fn if_pending(data: &Path) {
    let marker = data.join(PENDING);
    if let Err(why) = recover(data) {
        tracing::error!(%why, "a rewrite of the store cut short could not be put right");
    }
    if !marker.exists() {
        return;
    }
    match rewrite_in_place(data) {
        Ok(n) => {
            let _ = std::fs::remove_file(&marker);
            tracing::info!(records = n, "the store was written anew after an erasure: nothing of the erased member is left in its files");
        }
        Err(why) => {
            tracing::error!(%why, "the store could not be written anew after an erasure; its files may still hold the erased member's old details (tried again at the next start)")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Change, Store};

    fn store_with(dir: &Path, name: &str) {
        let s = SledStore::open(dir).unwrap();
        let m = crate::domain::Member::new(crate::domain::MemberId::parse("m-1").unwrap(), name);
        s.commit(
            &[Change::Member(m)],
            &crate::store::AuditEntry::change(
                chrono::Utc::now(),
                crate::store::Actor::Cli("t".into()),
                "add",
            ),
        )
        .unwrap();
        s.flush().unwrap();
    }

    fn name_of(dir: &Path) -> String {
        let s = SledStore::open(dir).unwrap();
        s.member(crate::domain::MemberId::parse("m-1").unwrap())
            .unwrap()
            .unwrap()
            .name
    }

    #[test]
    fn a_rewrite_keeps_the_store_and_what_else_is_in_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        store_with(dir.path(), "Olha");
        std::fs::create_dir_all(dir.path().join("spool")).unwrap();
        std::fs::write(dir.path().join("spool/req"), b"x").unwrap();
        std::fs::write(dir.path().join(PENDING), b"").unwrap();
        if_pending(dir.path());
        assert_eq!(name_of(dir.path()), "Olha");
        assert!(dir.path().join("spool/req").exists());
        assert!(!dir.path().join(PENDING).exists());
        assert!(!dir.path().join(WORK).exists());
    }

    #[test]
    fn a_rewrite_cut_short_puts_the_old_store_back() {
        let dir = tempfile::tempdir().unwrap();
        store_with(dir.path(), "Olha");
        // Power lost after the old files were moved aside and part of the new ones moved in.
        let old = dir.path().join(WORK).join("old");
        std::fs::create_dir_all(&old).unwrap();
        move_all(&sled_files(dir.path()).unwrap(), &old).unwrap();
        std::fs::write(dir.path().join("conf"), b"half of a new store").unwrap();
        if_pending(dir.path());
        assert_eq!(name_of(dir.path()), "Olha");
        assert!(!dir.path().join(WORK).exists());
    }
}
