//! The store conformance suite on the embedded SQLite backend.

use std::sync::Arc;
use stratus_store::{SqliteStore, Store, conformance};

#[tokio::test]
async fn sqlite_store_conforms() {
    let dirs = std::sync::Mutex::new(Vec::new());
    conformance::run_all(|| async {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).await.unwrap();
        dirs.lock().unwrap().push(dir);
        Arc::new(store) as Arc<dyn Store>
    })
    .await;
}
