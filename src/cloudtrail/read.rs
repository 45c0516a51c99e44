//! Inputs: files, directories (recursive), stdin; gzip detected by its magic bytes; digest
//! files skipped; every record normalized as it streams by.

use std::collections::VecDeque;
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use flate2::bufread::MultiGzDecoder;
use serde_json::Value;

use super::NormalizeOptions;
use super::fields::FieldMask;
use super::layout::DayRange;
use super::normalize::{FieldSelector, Normalized, normalize_record, normalize_record_selected};
use super::split::{RawRecord, RecordSplitter, SplitError};

const BUFFER: usize = 256 * 1024;
const GZIP_MAGIC: [u8; 3] = [0x1f, 0x8b, 0x08];

/// Where records come from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Input {
    Stdin,
    File(PathBuf),
    /// Records held in memory (a rule example's events), named for messages.
    Memory {
        name: String,
        bytes: Arc<[u8]>,
    },
    /// An object in a remote store (an S3 object), opened when it is read.
    Remote(RemoteInput),
}

/// An input that lives elsewhere (an S3 object): this module only needs its name and a way to
/// read its bytes, so it knows nothing of the store.
pub trait RemoteObject: Send + Sync + fmt::Debug {
    /// The object's address, for messages and document ids (`s3://bucket/key`).
    fn name(&self) -> &str;
    /// The object's bytes, as stored (gzip is detected afterwards, as for files).
    fn open(&self) -> io::Result<Box<dyn Read + Send>>;
}

/// A shared [`RemoteObject`], compared and ordered by its name.
#[derive(Debug, Clone)]
pub struct RemoteInput(pub Arc<dyn RemoteObject>);

impl PartialEq for RemoteInput {
    fn eq(&self, other: &Self) -> bool {
        self.0.name() == other.0.name()
    }
}
impl Eq for RemoteInput {}
impl PartialOrd for RemoteInput {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for RemoteInput {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.name().cmp(other.0.name())
    }
}
impl std::hash::Hash for RemoteInput {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.name().hash(state);
    }
}

impl fmt::Display for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Input::Stdin => f.write_str("<stdin>"),
            Input::File(path) => write!(f, "{}", path.display()),
            Input::Memory { name, .. } => f.write_str(name),
            Input::Remote(remote) => f.write_str(remote.0.name()),
        }
    }
}

/// One input to read, with its size on disk when known (for progress).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFile {
    pub input: Input,
    pub size: Option<u64>,
}

/// Something that went wrong with one input or one record. Reading goes on after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub input: String,
    /// 0-based record index within the input, when the problem is one record.
    pub record: Option<usize>,
    /// Byte offset in the decompressed stream.
    pub offset: Option<u64>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.input)?;
        match (self.record, self.offset) {
            (Some(r), Some(o)) => write!(f, ": record {r} (byte {o})")?,
            (Some(r), None) => write!(f, ": record {r}")?,
            (None, Some(o)) => write!(f, ": byte {o}")?,
            (None, None) => {}
        }
        write!(f, ": {}", self.message)
    }
}

/// What `discover` found behind the paths given on the command line.
#[derive(Debug, Default)]
pub struct Discovered {
    pub files: Vec<InputFile>,
    /// Paths that could not be read or listed.
    pub problems: Vec<Problem>,
    /// CloudTrail digest files left out.
    pub digest_files: Vec<PathBuf>,
    /// Files under a directory or prefix left out by the day range.
    pub out_of_range: usize,
}

impl Discovered {
    /// Append what another path or location held.
    pub fn append(&mut self, other: Discovered) {
        self.files.extend(other.files);
        self.problems.extend(other.problems);
        self.digest_files.extend(other.digest_files);
        self.out_of_range += other.out_of_range;
    }
}

/// Whether a path is a CloudTrail digest file (integrity metadata, not events).
pub fn is_digest_path(path: &Path) -> bool {
    path.to_string_lossy().contains("CloudTrail-Digest")
}

/// In directories, only files that look like CloudTrail JSON are read (so a README or
/// licence file next to the logs is not an error); files named explicitly are always read.
pub fn looks_like_json(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    looks_like_json_name(&name)
}

/// [`looks_like_json`] on a file name already lower-cased (an S3 key's last segment).
pub fn looks_like_json_name(name: &str) -> bool {
    let name = name.strip_suffix(".gz").unwrap_or(name);
    !name.starts_with('.')
        && [".json", ".jsonl", ".ndjson"]
            .iter()
            .any(|ext| name.ends_with(ext))
}

/// Expand command-line paths: `-` is stdin, directories are walked recursively (sorted, so
/// runs are repeatable), digest files are set aside.
pub fn discover(paths: &[PathBuf]) -> Discovered {
    discover_in(paths, &DayRange::default())
}

