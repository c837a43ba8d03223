use std::sync::Arc;
use stratus_store::conformance::{create, instance, seeded};
use stratus_store::testing::PostgresCluster;
use stratus_store::{HostRegistrationRecord, PostgresStore, Store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn solo_create_timing() {
    let url = PostgresCluster::shared()
        .create_database("timing")
        .await
        .unwrap();
    let store: Arc<dyn Store> = Arc::new(PostgresStore::open(&url).await.unwrap());
    seeded(&store).await;
    for n in 0..1000 {
        store
            .register_host(&HostRegistrationRecord {
                name: format!("h-{n}"),
                zone: "z".into(),
                driver: "sim".into(),
                vcpus: 64,
                memory_mb: 262144,
                gpus: vec![],
                accelerator: None,
                agent_version: None,
                underlay: None,
                now: chrono::Utc::now(),
            })
            .await
            .unwrap();
    }
    let mut times = Vec::new();
    for i in 0..300 {
        let t = std::time::Instant::now();
        create(&store, instance(&format!("vm-{i}"), 1, &[]))
            .await
            .unwrap();
        times.push(t.elapsed());
    }
    times.sort();
    eprintln!("solo create p50 {:?} p99 {:?}", times[150], times[297]);
}
