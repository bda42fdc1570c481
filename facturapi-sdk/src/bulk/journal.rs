//! Where a bulk run records each item's state, so that a later run can resume it.

use std::collections::HashMap;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::{self, Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::mpsc;

use serde::{Deserialize, Serialize};

/// A boxed future, as [`Journal`] methods return (the trait stays object-safe).
pub type JournalFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, JournalError>> + Send + 'a>>;

/// The durable record of a bulk run, one state per `external_id`. A run writes
/// [`ItemState::Sent`] before an item's creation request goes out and its outcome after; a
/// later run reads it back with [`Journal::load`] and skips what was created.
///
/// [`FileJournal`] is the embedded implementation. Implement this for your own store (a table
/// of your billing database) when the journal should live beside the rest of your data. An
/// implementation must make each [`Journal::record`] durable before its future resolves, and
/// [`Journal::load`] must return the last state recorded for each item.
pub trait Journal: Send + Sync + fmt::Debug {
    /// What earlier runs recorded: the run's header and the last state of each item.
    fn load(&self) -> JournalFuture<'_, Recorded>;

    /// Records `entry`; resolves once it is durable.
    fn record<'a>(&'a self, entry: &'a Entry) -> JournalFuture<'a, ()>;
}

/// What [`Journal::load`] returns.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Recorded {
    /// The header written by the first run: what it created and under which scope its
    /// idempotency keys were derived. `None` for a journal no run has written to.
    pub header: Option<Header>,
    /// The last state recorded for each `external_id`.
    pub items: HashMap<String, ItemState>,
}

/// The first entry of a journal: what kind of document the run creates and the scope its
/// idempotency keys are derived in. A resumed run uses the recorded scope, so renewing the
/// API key between runs does not change any item's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// `invoices`, `receipts` or `retentions`.
    pub kind: String,
    /// The scope (see [`Bulk::organization`](super::Bulk::organization)).
    pub scope: String,
}

/// One item's state in the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ItemState {
    /// Its creation request is about to be sent (or was, by a run that then stopped): the
    /// document may exist.
    Sent,
    /// The document exists.
    Created {
        /// Its id.
        id: String,
        /// Whether it was still pending (Facturapi finishes it later).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        pending: bool,
    },
    /// Certainly not created (the API refused it before processing it).
    Failed,
    /// Possibly created: every resend failed too. The next run settles it.
    Unknown,
}

/// One record of a journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum Entry {
    /// The run's header, written once, first.
    Header {
        /// The header.
        header: Header,
    },
    /// An item's new state.
    Item {
        /// The item's `external_id`.
        external_id: String,
        /// Its state.
        #[serde(flatten)]
        state: ItemState,
    },
}

/// A journal that cannot be read or written. A bulk run stops at the first one: without its
/// journal it could not promise that a later run creates nothing twice.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// Reading or writing the store failed.
    #[error("journal {path}: {source}")]
    Io {
        /// The journal's path (or your store's name).
        path: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A complete line of the journal does not parse: it was edited or belongs to something
    /// else. (An incomplete last line, from a crash in the middle of a write, is dropped.)
    #[error("journal {path}, line {line}: not a journal entry ({message})")]
    Corrupt {
        /// The journal's path.
        path: String,
        /// The line, from 1.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// The journal belongs to a run of another kind of document.
    #[error("journal {path} records a run creating {recorded}, not {wanted}")]
    KindMismatch {
        /// The journal's path.
        path: String,
        /// What it records.
        recorded: String,
        /// What this run creates.
        wanted: String,
    },
    /// Your own store's error.
    #[error("journal: {0}")]
    Other(Box<dyn std::error::Error + Send + Sync>),
}

/// How [`FileJournal`] makes a record durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// `fdatasync` before a record counts as written: survives a power cut. Records that
    /// arrive together share one sync (group commit).
    Sync,
    /// Written to the operating system, not synced: survives the process being killed, not
    /// the machine losing power. For tests and for measuring what syncing costs.
    Os,
}