/// [`discover`], keeping of the files found under directories only those of the delivery
/// days in `days`; a file named on its own is always read.
pub fn discover_in(paths: &[PathBuf], days: &DayRange) -> Discovered {
    let mut found = Discovered::default();
    for path in paths {
        if path.as_os_str() == "-" {
            found.files.push(InputFile {
                input: Input::Stdin,
                size: None,
            });
            continue;
        }
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => walk(path, days, &mut found),
            Ok(meta) => add_file(path.clone(), Some(meta.len()), &mut found),
            Err(e) => found.problems.push(path_problem(path, &e)),
        }
    }
    found
}

fn path_problem(path: &Path, e: &io::Error) -> Problem {
    Problem {
        input: path.display().to_string(),
        record: None,
        offset: None,
        message: format!("cannot read: {e}"),
    }
}

fn add_file(path: PathBuf, size: Option<u64>, found: &mut Discovered) {
    if is_digest_path(&path) {
        found.digest_files.push(path);
    } else {
        found.files.push(InputFile {
            input: Input::File(path),
            size,
        });
    }
}

fn walk(dir: &Path, days: &DayRange, found: &mut Discovered) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => return found.problems.push(path_problem(dir, &e)),
    };
    let mut paths: Vec<PathBuf> = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) => paths.push(entry.path()),
            Err(e) => found.problems.push(path_problem(dir, &e)),
        }
    }
    paths.sort();
    for path in paths {
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => walk(&path, days, found),
            Ok(meta) if looks_like_json(&path) => {
                if is_digest_path(&path) || days.selects(&path.to_string_lossy()) {
                    add_file(path, Some(meta.len()), found);
                } else {
                    found.out_of_range += 1;
                }
            }
            Ok(_) => {}
            Err(e) => found.problems.push(path_problem(&path, &e)),
        }
    }
}

/// Counts bytes read from the underlying file (compressed bytes, for progress).
struct Counting<R> {
    inner: R,
    counter: Option<Arc<AtomicU64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(counter) = &self.counter {
            counter.fetch_add(n as u64, Ordering::Relaxed);
        }
        Ok(n)
    }
}

/// Open an input as a decompressed byte stream.
pub fn open(
    input: &Input,
    progress: Option<Arc<AtomicU64>>,
) -> io::Result<Box<dyn BufRead + Send>> {
    let raw: Box<dyn Read + Send> = match input {
        Input::Stdin => Box::new(io::stdin()),
        Input::File(path) => Box::new(File::open(path)?),
        Input::Memory { bytes, .. } => Box::new(io::Cursor::new(Arc::clone(bytes))),
        Input::Remote(remote) => remote.0.open()?,
    };
    let mut reader = BufReader::with_capacity(
        BUFFER,
        Counting {
            inner: raw,
            counter: progress,
        },
    );
    let head = loop {
        match reader.fill_buf() {
            Ok(buf) => break buf,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    };
    if head.starts_with(&GZIP_MAGIC) {
        Ok(Box::new(BufReader::with_capacity(
            BUFFER,
            MultiGzDecoder::new(reader),
        )))
    } else {
        Ok(Box::new(reader))
    }
}

/// One normalized document and where its record was.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub index: usize,
    pub value: Value,
    /// When `value` holds only the fields a [`FieldSelector`] asked for: the record, for
    /// [`Document::whole`].
    pub partial: Option<Box<[u8]>>,
}

impl Document {
    /// The whole document: `value` itself, or built again from the record.
    pub fn whole(&self, opts: &NormalizeOptions) -> Value {
        match &self.partial {
            None => self.value.clone(),
            // The record normalized once already, so it normalizes again.
            Some(raw) => match normalize_record(raw, opts) {
                Ok(Normalized::Event(value)) => value,
                _ => self.value.clone(),
            },
        }
    }
}

/// Per-input tallies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Records turned into documents.
    pub documents: usize,
    /// Valid records a prefilter set aside without normalizing them.
    pub prefiltered: usize,
    /// Records that could not be (bad JSON, not an object, ...), each reported.
    pub skipped: usize,
    /// Digest records left out.
    pub digests: usize,
    /// Whether the input stopped early (unreadable, corrupt gzip, truncated JSON).
    pub failed: bool,
    /// Decompressed bytes read.
    pub bytes: u64,
}

/// Streams the documents of one input. Problems come through as `Err` items and reading
/// continues after each, except after a stream-level one (the input ends there).
pub struct DocumentReader {
    name: String,
    splitter: Option<RecordSplitter<Box<dyn BufRead + Send>>>,
    /// Why the input could not be opened, reported as the first (and only) item.
    open_error: Option<io::Error>,
    opts: NormalizeOptions,
    /// Records of an envelope whose `Records` key was not first (read whole, then split).
    pending: VecDeque<RawRecord>,
    stats: ReadStats,
    selector: Option<Arc<FieldSelector>>,
}

