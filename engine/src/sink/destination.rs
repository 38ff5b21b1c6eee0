//! Where a load publishes: a local warehouse folder ([`commit`]) or an object-store
//! warehouse ([`remote`]). Either way the load writes its tables into a local staging folder
//! and its dead letters into a local folder; [`Destination`] says where those are and how
//! they are published.
//!
//! [`commit`]: super::commit
//! [`remote`]: super::remote

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::commit::Warehouse;
use super::remote::RemoteWarehouse;
use super::SinkError;
use crate::store::Address;

/// A warehouse being loaded.
#[derive(Debug)]
pub enum Destination {
    /// A local folder, published with one atomic rename.
    Local(Warehouse),
    /// An object-store prefix, published with one PUT of its commit record.
    Remote(RemoteWarehouse),
}

impl Destination {
    /// Opens the warehouse at `out`; `staging` is the local staging folder for an
    /// object-store warehouse (a temporary folder when `None`; unused for a local one).
    ///
    /// # Errors
    ///
    /// The errors of [`Warehouse::open`] and [`RemoteWarehouse::open`], and a store that
    /// cannot list the warehouse's prefix ([`crate::store::check_listable`]).
    pub fn open(out: &Address, staging: Option<&Path>) -> Result<Destination, SinkError> {
        Ok(match out {
            Address::Local(root) => Destination::Local(Warehouse::open(root)?),
            Address::Url(url) => {
                let warehouse = RemoteWarehouse::open(url, staging)?;
                // Reading no commit record may mean no bucket: found out now, not at the
                // first upload after the whole load.
                crate::store::check_listable(url)?;
                Destination::Remote(warehouse)
            }
        })
    }

    /// Checks, before a load starts, that its `tables` can be published (a local warehouse
    /// folder may have something else under a table's name), so that it is not refused only
    /// at the end; see [`Warehouse::check_tables`].
    ///
    /// # Errors
    ///
    /// A table's name taken by something other than its link.
    pub fn check_tables(&self, tables: &[String]) -> Result<(), SinkError> {
        match self {
            Destination::Local(w) => w.check_tables(tables),
            // Object keys under a table's prefix are the table's own.
            Destination::Remote(_) => Ok(()),
        }
    }

    /// Creates and returns the local staging folder of a new load.
    ///
    /// # Errors
    ///
    /// [`SinkError::File`] when it cannot be created.
    pub fn begin(&self, load_id: &str) -> Result<PathBuf, SinkError> {
        match self {
            Destination::Local(w) => w.begin(load_id),
            Destination::Remote(w) => w.begin(load_id),
        }
    }

    /// The local folder the load writes its dead letters into.
    #[must_use]
    pub fn dead_letter_dir(&self, load_id: &str) -> PathBuf {
        match self {
            Destination::Local(w) => w.dead_letter_dir(load_id),
            Destination::Remote(w) => w.dead_letter_dir(load_id),
        }
    }

    /// Where readers find the dead letters of a load (a path or URL).
    #[must_use]
    pub fn dead_letter_location(&self, load_id: &str) -> String {
        match self {
            Destination::Local(w) => w.dead_letter_dir(load_id).display().to_string(),
            Destination::Remote(w) => w.url_of(&format!("_dead_letter/{load_id}/")),
        }
    }

    /// Publishes the staged load; see [`Warehouse::publish`] and [`RemoteWarehouse::publish`].
    ///
    /// # Errors
    ///
    /// A failure before the commit point; the previous state stays published.
    pub fn publish(&self, load_id: &str, tables: &[String]) -> Result<(), SinkError> {
        match self {
            Destination::Local(w) => w.publish(load_id, tables),
            Destination::Remote(w) => w.publish(load_id, tables),
        }
    }

    /// Drops a staged load without publishing it.
    pub fn abandon(&self, load_id: &str) {
        match self {
            Destination::Local(w) => w.abandon(load_id),
            Destination::Remote(w) => w.abandon(load_id),
        }
    }

    /// Saves the run report of a load (and, for an object store, uploads its dead letters);
    /// returns where the report is.
    ///
    /// # Errors
    ///
    /// Writing or uploading failed.
    pub fn save_report(&self, load_id: &str, report: Vec<u8>) -> anyhow::Result<String> {
        match self {
            Destination::Local(w) => {
                let path = w.report_path(load_id);
                // A report cut short (a full disk) would be read as no report at all.
                super::commit::write_file_atomically(&path, &report)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                Ok(path.display().to_string())
            }
            Destination::Remote(w) => Ok(w.save_report(load_id, report)?),
        }
    }
}
