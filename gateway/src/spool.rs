//! Requests from the command line to a running gateway, through a spool directory in the data
//! directory: sled lets one process open the store, so while `kombinat run` has it, `kombinat
//! token add|revoke` drop a request file here and wait; the core takes each within a second,
//! applies it (audited, as the user who asked) and removes the file, leaving `<name>.err` with
//! the reason if it refused. A file is written under a temporary name and renamed, so the core
//! never reads half of one.

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
    /// The request.
    pub request: Request,
}

/// The spool directory of a data directory.
pub fn dir(data: &Path) -> PathBuf {
    data.join("spool")
}

/// Drops a request; returns its file.
pub fn submit(data: &Path, env: &Envelope) -> std::io::Result<PathBuf> {
    let d = dir(data);
    std::fs::create_dir_all(&d)?;
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
/// with the gateway's reason if refused, or a sentence if nobody took it.
pub fn wait(path: &Path, within: Duration) -> Result<(), String> {
    let err = path.with_extension("err");
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(why) = std::fs::read_to_string(&err) {
            let _ = std::fs::remove_file(&err);
            return Err(why);
        }
        if !path.exists() {
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

/// Marks a request done: removed, and the reason left beside it if it was refused.
pub fn done(path: &Path, result: &Result<(), String>) {
    if let Err(why) = result {
        let _ = std::fs::write(path.with_extension("err"), why);
    }
    let _ = std::fs::remove_file(path);
}