impl DocumentReader {
    /// Open `file`; an input that cannot be opened yields one problem and nothing else.
    pub fn open(
        file: &InputFile,
        opts: &NormalizeOptions,
        progress: Option<Arc<AtomicU64>>,
    ) -> Self {
        let (splitter, open_error) = match open(&file.input, progress) {
            Ok(stream) => (Some(RecordSplitter::new(stream)), None),
            Err(e) => (None, Some(e)),
        };
        DocumentReader {
            name: file.input.to_string(),
            splitter,
            open_error,
            opts: opts.clone(),
            pending: VecDeque::new(),
            stats: ReadStats::default(),
            selector: None,
        }
    }

    /// Build of each raw record only the fields `selector` asks for, and nothing of one it
    /// rejects (counted in [`ReadStats::prefiltered`], not yielded); a document built in part
    /// keeps its record ([`Document::partial`]) so that it can be built whole when wanted.
    pub fn with_selector(mut self, selector: Arc<FieldSelector>) -> Self {
        self.selector = Some(selector);
        self
    }

    pub fn stats(&self) -> ReadStats {
        self.stats
    }

    fn problem(&self, record: Option<usize>, offset: Option<u64>, message: String) -> Problem {
        Problem {
            input: self.name.clone(),
            record,
            offset,
            message,
        }
    }

    /// A top-level object that is an envelope after all (`Records` not its first key):
    /// rare enough to read whole.
    fn expand_late_envelope(&mut self, record: &RawRecord) -> bool {
        let Ok(Value::Object(mut envelope)) = serde_json::from_slice::<Value>(&record.bytes) else {
            return false;
        };
        let Some(Value::Array(records)) = envelope.remove("Records") else {
            return false;
        };
        for (i, r) in records.into_iter().enumerate() {
            self.pending.push_back(RawRecord {
                index: record.index + i,
                offset: record.offset,
                bytes: serde_json::to_vec(&r).unwrap_or_default(),
            });
        }
        true
    }

    fn next_raw(&mut self) -> Option<Result<RawRecord, Problem>> {
        if let Some(record) = self.pending.pop_front() {
            return Some(Ok(record));
        }
        let splitter = self.splitter.as_mut()?;
        let item = splitter.next();
        self.stats.bytes = splitter.offset();
        match item? {
            Ok(record) => Some(Ok(record)),
            Err(e) => {
                self.stats.failed = true;
                let (record, offset) = match &e {
                    SplitError::Truncated { index, offset } => (Some(*index), Some(*offset)),
                    SplitError::Io { offset, .. } => (None, Some(*offset)),
                    SplitError::NotJson { .. } => (None, None),
                };
                let message = match &e {
                    SplitError::Truncated { .. } => {
                        "truncated JSON: the input ends inside this record".to_string()
                    }
                    SplitError::Io { source, .. } => format!("read error: {source}"),
                    other => other.to_string(),
                };
                self.splitter = None;
                Some(Err(self.problem(record, offset, message)))
            }
        }
    }
}

impl Iterator for DocumentReader {
    type Item = Result<Document, Problem>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.open_error.take() {
            self.stats.failed = true;
            return Some(Err(self.problem(None, None, format!("cannot read: {e}"))));
        }
        loop {
            let record = match self.next_raw()? {
                Ok(record) => record,
                Err(problem) => return Some(Err(problem)),
            };
            let selected = match self.selector.as_deref() {
                Some(select) => normalize_record_selected(&record.bytes, &self.opts, select),
                None => {
                    normalize_record_selected(&record.bytes, &self.opts, |_| Some(FieldMask::ALL))
                }
            };
            match selected.map(|s| s.map(|(normalized, mask)| (normalized, mask.is_all()))) {
                Ok(None) => self.stats.prefiltered += 1,
                Ok(Some((Normalized::Envelope, _))) if self.expand_late_envelope(&record) => {
                    continue;
                }
                Ok(Some((Normalized::Envelope, _))) => {
                    self.stats.skipped += 1;
                    let message = "an envelope whose `Records` is not an array".to_string();
                    return Some(Err(self.problem(
                        Some(record.index),
                        Some(record.offset),
                        message,
                    )));
                }
                Ok(Some((Normalized::Event(value), whole))) => {
                    self.stats.documents += 1;
                    return Some(Ok(Document {
                        index: record.index,
                        value,
                        partial: (!whole).then(|| record.bytes.into_boxed_slice()),
                    }));
                }
                Ok(Some((Normalized::Digest, _))) => self.stats.digests += 1,
                Err(e) => {
                    self.stats.skipped += 1;
                    return Some(Err(self.problem(
                        Some(record.index),
                        Some(record.offset),
                        e.to_string(),
                    )));
                }
            }
        }
    }
}
