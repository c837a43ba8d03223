//! The store conformance suite on the embedded SQLite backend.

use std::sync::Arc;
use stratus_store::{SqliteStore, Store};

/// A store in a temporary data directory, deleted when the guard is dropped.
async fn fresh() -> (Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    (Arc::new(store), dir)
}

stratus_store::conformance_tests!(fresh);
