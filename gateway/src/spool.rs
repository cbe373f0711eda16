//! Requests from the command line to a running gateway, through a spool directory in the data
//! directory: sled lets one process open the store, so while `kombinat run` has it, `kombinat
//! token add|revoke` drop a request file here and wait; the core takes each within a second,
//! applies it (audited, as the user who asked) and removes the file, leaving `<name>.err` with
//! the reason if it refused. A file is written under a temporary name and renamed, so the core
//! never reads half of one.
//!
//! The gateway makes the directory when it starts (0700, its own: the command line run as root
//! must not make it root's), and takes a request up by renaming `<name>.json` to
//! `<name>.taken`; the command line withdraws one nobody took up within seconds by renaming it
//! to `<name>.withdrawn`. Only one of the two renames can succeed, so a request is either
//! applied or withdrawn, never withdrawn while it is applied.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::domain::{ApiToken, SourceId};

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    /// Store a new API token.
    AddToken(ApiToken),
    /// Revoke the live token of this name.
    RevokeToken(SourceId),
    /// Write a backup beside the request ([`backup_file`]), for the command line to take.
    Backup,
}

/// Where the running gateway writes the backup a request asked for.
pub fn backup_file(request: &Path) -> PathBuf {
    request.with_extension("backup")
}

/// A request and who made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The login name of the person at the command line.
    pub by: String,
    pub request: Request,
}

/// The spool directory of a data directory.
pub fn dir(data: &Path) -> PathBuf {
    data.join("spool")
}

/// How long the command line waits for the gateway to take a request up (it looks every
/// second) before it says that nobody is answering.
pub const TAKEN_WITHIN: Duration = Duration::from_secs(10);

/// Makes the spool directory, the gateway's own, 0700; checks the gateway can write in it.
pub fn prepare(data: &Path) -> Result<(), String> {
    let d = dir(data);
    std::fs::create_dir_all(&d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // Only its owner can change the mode; another owner shows in the probe below.
        let _ = std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700));
    }
    let probe = d.join(".probe");
    std::fs::write(&probe, b"")
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|e| {
            format!(
                "the gateway cannot write in {} ({e}): command-line requests (backup, token add and revoke) will not be answered; give the directory to the gateway's user",
                d.display()
            )
        })
}

/// Drops a request; returns its file.
pub fn submit(data: &Path, env: &Envelope) -> std::io::Result<PathBuf> {
    let d = dir(data);
    if !d.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!(
                "{} is not there: the running gateway makes it when it starts",
                d.display()
            ),
        ));
    }
    let mut raw = [0u8; 8];
    getrandom::fill(&mut raw).map_err(|e| std::io::Error::other(e.to_string()))?;
    let name: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let tmp = d.join(format!(".{name}.tmp"));
    let path = d.join(format!("{name}.json"));
    std::fs::write(
        &tmp,
        serde_json::to_vec(env).map_err(std::io::Error::other)?,
    )?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

/// Waits up to `within` for the gateway to take a request: `Ok` once it is applied, `Err`
/// with the gateway's reason if refused, or a sentence if nobody took it ([`TAKEN_WITHIN`]:
/// no gateway took it up).
pub fn wait(path: &Path, within: Duration) -> Result<(), String> {
    let err = path.with_extension("err");
    let taken = path.with_extension("taken");
    let started = Instant::now();
    let deadline = started + within;
    while Instant::now() < deadline {
        if started.elapsed() >= TAKEN_WITHIN.min(within)
            && std::fs::rename(path, path.with_extension("withdrawn")).is_ok()
        {
            let _ = std::fs::remove_file(path.with_extension("withdrawn"));
            return Err(format!(
                "no running gateway took the request up within {} s (is `kombinat run` running on this data directory, as a user that can write {}?); nothing changed",
                TAKEN_WITHIN.min(within).as_secs(),
                path.parent().unwrap_or(path).display()
            ));
        }
        if let Ok(why) = std::fs::read_to_string(&err) {
            let _ = std::fs::remove_file(&err);
            return Err(why);
        }
        if !path.exists() && !taken.exists() {
            // Gone: applied, unless the reason is being written right now.
            std::thread::sleep(Duration::from_millis(50));
            return match std::fs::read_to_string(&err) {
                Ok(why) => {
                    let _ = std::fs::remove_file(&err);
                    Err(why)
                }
                Err(_) => Ok(()),
            };
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_file(path);
    Err("the running gateway did not take the request within its time; nothing changed".into())
}

/// Requests waiting, oldest name first.
pub fn pending(data: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir(data)) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    v.sort();
    v
}

/// Reads a request file.
pub fn read(path: &Path) -> Result<Envelope, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read the request: {e}"))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("the request does not read: {e}"))
}

/// Takes a request up: `<name>.json` becomes `<name>.taken`, which is returned (`None` when
/// the command line withdrew it first); an error when the gateway cannot write in the spool
/// (the request is then left alone, and the command line says nobody took it up).
pub fn take(path: &Path) -> std::io::Result<Option<PathBuf>> {
    let taken = path.with_extension("taken");
    match std::fs::rename(path, &taken) {
        Ok(()) => Ok(Some(taken)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Marks a taken request done: removed, and the reason left beside it if it was refused.
pub fn done(taken: &Path, result: &Result<(), String>) {
    if let Err(why) = result {
        let _ = std::fs::write(taken.with_extension("err"), why);
    }
    let _ = std::fs::remove_file(taken);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope() -> Envelope {
        Envelope {
            by: "marta".into(),
            request: Request::Backup,
        }
    }

    #[test]
    fn a_request_needs_the_gateway_s_spool_and_nobody_answering_is_said_within_seconds() {
        let data = tempfile::tempdir().unwrap();
        let e = submit(data.path(), &envelope()).unwrap_err();
        assert!(e.to_string().contains("makes it when it starts"), "{e}");
        prepare(data.path()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir(data.path()))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o700);
        }
        let path = submit(data.path(), &envelope()).unwrap();
        assert_eq!(pending(data.path()), vec![path.clone()]);
        let t = Instant::now();
        let why = wait(&path, Duration::from_secs(3600)).unwrap_err();
        assert!(
            why.contains("no running gateway took the request up"),
            "{why}"
        );
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "not the request's hour"
        );
        assert!(pending(data.path()).is_empty(), "withdrawn");
    }

    #[test]
    fn a_request_taken_up_is_waited_for_and_answered() {
        let data = tempfile::tempdir().unwrap();
        prepare(data.path()).unwrap();
        let path = submit(data.path(), &envelope()).unwrap();
        let taken = take(&path).unwrap().unwrap();
        assert!(!path.exists() && taken.exists());
        assert_eq!(take(&path).unwrap(), None, "taken once");
        let answer = {
            let path = path.clone();
            std::thread::spawn(move || wait(&path, Duration::from_secs(60)))
        };
        done(&taken, &Err("refused for a reason".into()));
        assert_eq!(answer.join().unwrap(), Err("refused for a reason".into()));
        assert!(!taken.exists());
    }
}
