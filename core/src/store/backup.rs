//! The backup file: every tree of the store, record by record, with a checksum.
//!
//! Layout: the line `KOMBINAT-BACKUP 1`, a JSON header line (`{"schema": …, "created": …}`),
//! then frames: `T` + a tree's name, `R` + a key and a value (each a big-endian `u32` length
//! and the bytes), and last `E` + the number of records (`u64`) + the SHA-256 of everything
//! before `E`. A restore checks the magic, the schema and the checksum before the restored
//! store is put in place, so a cut or altered file restores nothing.

use std::io::{Read, Write};

use sha2::{Digest, Sha256};

use super::{StoreError, SCHEMA_VERSION};

/// The first line of a backup.
pub const MAGIC: &[u8] = b"KOMBINAT-BACKUP 1\n";

/// Why a backup could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Reading or writing the file.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Not a backup, cut short, or altered.
    #[error("not a usable Kombinat backup: {0}")]
    Bad(String),
}

/// Writes frames and hashes what it writes.
pub struct Writer<'a> {
    out: &'a mut dyn Write,
    hash: Sha256,
    records: u64,
}

impl<'a> Writer<'a> {
    /// Starts a backup of a store at `schema` (the store's own version, which is older than
    /// this build's in the backup taken before a migration): the magic line and the header.
    pub fn start(out: &'a mut dyn Write, schema: u32) -> Result<Self, BackupError> {
        let mut w = Writer {
            out,
            hash: Sha256::new(),
            records: 0,
        };
        let header = serde_json::json!({
            "schema": schema,
            "created": chrono::Utc::now().to_rfc3339(),
        });
        w.put(MAGIC)?;
        w.put(format!("{header}\n").as_bytes())?;
        Ok(w)
    }

    fn put(&mut self, b: &[u8]) -> Result<(), BackupError> {
        self.hash.update(b);
        self.out.write_all(b)?;
        Ok(())
    }

    fn bytes(&mut self, b: &[u8]) -> Result<(), BackupError> {
        let n =
            u32::try_from(b.len()).map_err(|_| BackupError::Bad("a record over 4 GiB".into()))?;
        self.put(&n.to_be_bytes())?;
        self.put(b)
    }

    /// Starts a tree.
    pub fn tree(&mut self, name: &str) -> Result<(), BackupError> {
        self.put(b"T")?;
        self.bytes(name.as_bytes())
    }

    /// One record of the current tree.
    pub fn record(&mut self, key: &[u8], value: &[u8]) -> Result<(), BackupError> {
        self.put(b"R")?;
        self.bytes(key)?;
        self.bytes(value)?;
        self.records += 1;
        Ok(())
    }

    /// Ends the backup with the count and the checksum; returns the count.
    pub fn finish(mut self) -> Result<u64, BackupError> {
        self.put(b"E")?;
        let n = self.records;
        self.put(&n.to_be_bytes())?;
        let sum = self.hash.clone().finalize();
        self.out.write_all(&sum)?;
        self.out.flush()?;
        Ok(n)
    }
}

/// One item read back.
#[derive(Debug, PartialEq, Eq)]
pub enum Item {
    /// A tree starts.
    Tree(String),
    /// A record of it.
    Record(Vec<u8>, Vec<u8>),
}

/// Reads a backup, checking it as it goes; [`Reader::next`] gives items until the end, which
/// is checked (count and checksum) before `None` is returned.
pub struct Reader<'a> {
    input: &'a mut dyn Read,
    hash: Sha256,
    records: u64,
    /// The header's schema version.
    pub schema: u32,
    done: bool,
}

impl<'a> Reader<'a> {
    /// Opens a backup: checks the magic line and reads the header.
    pub fn open(input: &'a mut dyn Read) -> Result<Self, BackupError> {
        let mut r = Reader {
            input,
            hash: Sha256::new(),
            records: 0,
            schema: 0,
            done: false,
        };
        let mut magic = vec![0u8; MAGIC.len()];
        r.take(&mut magic)?;
        if magic != MAGIC {
            return Err(BackupError::Bad(
                "it does not start as a Kombinat backup".into(),
            ));
        }
        let mut line = Vec::new();
        loop {
            let mut b = [0u8; 1];
            r.take(&mut b)?;
            if b[0] == b'\n' {
                break;
            }
            line.push(b[0]);
            if line.len() > 4096 {
                return Err(BackupError::Bad("its header is too long".into()));
            }
        }
        let header: serde_json::Value = serde_json::from_slice(&line)
            .map_err(|e| BackupError::Bad(format!("its header does not read: {e}")))?;
        r.schema = header["schema"]
            .as_u64()
            .and_then(|s| u32::try_from(s).ok())
            .ok_or_else(|| BackupError::Bad("its header has no schema version".into()))?;
        if r.schema > SCHEMA_VERSION {
            return Err(BackupError::Bad(format!(
                "it was written by a newer Kombinat (schema {}, this one knows up to {SCHEMA_VERSION})",
                r.schema
            )));
        }
        Ok(r)
    }

