//! Objects downloaded a few ahead of the workers that read them, with retries.
//!
//! Workers take inputs in listing order (rayon splits the list into runs of neighbours), so
//! when object `i` is opened the next [`AHEAD`] are requested too: a worker rarely waits on
//! the network, and at most `AHEAD` bodies per worker wait in memory (CloudTrail delivery
//! files are a few MB at most).

use std::collections::{HashMap, HashSet};
use std::io::{self, Read};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use object_store::ObjectStore;
use object_store::path::Path;
use tokio::task::JoinHandle;

use super::store::{Operation, Stores, explain};
use crate::cloudtrail::RemoteObject;

/// Objects requested beyond the one being opened.
const AHEAD: usize = 8;
/// Whole-object attempts (each request is itself retried by the client): a body that breaks
/// off mid-transfer is fetched again from the start.
const ATTEMPTS: u32 = 3;

/// One object to read.
pub struct Target {
    pub store: Arc<dyn ObjectStore>,
    pub location: Path,
    pub name: String,
}

type Download = JoinHandle<Result<Bytes, String>>;

#[derive(Default)]
struct Downloads {
    /// Requested and not yet opened.
    pending: HashMap<usize, Download>,
    /// Opened at least once: not fetched ahead again (a second read fetches on demand).
    opened: HashSet<usize>,
}

/// The objects of one command, in listing order.
pub struct Fetcher {
    stores: Arc<Stores>,
    targets: Vec<Target>,
    downloads: Mutex<Downloads>,
}

impl Fetcher {
    pub fn new(stores: Arc<Stores>, targets: Vec<Target>) -> Fetcher {
        Fetcher {
            stores,
            targets,
            downloads: Mutex::default(),
        }
    }

    fn start(&self, index: usize) -> Option<Download> {
        let target = self.targets.get(index)?;
        let (store, location) = (Arc::clone(&target.store), target.location.clone());
        Some(self.stores.runtime.spawn(download(store, location)))
    }

    /// The bytes of object `index`, requesting the next few on the way.
    fn body(&self, index: usize) -> io::Result<Bytes> {
        let own = {
            let mut downloads = self.downloads.lock().unwrap_or_else(|e| e.into_inner());
            let own = downloads
                .pending
                .remove(&index)
                .or_else(|| self.start(index));
            downloads.opened.insert(index);
            for next in index + 1..(index + 1 + AHEAD).min(self.targets.len()) {
                if !downloads.opened.contains(&next) && !downloads.pending.contains_key(&next) {
                    if let Some(download) = self.start(next) {
                        downloads.pending.insert(next, download);
                    }
                }
            }
            own
        };
        let own = own.ok_or_else(|| io::Error::other("no such object in the listing"))?;
        match self.stores.runtime.block_on(own) {
            Ok(Ok(bytes)) => Ok(bytes),
            Ok(Err(why)) => Err(io::Error::other(why)),
            Err(e) => Err(io::Error::other(format!("the download stopped: {e}"))),
        }
    }
}

async fn download(store: Arc<dyn ObjectStore>, location: Path) -> Result<Bytes, String> {
    let mut attempt = 1;
    loop {
        let result = match store.get(&location).await {
            Ok(found) => found.bytes().await,
            Err(e) => Err(e),
        };
        match result {
            Ok(bytes) => return Ok(bytes),
            // Neither goes away by asking again.
            Err(
                e @ (object_store::Error::NotFound { .. }
                | object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. }),
            ) => return Err(explain(&e, Operation::Get)),
            Err(e) if attempt >= ATTEMPTS => {
                return Err(format!(
                    "{} (after {ATTEMPTS} attempts)",
                    explain(&e, Operation::Get)
                ));
            }
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(500) * attempt).await;
                attempt += 1;
            }
        }
    }
}

/// One S3 object as a scan input.
pub struct S3Object {
    pub fetcher: Arc<Fetcher>,
    pub index: usize,
}

impl std::fmt::Debug for S3Object {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl RemoteObject for S3Object {
    fn name(&self) -> &str {
        self.fetcher
            .targets
            .get(self.index)
            .map_or("s3://?", |t| t.name.as_str())
    }

    fn open(&self) -> io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(io::Cursor::new(self.fetcher.body(self.index)?)))
    }
}
