//! Writing the store anew, in place: after an erasure, sled still holds the old versions of what
//! it rewrote in its files until it reuses their space (the erased name and e-mail would be on
//! the card). The store is backed up, restored into a working directory inside the data
//! directory, and its files swapped in for sled's old ones; nothing else in the directory (the
//! spool, the disk reserve) is touched, and nothing outside it is needed (on a Pi the data
//! directory is systemd's `StateDirectory`, whose parent the gateway cannot write).
//!
//! The command line does it right after an erasure (the gateway stopped); an erasure from the
//! dashboard leaves [`PENDING`] in the data directory and the gateway does it at its next start,
//! before it opens the store.
//!
//! A rewrite cut short (power lost, a failure half-way) is put right by the next one, or by the
//! next start, from a phase file written before each step: while sled's old files are moved
//! aside (`aside`) they are moved back; once they all are, while the new ones move in (`in`),
//! the move is finished. With no phase file the old store was never touched. The store is
//! never opened while this is unsettled.

use std::path::{Path, PathBuf};

use super::SledStore;

/// The marker an erasure in the running gateway leaves: the store is to be written anew.
pub const PENDING: &str = "rewrite-pending";
/// The working directory, inside the data directory.
const WORK: &str = ".rewrite";
/// The step a swap is at.
const PHASE: &str = "phase";

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
    out.sort();
    Ok(out)
}

fn move_all(files: &[PathBuf], to: &Path) -> Result<(), String> {
    for f in files {
        let name = f.file_name().ok_or("a file without a name")?;
        std::fs::rename(f, to.join(name)).map_err(|e| format!("{}: {e}", f.display()))?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Records the step a swap is at, durably, before it is taken.
fn set_phase(work: &Path, phase: &str) -> Result<(), String> {
    let tmp = work.join("phase.tmp");
    let e = |e: std::io::Error| format!("{}: {e}", tmp.display());
    {
        use std::io::Write as _;
        let mut f = std::fs::File::create(&tmp).map_err(e)?;
        f.write_all(phase.as_bytes()).map_err(e)?;
        f.sync_all().map_err(e)?;
    }
    std::fs::rename(&tmp, work.join(PHASE)).map_err(e)?;
    sync_dir(work);
    Ok(())
}

/// Gives what the rewrite made to whoever owns the data directory (the gateway's user, when
/// the command runs as root), so the gateway can finish or undo it.
fn own(path: &Path, data: &Path) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(data).map_err(|e| format!("{}: {e}", data.display()))?;
        let mut todo = vec![path.to_path_buf()];
        while let Some(p) = todo.pop() {
            std::os::unix::fs::chown(&p, Some(meta.uid()), Some(meta.gid()))
                .map_err(|e| format!("{}: {e}", p.display()))?;
            if p.is_dir() {
                todo.extend(
                    std::fs::read_dir(&p)
                        .map_err(|e| format!("{}: {e}", p.display()))?
                        .flatten()
                        .map(|e| e.path()),
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (path, data);
    Ok(())
}

/// Puts a rewrite cut short right: undone while the old files were being moved aside,
/// finished while the new ones were moving in, dropped before either. An error leaves things
/// as they are: the store must not be opened then.
pub fn recover(data: &Path) -> Result<(), String> {
    let work = data.join(WORK);
    if !work.exists() {
        return Ok(());
    }
    let phase = std::fs::read_to_string(work.join(PHASE)).unwrap_or_default();
    match phase.as_str() {
        "aside" => {
            let old = work.join("old");
            if old.exists() {
                move_all(&sled_files(&old)?, data)?;
            }
            tracing::warn!("a rewrite of the store was cut short: the store is back as it was");
        }
        "in" => {
            move_all(&sled_files(&work.join("new"))?, data)?;
            tracing::warn!("a rewrite of the store was cut short: it was finished");
        }
        _ => {}
    }
    sync_dir(data);
    std::fs::remove_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))
}

/// Writes the store in `data` anew; the records written. On failure the store is as it was (or,
/// past the point of no return, the new one is in place).
pub fn rewrite_in_place(data: &Path) -> Result<u64, String> {
    recover(data)?;
    let work = data.join(WORK);
    let e = |e: std::io::Error| e.to_string();
    std::fs::create_dir_all(&work).map_err(e)?;
    own(&work, data)?;
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
        std::fs::create_dir_all(&old).map_err(e)?;
        own(&work, data)?;
        set_phase(&work, "aside")?;
        move_all(&sled_files(data)?, &old)?;
        sync_dir(data);
        set_phase(&work, "in")?;
        move_all(&sled_files(&new)?, data)?;
        sync_dir(data);
        Ok(n)
    })();
    // Done or not, the working directory goes: a failure puts the old files back, or finishes
    // moving the new ones in.
    recover(data)?;
    n
}

