//! Where one input file is (a local path or an object in a store) and how to read it.
//!
//! A [`Location`] opens a reader from any byte offset: a local file seeks, an object is read
//! with one ranged GET streamed through [`ObjectReader`]. [`ExportFile`] adds what the load
//! needs to know before reading: size, declared type, compression.
//!
//! A local input that is no regular file (a pipe, `/dev/stdin`, a FIFO, `<(...)`) has no size
//! and cannot be read twice, while a load reads parts of a file again (the first line to
//! check a declared type, duplicate resources, merge keys). Such a stream is therefore read
//! once, sequentially, into a temporary file (under `TMPDIR`) that stands in for it:
//! [`Location::Spooled`].

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;

use flate2::bufread::MultiGzDecoder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use url::Url;

use super::SourceError;
use crate::store::{self, ObjectReader, StoreError};

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const READ_BUFFER: usize = 256 * 1024;

/// Where an input file is.
#[derive(Clone)]
pub enum Location {
    /// A local file.
    Local(PathBuf),
    /// A local stream (pipe, FIFO, character device) copied into a temporary file, which is
    /// read in its place and removed when the last clone of the location is dropped.
    Spooled {
        /// The path the user named, for messages and reports.
        origin: PathBuf,
        /// The copy.
        copy: Arc<tempfile::TempPath>,
    },
    /// An object in an object store.
    Object {
        /// The store holding it.
        store: Arc<dyn ObjectStore>,
        /// Its path in the store.
        path: ObjectPath,
        /// Its URL, for messages and reports.
        url: Url,
    },
}

impl Location {
    /// The location of `url`: a local path for `file://`, else an object of the store that
    /// [`store::resolve`] gives.
    ///
    /// # Errors
    ///
    /// The [`StoreError`] of an unsupported or unusable URL.
    pub fn from_url(url: &Url) -> Result<Location, StoreError> {
        if url.scheme() == "file" {
            return url
                .to_file_path()
                .map(Location::Local)
                .map_err(|()| StoreError::new(url, "not a valid file:// URL"));
        }
        let (store, path) = store::resolve(url)?;
        Ok(Location::Object { store, path, url: url.clone() })
    }

    /// A reader of the raw bytes from `offset` to the end.
    ///
    /// # Errors
    ///
    /// The I/O error of opening or seeking a local file. An object's request errors come
    /// with the first read.
    pub fn open(&self, offset: u64) -> io::Result<Box<dyn BufRead + Send>> {
        match self {
            Location::Local(path) => open_local(path, offset),
            Location::Spooled { copy, .. } => open_local(copy, offset),
            Location::Object { store, path, url } => {
                Ok(Box::new(ObjectReader::open(Arc::clone(store), path.clone(), offset, url.to_string())))
            }
        }
    }

    /// Whether the file can be read from any offset. HTTP servers need not honour ranges,
    /// so files behind `http(s)://` URLs are read as one stream.
    #[must_use]
    pub fn supports_ranges(&self) -> bool {
        match self {
            Location::Local(_) | Location::Spooled { .. } => true,
            Location::Object { url, .. } => !matches!(url.scheme(), "http" | "https"),
        }
    }

    /// The file name, for reports and dead-letter file names.
    #[must_use]
    pub fn name(&self) -> String {
        match self {
            Location::Local(path) | Location::Spooled { origin: path, .. } => {
                path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
            }
            Location::Object { path, .. } => store::file_name(path),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(path) | Location::Spooled { origin: path, .. } => write!(f, "{}", path.display()),
            Location::Object { url, .. } => f.write_str(url.as_str()),
        }
    }
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(path) => f.debug_tuple("Local").field(path).finish(),
            Location::Spooled { origin, copy } => {
                f.debug_struct("Spooled").field("origin", origin).field("copy", &copy.to_path_buf()).finish()
            }
            Location::Object { url, .. } => f.debug_tuple("Object").field(&url.as_str()).finish(),
        }
    }
}

impl PartialEq for Location {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Location::Local(a), Location::Local(b)) => a == b,
            (Location::Spooled { copy: a, .. }, Location::Spooled { copy: b, .. }) => Arc::ptr_eq(a, b),
            (Location::Object { url: a, .. }, Location::Object { url: b, .. }) => a == b,
            _ => false,
        }
    }
}

