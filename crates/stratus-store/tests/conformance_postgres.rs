//! The store conformance suite on the PostgreSQL backend, against a real server started for
//! the test (see `stratus_store::testing`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use stratus_store::conformance::{create, instance, seeded};
use stratus_store::testing::PostgresCluster;
use stratus_store::{PostgresStore, Store};

/// The URL of a new database `name` on the test binary's one PostgreSQL server.
async fn database(name: &str) -> String {
    PostgresCluster::shared()
        .create_database(name)
        .await
        .unwrap()
}

/// A store on a new database of the test binary's one PostgreSQL server.
async fn fresh() -> (Arc<dyn Store>, ()) {
    static DATABASES: AtomicUsize = AtomicUsize::new(0);
    let n = DATABASES.fetch_add(1, Ordering::SeqCst);
    let url = database(&format!("conformance_{n}")).await;
    (Arc::new(PostgresStore::open(&url).await.unwrap()), ())
}

stratus_store::conformance_tests!(fresh);

/// Two stores on one database stand for two replicas: what one writes wakes the other.
#[tokio::test]
async fn another_replicas_writes_wake_this_one() {
    use stratus_store::Changes;
    let url = database("replicas").await;
    let this = PostgresStore::open(&url).await.unwrap();
    let other: Arc<dyn Store> = Arc::new(PostgresStore::open(&url).await.unwrap());
    seeded(&other).await;

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
    create(&other, instance("vm-1", 0, &[])).await.unwrap();
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

/// Console output of an instance whose row another replica is deleting fails its foreign key
/// when that deletion commits. It is written in a group with other jobs, which must stand:
/// here creates queued behind a group held up on the zone's lock, so that they and the append
/// go in the next group together.
#[tokio::test]
async fn a_console_append_racing_a_deletion_fails_alone() {
    use sqlx::Connection;
    let url = database("console_race").await;
    let store: Arc<dyn Store> = Arc::new(PostgresStore::open(&url).await.unwrap());
    seeded(&store).await;
    let doomed = create(&store, instance("doomed", 0, &[])).await.unwrap();
    let mut zone = sqlx::PgConnection::connect(&url).await.unwrap();
    let mut deleting = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut zone).await.unwrap();
    sqlx::query("SELECT zone FROM placement_zones FOR UPDATE")
        .execute(&mut zone)
        .await
        .unwrap();
    sqlx::query("BEGIN").execute(&mut deleting).await.unwrap();
    sqlx::query("DELETE FROM instances WHERE uid = $1")
        .bind(doomed.uid)
        .execute(&mut deleting)
        .await
        .unwrap();
    let spawn_create = |id: String| {
        let store = store.clone();
        tokio::spawn(async move { create(&store, instance(&id, 0, &[])).await })
    };
    let held = spawn_create("held".into());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let append = {
        let store = store.clone();
        tokio::spawn(async move { store.append_console(doomed.uid, 0, b"bye", 1024).await })
    };
    let creates: Vec<_> = (0..10).map(|n| spawn_create(format!("vm-{n}"))).collect();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    sqlx::query("COMMIT").execute(&mut zone).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    sqlx::query("COMMIT").execute(&mut deleting).await.unwrap();
    held.await.unwrap().unwrap();
    assert!(
        append.await.unwrap().is_err(),
        "the append lost its instance"
    );
    for create in creates {
        create
            .await
            .unwrap()
            .expect("a create written with the failed append stands");
    }
}

/// Two stores on one database stand for two replicas placing into one zone at once: their
/// groups queue on the zone's lock, so together they fill its host exactly, never past it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_placing_in_one_zone_at_once_never_overcommit() {
    let url = database("two_placers").await;
    let a: Arc<dyn Store> = Arc::new(PostgresStore::open(&url).await.unwrap());
    let b: Arc<dyn Store> = Arc::new(PostgresStore::open(&url).await.unwrap());
    seeded(&a).await;
    let attempts: Vec<_> = (0..40)
        .map(|n| {
            let store = if n % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(
                async move { create(&store, instance(&format!("vm-{n:02}"), 1, &[])).await },
            )
        })
        .collect();
    let mut placed = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(_) => placed += 1,
            Err(stratus_core::Error::ResourceExhausted(_)) => {}
            Err(other) => panic!("a create failed with {other:?}"),
        }
    }
    assert_eq!(
        placed, 8,
        "an 8-vCPU host takes exactly eight 1-vCPU instances"
    );
    let usage = b.host_usage().await.unwrap();
    assert_eq!(usage.len(), 1);
    assert_eq!((usage[0].used_vcpus, usage[0].instances), (8, 8));
}