/// A journal in one append-only file of JSON lines, written by a dedicated thread that
/// syncs each batch of records once (group commit).
///
/// Why a file and not an embedded database: a bulk run only ever appends small records and
/// reads them all back once when it resumes, which is what an append-only log does best; it
/// needs no dependency, the file is readable with any text tool, and a crash can only cut
/// its last line short, which [`FileJournal::open`] drops. The `bulk` benchmark measures its
/// cost per item.
pub struct FileJournal {
    path: PathBuf,
    /// What the file held when it was opened, until the first `load` takes it (later loads
    /// read the file again): a resumed run holds one copy, not two.
    opened: std::sync::Mutex<Option<Recorded>>,
    writer: mpsc::Sender<Pending>,
}

impl fmt::Debug for FileJournal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileJournal")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

struct Pending {
    line: Vec<u8>,
    done: tokio::sync::oneshot::Sender<io::Result<()>>,
}

impl FileJournal {
    /// Opens (or creates) the journal at `path`, syncing every record.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, JournalError> {
        Self::open_with(path, Durability::Sync)
    }

    /// Opens (or creates) the journal at `path` with the given durability.
    pub fn open_with(path: impl AsRef<Path>, durability: Durability) -> Result<Self, JournalError> {
        let path = path.as_ref().to_path_buf();
        let io_err = |source| JournalError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io_err)?;
        let mut text = Vec::new();
        file.read_to_end(&mut text).map_err(io_err)?;
        // A crash can leave the last line without its newline: drop it, so appends start on
        // a fresh line. The item it described is still `Sent` (or not yet recorded) and is
        // settled like any other.
        let complete = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        if complete < text.len() {
            file.set_len(complete as u64).map_err(io_err)?;
            file.seek(io::SeekFrom::End(0)).map_err(io_err)?;
            text.truncate(complete);
        }
        let recorded = parse(&path, &text)?;
        let (writer, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("facturapi-journal".into())
            .spawn(move || write_loop(file, rx, durability))
            .map_err(io_err)?;
        Ok(Self {
            path,
            opened: std::sync::Mutex::new(Some(recorded)),
            writer,
        })
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn parse(path: &Path, text: &[u8]) -> Result<Recorded, JournalError> {
    let mut recorded = Recorded::default();
    for (n, line) in text.split(|b| *b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let entry: Entry = serde_json::from_slice(line).map_err(|e| JournalError::Corrupt {
            path: path.display().to_string(),
            line: n + 1,
            message: e.to_string(),
        })?;
        match entry {
            Entry::Header { header } => {
                recorded.header.get_or_insert(header);
            }
            Entry::Item { external_id, state } => {
                recorded.items.insert(external_id, state);
            }
        }
    }
    Ok(recorded)
}

/// The writer thread: takes every record waiting, writes them with one call, syncs once,
/// then answers each. A blocking thread rather than tokio's file API, because a sync blocks
/// and batching needs to see the whole queue at once.
fn write_loop(mut file: File, rx: mpsc::Receiver<Pending>, durability: Durability) {
    let mut batch = Vec::new();
    let mut buf = Vec::new();
    while let Ok(first) = rx.recv() {
        batch.push(first);
        batch.extend(rx.try_iter());
        buf.clear();
        for pending in &batch {
            buf.extend_from_slice(&pending.line);
        }
        let mut result = file.write_all(&buf);
        if result.is_ok() && durability == Durability::Sync {
            result = file.sync_data();
        }
        for pending in batch.drain(..) {
            let answer = match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
            };
            let _ = pending.done.send(answer);
        }
    }
}