impl Eq for Location {}

impl From<PathBuf> for Location {
    fn from(path: PathBuf) -> Self {
        Location::Local(path)
    }
}

/// One data file of an export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportFile {
    /// Where the file is.
    pub location: Location,
    /// The resource type the export declares for it: its manifest entry's `type`, or for a
    /// file found in a folder or under a prefix, the type its name carries
    /// ([`type_from_name`](super::type_from_name)); `None` when neither says.
    pub declared_type: Option<String>,
    /// Whether [`declared_type`](Self::declared_type) is the one the file's name carries
    /// rather than one a manifest entry (or the caller) gave, so that a report can say
    /// which declared it.
    pub type_from_name: bool,
    /// Size in bytes as stored (compressed size for gzip files).
    pub size: u64,
    /// Whether the file is gzip-compressed (by suffix or magic bytes). Compressed files are
    /// read as one stream; plain files can be split into ranges.
    pub compressed: bool,
}

impl ExportFile {
    /// Describes the file at `location`, detecting compression by suffix or magic bytes.
    /// `size` is the object size when a listing already gave it.
    ///
    /// Blocks on the store for an object: call it off async tasks, or use
    /// `inspect_all` for many files at once.
    ///
    /// # Errors
    ///
    /// [`SourceError::Open`] when a local file cannot be opened or inspected, a
    /// [`SourceError::Store`] naming the URL for an object.
    pub fn inspect(location: impl Into<Location>, declared_type: Option<String>) -> Result<ExportFile, SourceError> {
        inspect_all(vec![Pending::declared(location.into(), declared_type)]).map(|mut files| files.remove(0))
    }

    /// A buffered reader of the (decompressed) content from byte `offset` on. For compressed
    /// files only offset 0 is meaningful: they are never split.
    ///
    /// # Errors
    ///
    /// The I/O error of opening or seeking.
    pub fn open_at(&self, offset: u64) -> io::Result<Box<dyn BufRead + Send>> {
        if self.compressed {
            let raw = self.location.open(0)?;
            return Ok(Box::new(BufReader::with_capacity(READ_BUFFER, MultiGzDecoder::new(raw))));
        }
        self.location.open(offset)
    }

    /// Whether the file may be cut into ranges read in parallel.
    #[must_use]
    pub fn splittable(&self) -> bool {
        !self.compressed && self.location.supports_ranges()
    }

    /// The line-aligned byte ranges to read the file in, for [`ChunkLines`](super::ChunkLines):
    /// about `target` bytes each when it is [`splittable`](Self::splittable), else one range
    /// `0..u64::MAX` for the whole stream.
    #[must_use]
    pub fn ranges(&self, target: u64) -> Vec<std::ops::Range<u64>> {
        if self.splittable() {
            super::plan_ranges(self.size, target)
        } else {
            std::iter::once(0..u64::MAX).collect()
        }
    }

    /// The file name, for reports and dead-letter file names.
    #[must_use]
    pub fn name(&self) -> String {
        self.location.name()
    }
}

/// A file to inspect.
pub(crate) struct Pending {
    /// Where it is.
    pub location: Location,
    /// Its declared type, as [`ExportFile::declared_type`].
    pub declared_type: Option<String>,
    /// As [`ExportFile::type_from_name`].
    pub type_from_name: bool,
    /// Its size, when a listing gave it.
    pub size: Option<u64>,
}

impl Pending {
    /// A file whose type, if any, the caller declares (a manifest entry's `type`), not its
    /// name; its size is not known yet.
    pub fn declared(location: Location, declared_type: Option<String>) -> Pending {
        Pending { location, declared_type, type_from_name: false, size: None }
    }
}

/// Objects inspected at once: enough to hide request latency over a long manifest.
const CONCURRENT_INSPECTIONS: usize = 16;

