//! The store conformance suite on the PostgreSQL backend, against a real server started for
//! the test (see `stratus_store::testing`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use stratus_store::testing::PostgresCluster;
use stratus_store::{PostgresStore, Store, conformance};

#[tokio::test]
async fn postgres_store_conforms() {
    let cluster = PostgresCluster::start().unwrap();
    let databases = AtomicUsize::new(0);
    conformance::run_all(|| async {
        let n = databases.fetch_add(1, Ordering::SeqCst);
        let url = cluster
            .create_database(&format!("conformance_{n}"))
            .await
            .unwrap();
        Arc::new(PostgresStore::open(&url).await.unwrap()) as Arc<dyn Store>
    })
    .await;
}