impl Journal for FileJournal {
    fn load(&self) -> JournalFuture<'_, Recorded> {
        let opened = self.opened.lock().unwrap_or_else(|e| e.into_inner()).take();
        Box::pin(async move {
            match opened {
                Some(recorded) => Ok(recorded),
                None => {
                    let text = std::fs::read(&self.path).map_err(|source| JournalError::Io {
                        path: self.path.display().to_string(),
                        source,
                    })?;
                    // Only complete lines: a record being written now is not yet durable.
                    let complete = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
                    parse(&self.path, &text[..complete])
                }
            }
        })
    }

    fn record<'a>(&'a self, entry: &'a Entry) -> JournalFuture<'a, ()> {
        Box::pin(async move {
            let io_err = |source| JournalError::Io {
                path: self.path.display().to_string(),
                source,
            };
            let mut line = serde_json::to_vec(entry).map_err(|e| io_err(e.into()))?;
            line.push(b'\n');
            let (done, answer) = tokio::sync::oneshot::channel();
            self.writer
                .send(Pending { line, done })
                .map_err(|_| io_err(io::Error::other("the journal's writer thread stopped")))?;
            answer
                .await
                .map_err(|_| io_err(io::Error::other("the journal's writer thread stopped")))?
                .map_err(io_err)
        })
    }
}

/// A journal in memory: what the run records is lost with the process. For tests and for runs
/// that do not need to resume.
#[derive(Debug, Default)]
pub struct MemoryJournal {
    recorded: std::sync::Mutex<Recorded>,
}

impl MemoryJournal {
    /// An empty journal.
    pub fn new() -> Self {
        Self::default()
    }

    /// What has been recorded so far.
    pub fn recorded(&self) -> Recorded {
        self.recorded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Journal for MemoryJournal {
    fn load(&self) -> JournalFuture<'_, Recorded> {
        let recorded = self.recorded();
        Box::pin(async move { Ok(recorded) })
    }

    fn record<'a>(&'a self, entry: &'a Entry) -> JournalFuture<'a, ()> {
        let mut recorded = self.recorded.lock().unwrap_or_else(|e| e.into_inner());
        match entry {
            Entry::Header { header } => {
                recorded.header.get_or_insert_with(|| header.clone());
            }
            Entry::Item { external_id, state } => {
                recorded.items.insert(external_id.clone(), state.clone());
            }
        }
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, state: ItemState) -> Entry {
        Entry::Item {
            external_id: id.into(),
            state,
        }
    }

    #[tokio::test]
    async fn records_read_back_and_a_torn_last_line_is_dropped() {
        let dir = std::env::temp_dir().join(format!("fj-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("run.journal");
        {
            let journal = FileJournal::open(&path).unwrap();
            let header = Header {
                kind: "invoices".into(),
                scope: "org".into(),
            };
            journal.record(&Entry::Header { header }).await.unwrap();
            journal.record(&item("a", ItemState::Sent)).await.unwrap();
            let created = ItemState::Created {
                id: "inv_1".into(),
                pending: false,
            };
            journal.record(&item("a", created)).await.unwrap();
            journal
                .record(&item("b \"q\"", ItemState::Sent))
                .await
                .unwrap();
        }
        // A write cut short by a crash.
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(br#"{"external_id":"c","sta"#).unwrap();
        drop(file);

        let journal = FileJournal::open(&path).unwrap();
        let recorded = journal.load().await.unwrap();
        assert_eq!(
            journal.load().await.unwrap(),
            recorded,
            "a second load reads the file"
        );
        assert_eq!(recorded.header.as_ref().unwrap().scope, "org");
        assert_eq!(
            recorded.items["a"],
            ItemState::Created {
                id: "inv_1".into(),
                pending: false
            }
        );
        assert_eq!(recorded.items["b \"q\""], ItemState::Sent);
        assert!(!recorded.items.contains_key("c"));
        // Appends start on a fresh line after the torn one was cut.
        journal.record(&item("c", ItemState::Failed)).await.unwrap();
        drop(journal);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.ends_with("{\"external_id\":\"c\",\"state\":\"failed\"}\n"),
            "{text}"
        );
        let again = FileJournal::open(&path).unwrap().load().await.unwrap();
        assert_eq!(again.items["c"], ItemState::Failed);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_corrupt_complete_line_is_an_error_naming_it() {
        let dir = std::env::temp_dir().join(format!("fj-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("run.journal");
        std::fs::write(&path, "{\"external_id\":\"a\",\"state\":\"sent\"}\nhello\n").unwrap();
        let err = FileJournal::open(&path).unwrap_err();
        assert!(
            matches!(err, JournalError::Corrupt { line: 2, .. }),
            "{err}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
