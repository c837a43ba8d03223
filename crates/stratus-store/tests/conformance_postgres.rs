//! The store conformance suite on the PostgreSQL backend, against a real server started for
//! the test (see `stratus_store::testing`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use stratus_store::testing::PostgresCluster;
use stratus_store::{PostgresStore, Store};

/// A store on a new database of the test binary's one PostgreSQL server.
async fn fresh() -> (Arc<dyn Store>, ()) {
    static DATABASES: AtomicUsize = AtomicUsize::new(0);
    let n = DATABASES.fetch_add(1, Ordering::SeqCst);
    let url = PostgresCluster::shared()
        .create_database(&format!("conformance_{n}"))
        .await
        .unwrap();
    (Arc::new(PostgresStore::open(&url).await.unwrap()), ())
}

stratus_store::conformance_tests!(fresh);

/// Two stores on one database stand for two replicas: what one writes wakes the other.
#[tokio::test]
async fn another_replicas_writes_wake_this_one() {
    use chrono::Utc;
    use stratus_core::placement::Demand;
    use stratus_store::{
        Changes, HostRegistrationRecord, InstanceRecord, InstanceSpec, OrganizationRecord,
        ProjectRecord,
    };
    let url = PostgresCluster::shared()
        .create_database("replicas")
        .await
        .unwrap();
    let this = PostgresStore::open(&url).await.unwrap();
    let other = PostgresStore::open(&url).await.unwrap();
    let now = Utc::now();
    other
        .create_organization(&OrganizationRecord {
            uid: uuid::Uuid::new_v4(),
            id: "o".into(),
            display_name: String::new(),
            description: String::new(),
            generation: 1,
            created_at: now,
            updated_at: now,
        })
        .await
        .unwrap();
    other
        .create_project(&ProjectRecord {
            uid: uuid::Uuid::new_v4(),
            id: "p".into(),
            organization_id: "o".into(),
            display_name: String::new(),
            description: String::new(),
            generation: 1,
            created_at: now,
            updated_at: now,
        })
        .await
        .unwrap();
    other
        .register_host(&HostRegistrationRecord {
            name: "h".into(),
            zone: "z".into(),
            driver: "sim".into(),
            vcpus: 64,
            memory_mb: 65536,
            gpus: vec![],
            accelerator: None,
            agent_version: None,
            underlay: None,
            now,
        })
        .await
        .unwrap();

    let changes = Changes::new();
    let started = changes.revision();
    this.follow_changes(changes.clone());
    // The listener announces itself with one bump once it listens (it bumps again after every
    // reconnection, since announcements may have been missed meanwhile).
    let listening = changes
        .wait_past(started, std::time::Duration::from_secs(20))
        .await;
    assert!(listening > started, "the listener never started");
    let mut feed = this.instance_changes();
    let n = 1;
    {
        let instance = InstanceRecord {
            uid: uuid::Uuid::new_v4(),
            project: "p".into(),
            id: format!("vm-{n}"),
            zone: "z".into(),
            host_id: None,
            spec: InstanceSpec {
                display_name: String::new(),
                description: String::new(),
                labels: Default::default(),
                instance_type: "t".into(),
                metadata: vec![],
                hostname: format!("vm-{n}"),
                disks: vec![],
                nics: vec![],
                gpus: vec![],
            },
            vcpus: 1,
            memory_mb: 64,
            gpu_type: None,
            gpu_count: 0,
            desired: stratus_types::DesiredState::Running,
            status: stratus_types::InstanceStatus::Provisioning,
            status_message: None,
            status_changed_at: now,
            generation: 1,
            created_at: now,
            updated_at: now,
            traceparent: None,
            request_id: None,
        };
        let demand = Demand {
            vcpus: 1,
            memory_mb: 64,
            gpu: None,
            baremetal: false,
        };
        other
            .create_instance(
                &instance,
                &demand,
                now - chrono::Duration::seconds(60),
                &stratus_store::Admission {
                    organization: "o",
                    defaults: &Default::default(),
                },
            )
            .await
            .unwrap();
    }
    // The create reaches this store's change feed with its key (the subscribers read the row
    // and wake whom it concerns).
    let heard = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        loop {
            match feed.recv().await.unwrap() {
                stratus_store::InstanceChange::Changed {
                    kind, project, id, ..
                } if project == "p" && id == "vm-1" => return kind,
                _ => continue,
            }
        }
    })
    .await
    .expect("the other store's create was not heard");
    assert_eq!(heard, stratus_store::ChangeKind::Created);
}
