//! The folder an export is downloaded into: a local folder or an object-store prefix.
//!
//! Every file appears complete or not at all: a local file is written under a temporary
//! name, synced and renamed; an object is uploaded with one PUT or a multipart upload,
//! which the store makes visible only when it completes. That is what lets a crashed
//! export resume: a file that is there is whole.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

use super::BulkError;
use crate::store::{self, Address};

/// Where an export goes.
#[derive(Debug, Clone)]
pub(crate) enum Output {
    Local(PathBuf),
    Store { store: Arc<dyn ObjectStore>, root: ObjectPath, url: url::Url },
}

/// A file being written; [`FileWriter::commit`] makes it appear, dropping it discards it.
pub(crate) enum FileWriter {
    Local { temporary: PathBuf, path: PathBuf, file: BufWriter<File> },
    Store { upload: WriteMultipart },
}

impl Output {
    /// The output at `address`, created if it is a missing local folder.
    pub fn open(address: &Address) -> Result<Output, BulkError> {
        match address {
            Address::Local(dir) => {
                fs::create_dir_all(dir).map_err(|e| BulkError::io(dir.display(), e))?;
                Ok(Output::Local(dir.clone()))
            }
            Address::Url(url) => {
                let (store, root) = store::resolve(url).map_err(|e| BulkError::Invalid(e.to_string()))?;
                Ok(Output::Store { store, root, url: url.clone() })
            }
        }
    }

    /// `name` (a relative path) for messages.
    pub fn describe(&self, name: &str) -> String {
        match self {
            Output::Local(dir) => dir.join(name).display().to_string(),
            Output::Store { url, .. } => format!("{}/{name}", url.as_str().trim_end_matches('/')),
        }
    }

    /// The bytes of a small file, `None` when it does not exist.
    pub async fn read(&self, name: &str) -> Result<Option<Vec<u8>>, BulkError> {
        match self {
            Output::Local(dir) => match fs::read(dir.join(name)) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(BulkError::io(self.describe(name), e)),
            },
            Output::Store { store, root, .. } => match store.get(&store::child(root, name)).await {
                Ok(result) => Ok(Some(result.bytes().await.map_err(|e| self.store_error(name, e))?.to_vec())),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(self.store_error(name, e)),
            },
        }
    }

    /// Writes a small file in one go (atomically).
    pub async fn write(&self, name: &str, bytes: Vec<u8>) -> Result<(), BulkError> {
        match self {
            Output::Local(_) => {
                let mut writer = self.create(name).await?;
                writer.write(&bytes).await.map_err(|e| BulkError::io(self.describe(name), e))?;
                writer.commit().await.map_err(|e| BulkError::io(self.describe(name), e))
            }
            Output::Store { store, root, .. } => store
                .put(&store::child(root, name), PutPayload::from(bytes))
                .await
                .map(drop)
                .map_err(|e| self.store_error(name, e)),
        }
    }

    /// Starts writing `name`.
    pub async fn create(&self, name: &str) -> Result<FileWriter, BulkError> {
        match self {
            Output::Local(dir) => {
                let path = dir.join(name);
                if let Some(parent) = path.parent() {
                    fs::create_dir_all(parent).map_err(|e| BulkError::io(parent.display(), e))?;
                }
                let temporary =
                    path.with_extension(format!("{}.part", path.extension().unwrap_or_default().to_string_lossy()));
                let file = File::create(&temporary).map_err(|e| BulkError::io(temporary.display(), e))?;
                Ok(FileWriter::Local { temporary, path, file: BufWriter::with_capacity(1 << 20, file) })
            }
            Output::Store { store, root, .. } => {
                let upload =
                    store.put_multipart(&store::child(root, name)).await.map_err(|e| self.store_error(name, e))?;
                Ok(FileWriter::Store { upload: WriteMultipart::new(upload) })
            }
        }
    }

    /// Removes `name` if it exists.
    pub async fn remove(&self, name: &str) {
        let removed = match self {
            Output::Local(dir) => match fs::remove_file(dir.join(name)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.to_string()),
                _ => Ok(()),
            },
            Output::Store { store, root, .. } => match store.delete(&store::child(root, name)).await {
                Err(e) if !matches!(e, object_store::Error::NotFound { .. }) => Err(e.to_string()),
                _ => Ok(()),
            },
        };
        if let Err(e) = removed {
            tracing::warn!(file = self.describe(name), error = e, "could not remove a file of a discarded export");
        }
    }

    fn store_error(&self, name: &str, e: object_store::Error) -> BulkError {
        BulkError::Invalid(format!("{}: {e}", self.describe(name)))
    }
}

impl FileWriter {
    /// Appends bytes.
    pub async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            FileWriter::Local { file, .. } => file.write_all(bytes),
            FileWriter::Store { upload } => {
                // Back-pressure: at most a few parts in flight.
                upload.wait_for_capacity(4).await.map_err(std::io::Error::other)?;
                upload.write(bytes);
                Ok(())
            }
        }
    }

    /// Makes the file appear, complete.
    pub async fn commit(self) -> std::io::Result<()> {
        match self {
            FileWriter::Local { temporary, path, file } => {
                let file = file.into_inner().map_err(std::io::IntoInnerError::into_error)?;
                file.sync_all()?;
                fs::rename(&temporary, &path)
            }
            FileWriter::Store { upload } => upload.finish().await.map(drop).map_err(std::io::Error::other),
        }
    }

    /// Discards the file.
    pub async fn abort(self) {
        match self {
            FileWriter::Local { temporary, file, .. } => {
                drop(file);
                let _ = fs::remove_file(temporary);
            }
            FileWriter::Store { upload } => {
                let _ = upload.abort().await;
            }
        }
    }
}