/// Inspects every file (local ones here, objects concurrently on the store runtime), in
/// order.
pub(crate) fn inspect_all(pending: Vec<Pending>) -> Result<Vec<ExportFile>, SourceError> {
    let objects: Vec<(usize, Location, Option<u64>)> = pending
        .iter()
        .enumerate()
        .filter(|(_, p)| matches!(p.location, Location::Object { .. }))
        .map(|(i, p)| (i, p.location.clone(), p.size))
        .collect();
    let inspections =
        objects.into_iter().map(|(i, location, size)| async move { (i, inspect_object(&location, size).await) });
    let mut inspected: std::collections::HashMap<_, _> =
        store::run(store::run_bounded(inspections, CONCURRENT_INSPECTIONS)).into_iter().collect();
    let mut files = Vec::with_capacity(pending.len());
    for (i, Pending { location, declared_type, type_from_name, .. }) in pending.into_iter().enumerate() {
        let location = match location {
            Location::Local(path) if is_stream(&path) => spool(path)?,
            other => other,
        };
        let (size, compressed) = match &location {
            Location::Local(path) => inspect_local(path)?,
            Location::Spooled { copy, .. } => inspect_local(copy)?,
            Location::Object { .. } => inspected.remove(&i).expect("every object was inspected")?,
        };
        files.push(ExportFile { location, declared_type, type_from_name, size, compressed });
    }
    Ok(files)
}

/// A buffered reader of a local file from `offset` on.
fn open_local(path: &std::path::Path, offset: u64) -> io::Result<Box<dyn BufRead + Send>> {
    let mut file = File::open(path)?;
    if offset > 0 {
        file.seek(SeekFrom::Start(offset))?;
    }
    Ok(Box::new(BufReader::with_capacity(READ_BUFFER, file)))
}

/// Whether `path` (links followed) exists and is neither a regular file nor a folder.
fn is_stream(path: &std::path::Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir())
}

/// Copies the stream at `origin` into a temporary file named like it (so that a `.gz` suffix
/// still tells), reading it exactly once.
fn spool(origin: PathBuf) -> Result<Location, SourceError> {
    let open_error = |source| SourceError::Open { path: origin.clone(), source };
    let mut input = File::open(&origin).map_err(open_error)?;
    let name = origin.file_name().map_or_else(|| "stream".to_owned(), |n| n.to_string_lossy().into_owned());
    let mut copy =
        tempfile::Builder::new().prefix("fhirhouse-stream-").suffix(&format!("-{name}")).tempfile().map_err(|e| {
            open_error(io::Error::new(e.kind(), format!("cannot create a temporary copy of the stream: {e}")))
        })?;
    io::copy(&mut input, copy.as_file_mut()).map_err(|e| {
        let at = copy.path().display();
        SourceError::Read {
            path: origin.clone(),
            line: 0,
            source: io::Error::new(e.kind(), format!("copying to {at}: {e}")),
        }
    })?;
    tracing::debug!(origin = %origin.display(), copy = %copy.path().display(), "stream copied");
    Ok(Location::Spooled { origin, copy: Arc::new(copy.into_temp_path()) })
}

fn inspect_local(path: &std::path::Path) -> Result<(u64, bool), SourceError> {
    let open_error = |source| SourceError::Open { path: path.to_path_buf(), source };
    let mut file = File::open(path).map_err(open_error)?;
    let size = file.metadata().map_err(open_error)?.len();
    let mut magic = [0u8; 2];
    let read = file.read(&mut magic).map_err(open_error)?;
    let compressed = size > 0 && (path.extension().is_some_and(|e| e == "gz") || (read == 2 && magic == GZIP_MAGIC));
    Ok((size, compressed))
}

/// Size and compression of an object: a HEAD unless a listing gave the size, and the first
/// two bytes when the name does not say `.gz` (only where ranges are honoured).
async fn inspect_object(location: &Location, size: Option<u64>) -> Result<(u64, bool), StoreError> {
    let Location::Object { store, path, url } = location else { unreachable!("only objects are inspected here") };
    let error = |e: object_store::Error| StoreError::new(url, e);
    let size = match size {
        Some(size) => size,
        None => store.head(path).await.map_err(error)?.size,
    };
    if size == 0 {
        return Ok((0, false));
    }
    if path.extension() == Some("gz") {
        return Ok((size, true));
    }
    if size < 2 || !location.supports_ranges() {
        return Ok((size, false));
    }
    let magic = store.get_range(path, 0..2).await.map_err(error)?;
    Ok((size, magic.as_ref() == GZIP_MAGIC))
}
