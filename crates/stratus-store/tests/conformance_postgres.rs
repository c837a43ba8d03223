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

/// A group of writes locks the zones its creates place in before any instance row, as a
/// deletion does, so a group that writes an instance and places in its zone never waits on a
/// deletion of that instance that waits on it. Here another transaction holds the zone (as a
/// deletion does first) and then writes the instance (as the deletion then does), while a
/// group that updates the instance and places in the zone waits for the zone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_takes_its_zones_before_the_instances_it_writes() {
    use sqlx::Connection;
    let url = database("lock_order").await;
    let store: Arc<dyn Store> = Arc::new(PostgresStore::open(&url).await.unwrap());
    seeded(&store).await;
    let written = create(&store, instance("written", 1, &[])).await.unwrap();
    let mut organization = sqlx::PgConnection::connect(&url).await.unwrap();
    let mut deleting = sqlx::PgConnection::connect(&url).await.unwrap();
    // The writer is held up on a group placing elsewhere, so the next two jobs go together.
    sqlx::query("BEGIN")
        .execute(&mut organization)
        .await
        .unwrap();
    sqlx::query("SELECT id FROM organizations FOR UPDATE")
        .execute(&mut organization)
        .await
        .unwrap();
    let elsewhere = {
        let store = store.clone();
        let mut held = instance("elsewhere", 1, &[]);
        held.zone = "z2".into();
        tokio::spawn(async move { create(&store, held).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // Were there a deadlock, this side would find it first, and fail.
    sqlx::query("SET deadlock_timeout = '50ms'")
        .execute(&mut deleting)
        .await
        .unwrap();
    sqlx::query("BEGIN").execute(&mut deleting).await.unwrap();
    sqlx::query("SELECT zone FROM placement_zones WHERE zone = 'z' FOR UPDATE")
        .execute(&mut deleting)
        .await
        .unwrap();
    let update = {
        let store = store.clone();
        let mut relabelled = written.clone();
        relabelled.spec.description = "relabelled".into();
        tokio::spawn(async move { store.update_instance(&relabelled).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let placed = {
        let store = store.clone();
        tokio::spawn(async move { create(&store, instance("placed", 1, &[])).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    sqlx::query("COMMIT")
        .execute(&mut organization)
        .await
        .unwrap();
    let refused = elsewhere.await.unwrap().unwrap_err();
    assert!(
        matches!(refused, stratus_core::Error::ResourceExhausted(_)),
        "{refused:?}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // The group now waits for the zone, holding no instance row.
    sqlx::query("UPDATE instances SET status_message = 'deleting' WHERE uid = $1")
        .bind(written.uid)
        .execute(&mut deleting)
        .await
        .expect("the instance's row was free: no deadlock");
    sqlx::query("COMMIT").execute(&mut deleting).await.unwrap();
    let updated = update
        .await
        .unwrap()
        .unwrap()
        .expect("the update kept its generation");
    assert_eq!(updated.spec.description, "relabelled");
    assert!(placed.await.unwrap().unwrap().host_id.is_some());
}

/// A region filling up fast has its instances table analyzed by the store once it holds
/// 1,000 instances, not whenever autovacuum comes round (off here): PostgreSQL plans again,
/// from the table as it is, what it planned while the table was nearly empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_filling_up_fast_is_analyzed_by_the_store() {
    use sqlx::Connection;
    let url = database("statistics").await;
    let store: Arc<dyn Store> = Arc::new(PostgresStore::open(&url).await.unwrap());
    seeded(&store).await;
    let mut host = stratus_store::conformance::sim_host("big", 4096);
    host.memory_mb = 1 << 30;
    store.register_host(&host).await.unwrap();
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query("ALTER TABLE instances SET (autovacuum_enabled = false)")
        .execute(&mut admin)
        .await
        .unwrap();
    let rows_planned_from = async |admin: &mut sqlx::PgConnection| -> f32 {
        sqlx::query_scalar("SELECT reltuples FROM pg_class WHERE relname = 'instances'")
            .fetch_one(admin)
            .await
            .unwrap()
    };
    let created_in_waves = async |from: usize, to: usize| {
        for wave in (from..to).step_by(50) {
            let creates: Vec<_> = (wave..(wave + 50).min(to))
                .map(|n| {
                    let store = store.clone();
                    tokio::spawn(async move {
                        create(&store, instance(&format!("vm-{n:04}"), 0, &[])).await
                    })
                })
                .collect();
            for created in creates {
                created.await.unwrap().unwrap();
            }
        }
    };
    created_in_waves(0, 990).await;
    assert!(
        rows_planned_from(&mut admin).await < 0.0,
        "no statistics before 1,000 creates"
    );
    created_in_waves(990, 1050).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let rows = rows_planned_from(&mut admin).await;
        if rows >= 1000.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the instances table was not analyzed after 1,050 creates (planned from {rows} rows)"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