    fn take(&mut self, buf: &mut [u8]) -> Result<(), BackupError> {
        self.input.read_exact(buf).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => BackupError::Bad("it is cut short".into()),
            _ => BackupError::Io(e),
        })?;
        self.hash.update(&*buf);
        Ok(())
    }

    fn bytes(&mut self) -> Result<Vec<u8>, BackupError> {
        let mut n = [0u8; 4];
        self.take(&mut n)?;
        let n = u32::from_be_bytes(n) as usize;
        if n > 256 << 20 {
            return Err(BackupError::Bad("a record claims over 256 MiB".into()));
        }
        let mut v = vec![0u8; n];
        self.take(&mut v)?;
        Ok(v)
    }

    /// The next item, or `None` at a checked end.
    pub fn next_item(&mut self) -> Result<Option<Item>, BackupError> {
        if self.done {
            return Ok(None);
        }
        let mut tag = [0u8; 1];
        self.take(&mut tag)?;
        match tag[0] {
            b'T' => {
                let name = String::from_utf8(self.bytes()?)
                    .map_err(|_| BackupError::Bad("a tree's name is not text".into()))?;
                Ok(Some(Item::Tree(name)))
            }
            b'R' => {
                let k = self.bytes()?;
                let v = self.bytes()?;
                self.records += 1;
                Ok(Some(Item::Record(k, v)))
            }
            b'E' => {
                let mut n = [0u8; 8];
                self.take(&mut n)?;
                let expected = self.hash.clone().finalize();
                let mut sum = [0u8; 32];
                self.input
                    .read_exact(&mut sum)
                    .map_err(|_| BackupError::Bad("it is cut short".into()))?;
                if sum[..] != expected[..] {
                    return Err(BackupError::Bad(
                        "its checksum does not match: it was altered or damaged".into(),
                    ));
                }
                if u64::from_be_bytes(n) != self.records {
                    return Err(BackupError::Bad("its record count does not match".into()));
                }
                self.done = true;
                Ok(None)
            }
            other => Err(BackupError::Bad(format!("an unknown frame {other:#04x}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = Writer::start(&mut out, SCHEMA_VERSION).unwrap();
        w.tree("data").unwrap();
        w.record(b"m/olena", b"{\"name\":\"Olena\"}").unwrap();
        w.record(b"m/petro", b"").unwrap();
        w.tree("audit").unwrap();
        w.record(&[0u8; 16], b"{}").unwrap();
        assert_eq!(w.finish().unwrap(), 3);
        out
    }

    fn read_all(b: &[u8]) -> Result<Vec<Item>, BackupError> {
        let mut input = b;
        let mut r = Reader::open(&mut input)?;
        let mut items = Vec::new();
        while let Some(i) = r.next_item()? {
            items.push(i);
        }
        Ok(items)
    }

    #[test]
    fn a_backup_reads_back_record_for_record() {
        let items = read_all(&sample()).unwrap();
        assert_eq!(items.len(), 5);
        assert_eq!(items[0], Item::Tree("data".into()));
        assert_eq!(
            items[1],
            Item::Record(b"m/olena".to_vec(), b"{\"name\":\"Olena\"}".to_vec())
        );
    }

    #[test]
    fn a_cut_or_altered_backup_is_refused() {
        let b = sample();
        for cut in [5, MAGIC.len() + 3, b.len() - 40, b.len() - 1] {
            assert!(
                matches!(read_all(&b[..cut]), Err(BackupError::Bad(_))),
                "cut at {cut}"
            );
        }
        for i in [MAGIC.len() + 30, b.len() - 50] {
            let mut altered = b.clone();
            altered[i] ^= 0x20;
            assert!(read_all(&altered).is_err(), "byte {i} changed");
        }
        assert!(read_all(b"something else entirely").is_err());
    }
}
