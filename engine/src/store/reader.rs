//! A synchronous, streaming reader over one object.
//!
//! The engine's workers read inputs through `std::io::BufRead` on rayon threads. An
//! [`ObjectReader`] issues one GET (ranged from an offset to the end) on the shared runtime
//! and hands the body's chunks over a small bounded channel: memory stays at a few chunks
//! whatever the object's size, a slow reader slows the download rather than buffering it,
//! and dropping the reader cancels the request.

use std::io::{self, BufRead, Read};
use std::sync::Arc;

use bytes::{Buf, Bytes};
use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectStore};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use super::runtime;

/// Body chunks fetched ahead of the reader (a chunk is what the store's stream yields,
/// typically 8 to 64 KiB).
const READ_AHEAD_CHUNKS: usize = 32;

/// Reads one object from a byte offset to its end; see the module docs.
///
/// Must not be read from inside an async task (it blocks the thread while waiting).
pub struct ObjectReader {
    chunks: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
    download: AbortHandle,
}

impl std::fmt::Debug for ObjectReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectReader").field("buffered", &self.current.len()).finish_non_exhaustive()
    }
}

impl ObjectReader {
    /// Starts reading `path` in `store` from byte `offset`. `url` labels errors. Errors of
    /// the request itself (a missing object, refused credentials) come with the first read.
    #[must_use]
    pub fn open(store: Arc<dyn ObjectStore>, path: ObjectPath, offset: u64, url: String) -> ObjectReader {
        let (tx, chunks) = mpsc::channel(READ_AHEAD_CHUNKS);
        let to_io = move |e: object_store::Error| io::Error::other(format!("{url}: {e}"));
        let download = runtime().spawn(async move {
            let options = GetOptions { range: (offset > 0).then_some(GetRange::Offset(offset)), ..Default::default() };
            let mut body = match store.get_opts(&path, options).await {
                Ok(result) => result.into_stream(),
                Err(e) => {
                    let _ = tx.send(Err(to_io(e))).await;
                    return;
                }
            };
            while let Some(chunk) = body.next().await {
                let failed = chunk.is_err();
                // A closed channel means the reader was dropped: stop downloading.
                if tx.send(chunk.map_err(&to_io)).await.is_err() || failed {
                    return;
                }
            }
        });
        ObjectReader { chunks, current: Bytes::new(), download: download.abort_handle() }
    }
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for ObjectReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                None => break,
                Some(chunk) => self.current = chunk?,
            }
        }
        Ok(&self.current)
    }

    fn consume(&mut self, amount: usize) {
        self.current.advance(amount);
    }
}

impl Drop for ObjectReader {
    fn drop(&mut self) {
        self.download.abort();
    }
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;
    use object_store::ObjectStoreExt;

    use super::*;

    fn store_with(data: &[u8]) -> Arc<dyn ObjectStore> {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let put = Arc::clone(&store);
        let data = data.to_vec();
        super::super::run(async move { put.put(&ObjectPath::from("x"), data.into()).await.unwrap() });
        store
    }

    #[test]
    fn reads_from_an_offset_to_the_end() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let store = store_with(&data);
        for offset in [0, 1, 99_999] {
            let mut got = Vec::new();
            ObjectReader::open(Arc::clone(&store), "x".into(), offset, "memory://t/x".into())
                .read_to_end(&mut got)
                .unwrap();
            assert_eq!(got, &data[offset as usize..]);
        }
    }

    #[test]
    fn a_missing_object_is_an_error_naming_the_url() {
        let store = store_with(b"");
        let err = ObjectReader::open(store, "nope".into(), 0, "memory://t/nope".into())
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(err.to_string().starts_with("memory://t/nope: "), "{err}");
    }

    #[test]
    fn local_file_system_objects_read_the_same() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.ndjson"), "{}\n{}\n").unwrap();
        let store = Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap());
        let mut text = String::new();
        ObjectReader::open(store, "a.ndjson".into(), 3, "file:///a.ndjson".into()).read_to_string(&mut text).unwrap();
        assert_eq!(text, "{}\n");
    }
}