/// At start, before the store opens: puts a rewrite cut short right, and writes the store anew
/// if an erasure asked for it. An error here means the store must not be opened (its files are
/// half moved): the start stops and says why. A rewrite that fails otherwise leaves the marker
/// (tried again at the next start) and the store as it was.
pub fn if_pending(data: &Path) -> Result<(), String> {
    recover(data).map_err(|why| {
        format!("a rewrite of the store in {} was cut short and cannot be put right ({why}); its files are in {}: move sled's files (conf, db, blobs, snap.*) from its old/ back into the data directory", data.display(), data.join(WORK).display())
    })?;
    let marker = data.join(PENDING);
    if !marker.exists() {
        return Ok(());
    }
    // Rewriting a large store takes a while: systemd is told not to give up on the start.
    crate::sdnotify::notify("EXTEND_TIMEOUT_USEC=1800000000");
    match rewrite_in_place(data) {
        Ok(n) => {
            let _ = std::fs::remove_file(&marker);
            tracing::info!(records = n, "the store was written anew after an erasure: nothing of the erased member is left in its files");
        }
        Err(why) => {
            // Never open a store whose files are half moved.
            if data.join(WORK).exists() {
                return Err(why);
            }
            tracing::error!(%why, "the store could not be written anew after an erasure; its files may still hold the erased member's old details (tried again at the next start)");
        }
    }
    Ok(())
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
        if_pending(dir.path()).unwrap();
        assert_eq!(name_of(dir.path()), "Olha");
        assert!(dir.path().join("spool/req").exists());
        assert!(!dir.path().join(PENDING).exists());
        assert!(!dir.path().join(WORK).exists());
    }

    /// Whether any file under `dir` holds `needle`.
    fn in_files(dir: &Path, needle: &str) -> bool {
        let mut todo = vec![dir.to_path_buf()];
        while let Some(p) = todo.pop() {
            if p.is_dir() {
                todo.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            } else if std::fs::read(&p)
                .unwrap()
                .windows(needle.len())
                .any(|w| w == needle.as_bytes())
            {
                return true;
            }
        }
        false
    }

    #[test]
    fn a_rewrite_leaves_no_old_version_in_the_files() {
        let dir = tempfile::tempdir().unwrap();
        store_with(dir.path(), "Olha Petrenko");
        store_with(dir.path(), "Oksana");
        assert!(
            in_files(dir.path(), "Olha Petrenko"),
            "sled keeps the old version"
        );
        rewrite_in_place(dir.path()).unwrap();
        assert!(!in_files(dir.path(), "Olha Petrenko"));
        assert_eq!(name_of(dir.path()), "Oksana");
    }

    /// A rewrite stopped at `phase`, with sled's files moved as far as `aside_moved` of the old
    /// ones and `in_moved` of the new ones.
    fn cut_short(dir: &Path, phase: &str, aside_moved: usize, in_moved: usize) {
        let work = dir.join(WORK);
        let (old, new) = (work.join("old"), work.join("new"));
        std::fs::create_dir_all(&old).unwrap();
        {
            let s = SledStore::open(dir).unwrap();
            crate::service::write_backup(&s, &work.join("copy.kbk")).unwrap();
        }
        let mut input =
            std::io::BufReader::new(std::fs::File::open(work.join("copy.kbk")).unwrap());
        SledStore::restore(&new, &mut input).unwrap();
        set_phase(&work, phase).unwrap();
        let files = sled_files(dir).unwrap();
        move_all(&files[..aside_moved.min(files.len())], &old).unwrap();
        let files = sled_files(&new).unwrap();
        move_all(&files[..in_moved.min(files.len())], dir).unwrap();
    }

    #[test]
    fn a_rewrite_cut_short_at_any_step_leaves_a_store_that_opens_whole() {
        for (phase, aside, into) in [
            ("", 0, 0),
            ("aside", 0, 0),
            ("aside", 1, 0),
            ("aside", 2, 0),
            ("aside", 99, 0),
            ("in", 99, 0),
            ("in", 99, 1),
            ("in", 99, 2),
        ] {
            let dir = tempfile::tempdir().unwrap();
            store_with(dir.path(), "Olha");
            cut_short(dir.path(), phase, aside, into);
            if_pending(dir.path()).unwrap();
            assert_eq!(name_of(dir.path()), "Olha", "{phase} {aside} {into}");
            assert!(!dir.path().join(WORK).exists());
        }
    }
}
