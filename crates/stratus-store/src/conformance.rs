//! The conformance suite every [`Store`] backend must pass.
//!
//! Each check takes a fresh, empty, migrated store. A backend's test file expands
//! [`conformance_tests!`](crate::conformance_tests) with a function that makes one: every check
//! becomes a test of its own, so the first failure does not hide the rest, and the same
//! assertions hold for every backend.

use crate::records::*;
use crate::{Admission, PageRequest, Store};
use chrono::{Duration, Utc};
use std::sync::Arc;
use stratus_core::Error;
use stratus_core::placement::Demand;
use stratus_core::quota::Limits;
use stratus_core::selector::LabelSelector;
use stratus_types::{DesiredState, InstanceStatus, Labels};
use uuid::Uuid;

/// One `#[tokio::test]` per check of this suite. `$fresh` is an async function returning a
/// fresh store and a guard that keeps what the store needs (its directory, its database)
/// until the test ends.
#[macro_export]
macro_rules! conformance_tests {
    ($fresh:path) => {
        $crate::conformance_tests!(@each $fresh;
            organizations_and_projects,
            placement_respects_capacity,
            duplicate_instance_ids_conflict,
            writes_are_generation_guarded,
            keyset_pages_survive_concurrent_changes,
            offset_pages_count_the_total,
            label_selectors_filter_pages,
            version_pages_name_the_instances_of_pages,
            deletion_needs_the_owners_intent,
            leases_exclude_other_owners_until_expiry,
            console_log_appends_and_trims,
            identity_records_round_trip,
            images_are_upserted_imported_and_guarded,
            concurrent_creates_never_overcommit,
            service_accounts_credentials_and_audit,
            hosts_poll_instances_without_their_metadata,
            quotas_hold_under_concurrent_creates_and_starts,
            cordoned_hosts_take_nothing_new_and_stay_cordoned,
            placement_sees_every_change_to_its_zones_hosts,
            nic_addresses_are_never_handed_out_twice,
            networks_in_use_stay_and_reservations_bind_to_nics,
            servers_are_unique_by_id_and_live_bmc_and_guarded,
            creates_committed_together_keep_their_own_outcomes,
            audit_events_and_heartbeats_written_together_all_land,
            status_reports_written_together_each_keep_their_guard,
            hosts_find_their_instances_by_uid_as_last_written,
            a_nic_is_plumbed_from_its_subnet_and_network_together,
        );
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn snapshots_carry_every_row() {
            let (source, _source) = $fresh().await;
            let (target, _target) = $fresh().await;
            $crate::conformance::snapshots_carry_every_row(source, target).await;
        }
    };
    (@each $fresh:path; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let (store, _guard) = $fresh().await;
                $crate::conformance::$check(store).await;
            }
        )*
    };
}

fn org(id: &str) -> OrganizationRecord {
    let now = Utc::now();
    OrganizationRecord {
        uid: Uuid::new_v4(),
        id: id.into(),
        display_name: id.to_uppercase(),
        description: String::new(),
        generation: 1,
        created_at: now,
        updated_at: now,
    }
}

fn project(id: &str, org: &str) -> ProjectRecord {
    let now = Utc::now();
    ProjectRecord {
        uid: Uuid::new_v4(),
        id: id.into(),
        organization_id: org.into(),
        display_name: String::new(),
        description: String::new(),
        generation: 1,
        created_at: now,
        updated_at: now,
    }
}

/// A store with organization `o`, project `p` and one live host of 8 vCPUs in zone `z`.
pub async fn seeded(store: &Arc<dyn Store>) -> HostRecord {
    store.create_organization(&org("o")).await.unwrap();
    store.create_project(&project("p", "o")).await.unwrap();
    store
        .register_host(&HostRegistrationRecord {
            name: "host-1".into(),
            zone: "z".into(),
            driver: "sim".into(),
            vcpus: 8,
            memory_mb: 8192,
            gpus: vec![("h100".into(), 1)],
            accelerator: None,
            agent_version: None,
            underlay: None,
            now: Utc::now(),
        })
        .await
        .unwrap()
}

/// A simulated host `name` of zone `z` with `vcpus` and 8 GiB, heard from now.
pub fn sim_host(name: &str, vcpus: u32) -> HostRegistrationRecord {
    HostRegistrationRecord {
        name: name.into(),
        zone: "z".into(),
        driver: "sim".into(),
        vcpus,
        memory_mb: 8192,
        gpus: vec![],
        accelerator: None,
        agent_version: None,
        underlay: None,
        now: Utc::now(),
    }
}

/// Instance `id` of project `p` in zone `z`, of `vcpus` (and 512 MiB each) and `labels`.
pub fn instance(id: &str, vcpus: u32, labels: &[(&str, &str)]) -> InstanceRecord {
    let now = Utc::now();
    InstanceRecord {
        uid: Uuid::new_v4(),
        project: "p".into(),
        id: id.into(),
        zone: "z".into(),
        host_id: None,
        spec: InstanceSpec {
            display_name: String::new(),
            description: String::new(),
            labels: Labels::parse(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )
            .unwrap(),
            instance_type: "/v1/regions/r/zones/z/instance-types/t".into(),
            metadata: vec![],
            hostname: id.into(),
            disks: vec![],
            nics: vec![],
            gpus: vec![],
        },
        vcpus,
        memory_mb: 64,
        gpu_type: None,
        gpu_count: 0,
        desired: DesiredState::Running,
        status: InstanceStatus::Provisioning,
        status_message: None,
        status_changed_at: now,
        generation: 1,
        created_at: now,
        updated_at: now,
        traceparent: None,
        request_id: None,
    }
}

/// No region-wide limits.
static NO_LIMITS: Limits = Limits::new();

/// Instances of project `p` belong to organization `o`.
const UNLIMITED: Admission<'static> = Admission {
    organization: "o",
    defaults: &NO_LIMITS,
};

fn demand(vcpus: u32) -> Demand {
    Demand {
        vcpus,
        memory_mb: 64,
        gpu: None,
        baremetal: false,
    }
}

/// Creates `i` in `store` (see [`seeded`]), under no quota.
pub async fn create(store: &Arc<dyn Store>, i: InstanceRecord) -> Result<InstanceRecord, Error> {
    let d = demand(i.vcpus);
    store
        .create_instance(&i, &d, Utc::now() - Duration::seconds(60), &UNLIMITED)
        .await
}

fn page(limit: u32) -> PageRequest {
    PageRequest {
        limit,
        ..Default::default()
    }
}

pub async fn organizations_and_projects(store: Arc<dyn Store>) {
    store.create_organization(&org("acme")).await.unwrap();
    assert!(matches!(
        store.create_organization(&org("acme")).await,
        Err(Error::AlreadyExists(_))
    ));
    let err = store
        .create_project(&project("web", "nope"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument { fields, .. } if fields[0].field == "organizationId"),
        "{err:?}"
    );
    store.create_project(&project("web", "acme")).await.unwrap();
    assert!(matches!(
        store.delete_organization("acme").await,
        Err(Error::FailedPrecondition(_))
    ));
    let mut p = store.get_project("web").await.unwrap().unwrap();
    p.description = "front end".into();
    let stored = store.update_project(&p).await.unwrap().unwrap();
    assert_eq!(stored.generation, 2);
    assert_eq!(stored.description, "front end");
    assert!(
        store.update_project(&p).await.unwrap().is_none(),
        "a stale generation must not write"
    );
    let listed = store.list_projects(Some("acme"), &page(10)).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    assert!(
        store
            .list_projects(Some("other"), &page(10))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(store.delete_project("web").await.unwrap());
    assert!(!store.delete_project("web").await.unwrap());
    assert!(store.delete_organization("acme").await.unwrap());
    assert!(store.get_organization("acme").await.unwrap().is_none());
}

pub async fn placement_respects_capacity(store: Arc<dyn Store>) {
    let host = seeded(&store).await;
    let a = create(&store, instance("a", 6, &[])).await.unwrap();
    assert_eq!(a.host_id, Some(host.id));
    let err = create(&store, instance("b", 4, &[])).await.unwrap_err();
    assert!(
        matches!(&err, Error::ResourceExhausted(m) if m.contains("4 vCPUs") && m.contains("2 vCPUs")),
        "{err:?}"
    );
    create(&store, instance("c", 2, &[])).await.unwrap();
    // A host that stopped reporting takes nothing new.
    let stale = store
        .create_instance(
            &instance("d", 0, &[]),
            &demand(0),
            Utc::now() + Duration::seconds(60),
            &UNLIMITED,
        )
        .await;
    assert!(matches!(stale, Err(Error::ResourceExhausted(_))));
    // GPUs are counted by type.
    let mut g = instance("g", 0, &[]);
    g.gpu_type = Some("h100".into());
    g.gpu_count = 1;
    let gpu_demand = Demand {
        vcpus: 0,
        memory_mb: 0,
        gpu: Some(("h100".into(), 1)),
        baremetal: false,
    };
    let since = Utc::now() - Duration::seconds(60);
    store
        .create_instance(&g, &gpu_demand, since, &UNLIMITED)
        .await
        .unwrap();
    let mut g2 = instance("g2", 0, &[]);
    g2.gpu_type = Some("h100".into());
    g2.gpu_count = 1;
    assert!(matches!(
        store
            .create_instance(&g2, &gpu_demand, since, &UNLIMITED)
            .await,
        Err(Error::ResourceExhausted(_))
    ));
    let usage = store.host_usage().await.unwrap();
    assert_eq!(
        (
            usage[0].used_vcpus,
            usage[0].instances,
            usage[0].used_gpus.clone()
        ),
        (8, 3, vec![("h100".to_owned(), 1)])
    );
    // A deleted instance's cores and GPU go back to its host.
    for id in ["a", "g"] {
        let mut gone = store.get_instance("p", id).await.unwrap().unwrap();
        gone.desired = DesiredState::Deleted;
        let gone = store.update_instance(&gone).await.unwrap().unwrap();
        assert!(store.finalize_instance_deletion(gone.uid).await.unwrap());
    }
    let usage = store.host_usage().await.unwrap();
    assert_eq!((usage[0].used_vcpus, usage[0].instances), (2, 1));
    assert!(usage[0].used_gpus.iter().all(|(_, n)| *n == 0));
    store
        .create_instance(&g2, &gpu_demand, since, &UNLIMITED)
        .await
        .unwrap();
    create(&store, instance("e", 6, &[])).await.unwrap();
    assert!(matches!(
        create(&store, instance("f", 1, &[])).await,
        Err(Error::ResourceExhausted(_))
    ));
}

pub async fn duplicate_instance_ids_conflict(store: Arc<dyn Store>) {
    seeded(&store).await;
    create(&store, instance("web", 1, &[])).await.unwrap();
    assert!(matches!(
        create(&store, instance("web", 1, &[])).await,
        Err(Error::AlreadyExists(_))
    ));
    assert!(matches!(
        store.delete_project("p").await,
        Err(Error::FailedPrecondition(_))
    ));
}

pub async fn writes_are_generation_guarded(store: Arc<dyn Store>) {
    seeded(&store).await;
    let mut a = create(&store, instance("a", 1, &[("tier", "web")]))
        .await
        .unwrap();
    let stale = a.clone();
    a.set_status(InstanceStatus::Staging, Some("starting".into()), Utc::now());
    let stored = store.update_instance(&a).await.unwrap().unwrap();
    assert_eq!(stored.generation, a.generation + 1);
    assert_eq!(stored.status, InstanceStatus::Staging);
    let mut lost = stale;
    lost.set_status(InstanceStatus::Terminated, None, Utc::now());
    assert!(store.update_instance(&lost).await.unwrap().is_none());
    let now = store.get_instance("p", "a").await.unwrap().unwrap();
    assert_eq!(now.status, InstanceStatus::Staging);
    assert_eq!(stored, now, "an update answers the row as it reads back");
    assert_eq!(
        store.get_instance_by_uid(now.uid).await.unwrap().unwrap(),
        now
    );
    let mut reported = now.clone();
    reported.set_status(InstanceStatus::Running, None, Utc::now());
    let stored = store
        .update_instance_status(&reported)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.generation, now.generation + 1);
    assert!(
        store
            .update_instance_status(&reported)
            .await
            .unwrap()
            .is_none(),
        "a status write is generation-guarded too"
    );
    let read = store.get_instance_by_uid(now.uid).await.unwrap().unwrap();
    assert_eq!(read.status, InstanceStatus::Running);
    assert_eq!(
        stored, read,
        "a status write answers the row as it reads back"
    );
}

pub async fn keyset_pages_survive_concurrent_changes(store: Arc<dyn Store>) {
    seeded(&store).await;
    for i in 0..30 {
        create(&store, instance(&format!("i{i:03}"), 0, &[]))
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut seen_total = 0;
    let mut request = page(7);
    let all = LabelSelector::default();
    loop {
        let p = store.list_instances("p", &all, &request).await.unwrap();
        seen.extend(p.items.iter().map(|i| i.id.clone()));
        // Between pages, one instance behind the cursor goes and a new one appears ahead.
        create(&store, instance(&format!("z{:03}", seen.len()), 0, &[]))
            .await
            .unwrap();
        let mut behind = store.get_instance("p", &seen[0]).await.unwrap().unwrap();
        behind.desired = DesiredState::Deleted;
        let behind = store.update_instance(&behind).await.unwrap().unwrap();
        store.finalize_instance_deletion(behind.uid).await.unwrap();
        seen.remove(0);
        seen_total += 1;
        if !p.more {
            break;
        }
        request.after = Some(p.items.last().unwrap().id.clone());
    }
    let originals = seen.iter().filter(|id| id.starts_with('i')).count() + seen_total;
    assert_eq!(originals, 30, "every original instance seen once");
    let mut dedup = seen.clone();
    dedup.dedup();
    assert_eq!(dedup, seen, "no duplicates, in id order");
}

pub async fn offset_pages_count_the_total(store: Arc<dyn Store>) {
    seeded(&store).await;
    for i in 0..12 {
        create(&store, instance(&format!("i{i:02}"), 0, &[]))
            .await
            .unwrap();
    }
    let p = store
        .list_instances(
            "p",
            &LabelSelector::default(),
            &PageRequest {
                offset: Some(10),
                limit: 5,
                with_total: true,
                after: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(p.total, Some(12));
    let ids: Vec<_> = p.items.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["i10", "i11"]);
    assert!(!p.more);
}

pub async fn label_selectors_filter_pages(store: Arc<dyn Store>) {
    seeded(&store).await;
    for i in 0..20 {
        let tier = if i % 4 == 0 { "db" } else { "web" };
        create(&store, instance(&format!("i{i:02}"), 0, &[("tier", tier)]))
            .await
            .unwrap();
    }
    let db = LabelSelector::parse("tier=db").unwrap();
    let first = store.list_instances("p", &db, &page(3)).await.unwrap();
    assert_eq!(first.items.len(), 3);
    assert!(first.more);
    let rest = store
        .list_instances(
            "p",
            &db,
            &PageRequest {
                after: Some(first.items[2].id.clone()),
                limit: 3,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let ids: Vec<_> = rest.items.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["i12", "i16"]);
    assert!(!rest.more);

    // The selector decides, not the stored text: `_` is no wildcard, and a description that
    // spells a label out carries none.
    let mut lookalike = instance("z-look", 0, &[("appXname", "xAy")]);
    lookalike.spec.description = r#""tier":"db" "app_name":"x_y""#.into();
    create(&store, lookalike).await.unwrap();
    create(&store, instance("z-real", 0, &[("app_name", "x_y")]))
        .await
        .unwrap();
    let exact = LabelSelector::parse("app_name=x_y").unwrap();
    let found = store.list_instances("p", &exact, &page(10)).await.unwrap();
    let ids: Vec<_> = found.items.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["z-real"]);
    let all_db = store.list_instances("p", &db, &page(10)).await.unwrap();
    let ids: Vec<_> = all_db.items.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["i00", "i04", "i08", "i12", "i16"]);

    // A label changed by a write is what selects the instance from then on.
    let mut moved = store.get_instance("p", "i04").await.unwrap().unwrap();
    moved.spec.labels = Labels::parse([("tier".to_owned(), "cache".to_owned())].into()).unwrap();
    store.update_instance(&moved).await.unwrap().unwrap();
    let all_db = store.list_instances("p", &db, &page(10)).await.unwrap();
    let ids: Vec<_> = all_db.items.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["i00", "i08", "i12", "i16"]);
    // As many labels as an instance may have, each as long as it may be (about 20 kB of
    // labels): created, selected and relabelled like any other.
    let mut large = instance("z-large", 0, &[]);
    // Values that do not compress (a database may compress what it keeps).
    let value = |i: usize| -> String {
        let mut x = 0x9e37_79b9_7f4a_7c15_u64 ^ i as u64;
        (0..255)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[(x % 36) as usize])
            })
            .collect()
    };
    let many: std::collections::BTreeMap<String, String> =
        (0..64).map(|i| (format!("key-{i:02}"), value(i))).collect();
    large.spec.labels = Labels::parse(many).unwrap();
    let large = create(&store, large).await.unwrap();
    let selected = LabelSelector::parse(&format!("key-07={}", value(7))).unwrap();
    let found = store
        .list_instances("p", &selected, &page(10))
        .await
        .unwrap();
    let ids: Vec<_> = found.items.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["z-large"]);
    store.update_instance(&large).await.unwrap().unwrap();
    let cache = LabelSelector::parse("tier=cache").unwrap();
    let counted = store
        .list_instances(
            "p",
            &cache,
            &PageRequest {
                offset: Some(0),
                limit: 5,
                with_total: true,
                after: None,
            },
        )
        .await
        .unwrap();
    let ids: Vec<_> = counted.items.iter().map(|i| i.id.as_str()).collect();
    assert_eq!((ids, counted.total), (vec!["i04"], Some(1)));
}

pub async fn version_pages_name_the_instances_of_pages(store: Arc<dyn Store>) {
    seeded(&store).await;
    for i in 0..20 {
        let tier = if i % 3 == 0 { "db" } else { "web" };
        create(&store, instance(&format!("i{i:02}"), 0, &[("tier", tier)]))
            .await
            .unwrap();
    }
    // Some are written again (a later generation, new labels), one goes.
    for id in ["i03", "i04", "i05"] {
        let mut written = store.get_instance("p", id).await.unwrap().unwrap();
        written.spec.labels =
            Labels::parse([("tier".to_owned(), "cache".to_owned())].into()).unwrap();
        store.update_instance(&written).await.unwrap().unwrap();
    }
    let mut gone = store.get_instance("p", "i06").await.unwrap().unwrap();
    gone.desired = DesiredState::Deleted;
    let gone = store.update_instance(&gone).await.unwrap().unwrap();
    store.finalize_instance_deletion(gone.uid).await.unwrap();

    let requests = [
        page(50),
        page(4),
        PageRequest {
            after: Some("i07".into()),
            limit: 5,
            ..Default::default()
        },
        PageRequest {
            offset: Some(2),
            limit: 3,
            with_total: true,
            after: None,
        },
    ];
    for selector in ["", "tier=db", "tier!=db", "tier=db,tier", "!tier"] {
        let selector = match selector {
            "" => LabelSelector::default(),
            text => LabelSelector::parse(text).unwrap(),
        };
        for request in &requests {
            let records = store.list_instances("p", &selector, request).await.unwrap();
            let versions = store
                .list_instance_versions("p", &selector, request)
                .await
                .unwrap();
            let named: Vec<_> = records
                .items
                .iter()
                .map(|r| (r.uid, r.id.clone(), r.generation, r.spec.labels.clone()))
                .collect();
            let listed: Vec<_> = versions
                .items
                .iter()
                .map(|v| (v.uid, v.id.clone(), v.generation, v.labels.clone()))
                .collect();
            assert_eq!(listed, named, "{selector:?} {request:?}");
            assert_eq!(
                (versions.more, versions.total),
                (records.more, records.total)
            );
            // The instances the versions name, read by uid, are the page's records; a uid that
            // names nothing is left out.
            let mut uids: Vec<Uuid> = versions.items.iter().map(|v| v.uid).collect();
            uids.push(gone.uid);
            uids.push(Uuid::new_v4());
            let mut read = store.get_instances_by_uid(&uids).await.unwrap();
            read.sort_by(|a, b| a.id.cmp(&b.id));
            assert_eq!(read, records.items);
        }
    }
    let selected = store
        .list_instance_versions("p", &LabelSelector::parse("tier=cache").unwrap(), &page(50))
        .await
        .unwrap();
    let ids: Vec<_> = selected.items.iter().map(|v| v.id.as_str()).collect();
    assert_eq!(ids, ["i03", "i04", "i05"]);
    assert!(selected.items.iter().all(|v| v.generation == 2));
}

pub async fn deletion_needs_the_owners_intent(store: Arc<dyn Store>) {
    seeded(&store).await;
    let mut a = create(&store, instance("a", 1, &[])).await.unwrap();
    assert!(!store.finalize_instance_deletion(a.uid).await.unwrap());
    store
        .append_console(a.uid, 0, b"hello", 1024)
        .await
        .unwrap();
    a.desired = DesiredState::Deleted;
    let a = store.update_instance(&a).await.unwrap().unwrap();
    assert!(store.finalize_instance_deletion(a.uid).await.unwrap());
    assert!(store.get_instance("p", "a").await.unwrap().is_none());
    assert_eq!(store.read_console(a.uid, 0, 100).await.unwrap().1, b"");
    // Its capacity is free again.
    create(&store, instance("b", 8, &[])).await.unwrap();
}

pub async fn leases_exclude_other_owners_until_expiry(store: Arc<dyn Store>) {
    seeded(&store).await;
    let a = create(&store, instance("a", 1, &[])).await.unwrap();
    let now = Utc::now();
    let until = now + Duration::seconds(30);
    assert!(
        store
            .claim_instance_lease(a.uid, "r1", now, until)
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_instance_lease(a.uid, "r2", now, until)
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_instance_lease(a.uid, "r1", now, until)
            .await
            .unwrap()
    );
    let later = now + Duration::seconds(31);
    assert!(
        store
            .claim_instance_lease(a.uid, "r2", later, later + Duration::seconds(30))
            .await
            .unwrap(),
        "an expired lease can be taken over"
    );
    store.release_instance_lease(a.uid, "r2").await.unwrap();
    assert!(
        store
            .claim_instance_lease(a.uid, "r1", later, until)
            .await
            .unwrap()
    );
}

pub async fn console_log_appends_and_trims(store: Arc<dyn Store>) {
    seeded(&store).await;
    let a = create(&store, instance("a", 1, &[])).await.unwrap();
    assert_eq!(
        store
            .append_console(a.uid, 0, b"0123456789", 8)
            .await
            .unwrap(),
        10
    );
    assert_eq!(
        store.append_console(a.uid, 4, b"dup", 8).await.unwrap(),
        10,
        "an append at the wrong offset writes nothing"
    );
    assert_eq!(store.append_console(a.uid, 10, b"ab", 8).await.unwrap(), 12);
    let (start, bytes, next) = store.read_console(a.uid, 0, 100).await.unwrap();
    assert_eq!((start, bytes.as_slice(), next), (4, &b"456789ab"[..], 12));
    let (start, bytes, next) = store.read_console(a.uid, 10, 1).await.unwrap();
    assert_eq!((start, bytes.as_slice(), next), (10, &b"a"[..], 11));
    let gone = Uuid::new_v4();
    assert_eq!(store.append_console(gone, 0, b"x", 8).await.unwrap(), 0);
    // Appends racing from one offset (written together, some of them): one lands, and each
    // is told where the log ends.
    let racing: Vec<_> = (0..10)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                let chunk = format!("<{n}>");
                store.append_console(a.uid, 12, chunk.as_bytes(), 64).await
            })
        })
        .collect();
    for append in racing {
        assert_eq!(append.await.unwrap().unwrap(), 15, "each told the end");
    }
    let (start, bytes, next) = store.read_console(a.uid, 12, 100).await.unwrap();
    assert_eq!((start, bytes.len(), next), (12, 3, 15), "one append landed");
}

pub async fn identity_records_round_trip(store: Arc<dyn Store>) {
    assert_eq!(store.setting_or_init("k", "first").await.unwrap(), "first");
    assert_eq!(store.setting_or_init("k", "second").await.unwrap(), "first");
    assert_eq!(
        store.get_setting("k").await.unwrap().as_deref(),
        Some("first")
    );
    assert_eq!(store.get_setting("nope").await.unwrap(), None);
    let key = |kid: &str| SigningKeyRecord {
        kid: kid.into(),
        algorithm: "EdDSA".into(),
        private_key: vec![1, 2, 3],
        public_key: vec![4, 5],
        created_at: Utc::now(),
    };
    let keys = store.init_signing_key(&key("one")).await.unwrap();
    assert_eq!(keys.len(), 1);
    let keys = store.init_signing_key(&key("two")).await.unwrap();
    assert_eq!(keys[0].kid, "one", "a second start keeps the first key");
    let api_key = ApiKeyRecord {
        uid: Uuid::new_v4(),
        id: "admin".into(),
        secret_hash: "abc".into(),
        organization_id: "o".into(),
        scope: "organization".into(),
        scope_id: "o".into(),
        roles: vec!["owner".into()],
        created_by: "bootstrap".into(),
        display_name: "admin".into(),
        created_at: Utc::now(),
        last_used_at: None,
        status: "active".into(),
        previous_secret_hash: None,
        previous_secret_expires_at: None,
        last_rotated_at: None,
    };
    store.create_api_key(&api_key).await.unwrap();
    assert!(matches!(
        store.create_api_key(&api_key).await,
        Err(Error::AlreadyExists(_))
    ));
    let found = store.find_api_key_by_hash("abc").await.unwrap().unwrap();
    assert_eq!(found.roles, ["owner"]);
    store.touch_api_key(found.uid, Utc::now()).await.unwrap();
    assert!(
        store
            .find_api_key_by_hash("abc")
            .await
            .unwrap()
            .unwrap()
            .last_used_at
            .is_some()
    );
    assert!(store.find_api_key_by_hash("nope").await.unwrap().is_none());

    // Rotation keeps the previous secret findable; listing, renaming, deleting.
    let mut rotated = found.clone();
    rotated.secret_hash = "def".into();
    rotated.previous_secret_hash = Some("abc".into());
    rotated.previous_secret_expires_at = Some(Utc::now() + Duration::seconds(60));
    rotated.last_rotated_at = Some(Utc::now());
    rotated.display_name = "renamed".into();
    let stored = store.update_api_key(&rotated).await.unwrap().unwrap();
    assert_eq!(stored.display_name, "renamed");
    for hash in ["abc", "def"] {
        let by_hash = store.find_api_key_by_hash(hash).await.unwrap().unwrap();
        assert_eq!(by_hash.id, "admin", "found by the {hash} secret");
    }
    let mut other = api_key.clone();
    other.uid = Uuid::new_v4();
    other.id = "second".into();
    other.secret_hash = "ghi".into();
    other.created_by = "someone-else".into();
    store.create_api_key(&other).await.unwrap();
    let mine = store
        .list_api_keys(Some("o"), Some("bootstrap"), &page(10))
        .await
        .unwrap();
    assert_eq!(mine.items.len(), 1);
    assert_eq!(mine.items[0].id, "admin");
    let all = store
        .list_api_keys(Some("o"), None, &page(10))
        .await
        .unwrap();
    assert_eq!(all.items.len(), 2);
    assert!(store.delete_api_key("second").await.unwrap());
    assert!(!store.delete_api_key("second").await.unwrap());
    assert!(store.get_api_key("second").await.unwrap().is_none());
    assert_eq!(
        store
            .get_api_key("admin")
            .await
            .unwrap()
            .unwrap()
            .secret_hash,
        "def"
    );

    // Revoked tokens.
    let revoked = RevokedTokenRecord {
        jti: "jti-1".into(),
        expires_at: Utc::now() + Duration::seconds(900),
    };
    assert!(!store.is_token_revoked("jti-1").await.unwrap());
    store.revoke_token(&revoked).await.unwrap();
    store.revoke_token(&revoked).await.unwrap();
    assert!(store.is_token_revoked("jti-1").await.unwrap());
    assert!(!store.is_token_revoked("jti-2").await.unwrap());
}

pub async fn images_are_upserted_imported_and_guarded(store: Arc<dyn Store>) {
    use stratus_types::{ImageFormat, ImageStatus};
    seeded(&store).await;
    let now = Utc::now();
    let mut image = ImageRecord {
        uid: Uuid::new_v4(),
        id: "debian".into(),
        display_name: "Debian".into(),
        description: String::new(),
        os: "debian".into(),
        format: ImageFormat::Qcow2,
        size_bytes: 10,
        min_disk_gb: 2,
        status: ImageStatus::Ready,
        status_message: None,
        source: None,
        sha256: None,
        file: Some("/a".into()),
        bytes_done: 0,
        generation: 1,
        created_at: now,
        updated_at: now,
    };
    let first = store.upsert_image(&image).await.unwrap();
    image.file = Some("/b".into());
    image.uid = Uuid::new_v4();
    let second = store.upsert_image(&image).await.unwrap();
    assert_eq!(second.uid, first.uid, "an upsert keeps the identity");
    assert_eq!(second.file.as_deref(), Some("/b"));
    assert!(matches!(
        store.create_image(&image).await,
        Err(Error::AlreadyExists(_))
    ));
    let mut importing = second.clone();
    importing.status = ImageStatus::Importing;
    importing.bytes_done = 5;
    let stored = store.update_image(&importing).await.unwrap().unwrap();
    assert_eq!(
        (stored.status, stored.bytes_done),
        (ImageStatus::Importing, 5)
    );
    assert!(
        store.update_image(&importing).await.unwrap().is_none(),
        "stale generation"
    );
    assert_eq!(store.list_images(&page(10)).await.unwrap().items.len(), 1);

    let link = "/v1/regions/r/compute/images/debian";
    let mut user = instance("user", 0, &[]);
    user.spec.disks = vec![stratus_types::Disk {
        size_gb: Some(2),
        interface: None,
        source: Some(link.into()),
        boot: true,
        disk_type: None,
        mode: Default::default(),
    }];
    let user = create(&store, user).await.unwrap();

    // One importer at a time: the lease excludes others until it expires.
    let now = Utc::now();
    let later = now + Duration::seconds(30);
    assert!(
        store
            .claim_image_lease("debian", "replica-a", now, later)
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_image_lease("debian", "replica-b", now, later)
            .await
            .unwrap(),
        "another replica waits"
    );
    assert!(
        store
            .claim_image_lease("debian", "replica-b", later + Duration::seconds(1), later)
            .await
            .unwrap(),
        "an expired lease is taken over"
    );
    store
        .release_image_lease("debian", "replica-b")
        .await
        .unwrap();
    assert!(
        store
            .claim_image_lease("debian", "replica-a", now, later)
            .await
            .unwrap(),
        "a released lease is free"
    );
    assert!(matches!(
        store.delete_image("debian", link).await,
        Err(Error::FailedPrecondition(_))
    ));
    let mut gone = user;
    gone.desired = DesiredState::Deleted;
    let gone = store.update_instance(&gone).await.unwrap().unwrap();
    store.finalize_instance_deletion(gone.uid).await.unwrap();
    assert!(store.delete_image("debian", link).await.unwrap());
    assert!(store.get_image("debian").await.unwrap().is_none());
}

pub async fn concurrent_creates_never_overcommit(store: Arc<dyn Store>) {
    seeded(&store).await;
    let attempts = (0..20).map(|n| {
        let store = store.clone();
        tokio::spawn(async move { create(&store, instance(&format!("vm-{n:02}"), 1, &[])).await })
    });
    let mut placed = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(_) => placed += 1,
            Err(Error::ResourceExhausted(_)) => {}
            Err(other) => panic!("a concurrent create failed with {other:?}"),
        }
    }
    assert_eq!(
        placed, 8,
        "an 8-vCPU host takes exactly eight 1-vCPU instances"
    );
    assert_eq!(store.count_instances().await.unwrap(), 8);
}

/// Creates that arrive together are committed together, but each gets its own answer: a
/// taken id fails alone and takes nothing of the others with it.
pub async fn creates_committed_together_keep_their_own_outcomes(store: Arc<dyn Store>) {
    seeded(&store).await;
    let attempts: Vec<_> = (0..30)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                create_with_nics(&store, &format!("vm-{:02}", n % 20), vec![]).await
            })
        })
        .collect();
    let (mut created, mut taken) = (0, 0);
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(instance) => {
                assert!(instance.host_id.is_some());
                let read = store.get_instance_by_uid(instance.uid).await.unwrap();
                assert_eq!(
                    Some(instance),
                    read,
                    "a create answers its row as it reads back"
                );
                created += 1;
            }
            Err(Error::AlreadyExists(_)) => taken += 1,
            Err(other) => panic!("a create failed with {other:?}"),
        }
    }
    assert_eq!((created, taken), (20, 10));
    assert_eq!(store.count_instances().await.unwrap(), 20);
}

/// Audit events and heartbeats queued at once are written a few statements for all, beside
/// creates of which some are refused (a taken id undoes the group, which runs again job by
/// job): every event lands, every host is marked heard, and a heartbeat older than the one
/// stored does not move it back.
pub async fn audit_events_and_heartbeats_written_together_all_land(store: Arc<dyn Store>) {
    let first = seeded(&store).await;
    let mut hosts = vec![first];
    for name in ["host-2", "host-3"] {
        let registered = store.register_host(&sim_host(name, 8)).await.unwrap();
        hosts.push(registered);
    }
    // Each host is heard from at its own times; the latest of each must stand.
    let base = Utc::now();
    let mut jobs = Vec::new();
    for n in 0..150 {
        let store = store.clone();
        let host = hosts[n % 3].id;
        let at = base + Duration::seconds(60 * ((n % 3) as i64 + 1) + (n / 3) as i64 % 7);
        jobs.push(tokio::spawn(async move {
            store
                .record_audit_event(&audit_event(n as u32, "o"))
                .await?;
            store.touch_host(host, at).await?;
            if n % 5 == 0 {
                create_with_nics(&store, &format!("vm-{:02}", n % 20), vec![]).await?;
            }
            Ok::<_, Error>(())
        }));
    }
    let mut taken = 0;
    for job in jobs {
        match job.await.unwrap() {
            Ok(()) => {}
            Err(Error::AlreadyExists(_)) => taken += 1,
            Err(other) => panic!("a write failed with {other:?}"),
        }
    }
    assert_eq!(taken, 26, "30 creates of 4 ids: the first of each stands");
    let events = store
        .list_audit_events(Some("o"), &page(200))
        .await
        .unwrap();
    let mut requests: Vec<String> = events.items.iter().map(|e| e.request_id.clone()).collect();
    requests.sort();
    let mut expected: Vec<String> = (0..150).map(|n| format!("req-{n}")).collect();
    expected.sort();
    assert_eq!(requests, expected, "each event as recorded");
    let latest: Vec<i64> = (0..3)
        .map(|h| (base + Duration::seconds(60 * (h + 1) + 6)).timestamp_millis())
        .collect();
    assert_eq!(
        last_seen(&store, &hosts).await,
        latest,
        "each host as last heard"
    );
    for host in &hosts {
        store.touch_host(host.id, base).await.unwrap();
    }
    assert_eq!(
        last_seen(&store, &hosts).await,
        latest,
        "a heartbeat heard earlier does not move a host's back"
    );
}

/// Agents' status reports go in a few statements per group: each must still be guarded by
/// its own generation, two reports of one instance read at one generation must not both win,
/// a stale one must lose, and what each winner is answered must be its row as it reads back.
pub async fn status_reports_written_together_each_keep_their_guard(store: Arc<dyn Store>) {
    seeded(&store).await;
    let mut created = Vec::new();
    for n in 0..100 {
        created.push(
            create_with_nics(&store, &format!("r-{n:03}"), vec![])
                .await
                .unwrap(),
        );
    }
    // Each instance reported three times at once: twice from the generation it has (with a
    // status each), once from a generation it left; one of them written by its owner as well.
    let mut jobs = Vec::new();
    for instance in &created {
        for (status, behind) in [
            (InstanceStatus::Staging, 0),
            (InstanceStatus::Running, 0),
            (InstanceStatus::Terminated, 1),
        ] {
            let store = store.clone();
            let mut reported = instance.clone();
            reported.generation -= behind;
            reported.set_status(status, Some(format!("{status:?}")), Utc::now());
            jobs.push(tokio::spawn(async move {
                (
                    behind,
                    store.update_instance_status(&reported).await.unwrap(),
                )
            }));
        }
    }
    let mut owner_wrote = created[7].clone();
    owner_wrote.spec.display_name = "renamed".into();
    let renamed = store.clone();
    let renaming = tokio::spawn(async move { renamed.update_instance(&owner_wrote).await });
    let mut winners = std::collections::HashMap::new();
    for job in jobs {
        let (behind, written) = job.await.unwrap();
        if let Some(written) = written {
            assert_eq!(behind, 0, "a report from a generation left behind lost");
            assert!(
                winners.insert(written.uid, written).is_none(),
                "two reports read at one generation both won"
            );
        }
    }
    let renaming = renaming.await.unwrap().unwrap();
    for instance in &created {
        let read = store
            .get_instance_by_uid(instance.uid)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(read.generation, instance.generation + 1);
        match (winners.get(&instance.uid), &renaming) {
            (Some(report), _) => assert_eq!(report, &read, "a report answers its row"),
            (None, Some(owner)) if owner.uid == instance.uid => {
                assert_eq!(owner, &read, "the owner's write answers its row")
            }
            _ => panic!("nothing was written to {}", instance.id),
        }
    }
    // A report from the generation a winner answered goes through.
    let (uid, won) = winners.iter().next().unwrap();
    let mut next = won.clone();
    next.set_status(InstanceStatus::Stopping, None, Utc::now());
    let written = store.update_instance_status(&next).await.unwrap().unwrap();
    assert_eq!(written.generation, won.generation + 1);
    let read = store.get_instance_by_uid(*uid).await.unwrap().unwrap();
    assert_eq!(read.status, InstanceStatus::Stopping);
}

/// When each of `hosts` was last heard from, in milliseconds.
async fn last_seen(store: &Arc<dyn Store>, hosts: &[HostRecord]) -> Vec<i64> {
    let listed = store.list_hosts().await.unwrap();
    hosts
        .iter()
        .map(|h| {
            let found = listed.iter().find(|l| l.id == h.id).unwrap();
            found.last_seen_at.timestamp_millis()
        })
        .collect()
}

/// An instance taking nothing of its host, with `nics`.
async fn create_with_nics(
    store: &Arc<dyn Store>,
    id: &str,
    nics: Vec<stratus_types::Nic>,
) -> Result<InstanceRecord, Error> {
    let mut i = instance(id, 0, &[]);
    i.memory_mb = 0;
    i.spec.nics = nics;
    let d = Demand {
        vcpus: 0,
        memory_mb: 0,
        gpu: None,
        baremetal: false,
    };
    store
        .create_instance(&i, &d, Utc::now() - Duration::seconds(60), &UNLIMITED)
        .await
}

fn nic(network: Option<&str>, ipv4: Option<&str>) -> stratus_types::Nic {
    stratus_types::Nic {
        network: network.map(str::to_owned),
        subnet: None,
        ipv4_address: ipv4.map(str::to_owned),
        ipv6_address: None,
        vlan: None,
        mac_address: None,
        external_address: None,
        external_ipv4_address: None,
    }
}

fn network(id: &str, cidr: &str) -> (NetworkRecord, SubnetRecord) {
    crate::addressing::new_network("p", id, &cidr.parse().unwrap(), "", "")
}

pub async fn nic_addresses_are_never_handed_out_twice(store: Arc<dyn Store>) {
    seeded(&store).await;
    let (small, _) = network("small", "10.9.0.0/24");
    let (net, subnet) = network("small", "10.9.0.0/24");
    let stored = store.create_network(&net, &subnet).await.unwrap();
    assert!(stored.vni > 0);
    assert!(matches!(
        store.create_network(&small, &subnet).await,
        Err(Error::AlreadyExists(_))
    ));
    // 200 concurrent creates into a /24: 200 distinct addresses.
    let creates: Vec<_> = (0..200)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                create_with_nics(&store, &format!("n-{n:03}"), vec![nic(Some("small"), None)]).await
            })
        })
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    for create in creates {
        let created = create.await.unwrap().expect("a /24 has room for 200");
        assert_eq!(
            Some(&created),
            store
                .get_instance_by_uid(created.uid)
                .await
                .unwrap()
                .as_ref(),
            "a create answers its row, with its NIC, as it reads back"
        );
        let ip = created.spec.nics[0].ipv4_address.clone().unwrap();
        assert!(seen.insert(ip.clone()), "{ip} handed out twice");
        assert_eq!(created.spec.nics[0].network.as_deref(), Some("small"));
        assert_eq!(created.spec.nics[0].subnet.as_deref(), Some("small-subnet"));
        assert!(
            created.spec.nics[0]
                .mac_address
                .as_deref()
                .unwrap()
                .starts_with("52:54:00:")
        );
    }
    assert_eq!(seen.len(), 200);
    assert!(!seen.contains("10.9.0.1") && !seen.contains("10.9.0.2") && !seen.contains("10.9.0.0"));
    // Asked-for addresses: outside the subnet is a 400, taken a 409, free is granted.
    let outside = create_with_nics(
        &store,
        "outside",
        vec![nic(Some("small"), Some("10.8.0.9"))],
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&outside, Error::InvalidArgument { fields, .. } if fields[0].field == "nics[0].ipv4Address"),
        "{outside:?}"
    );
    let taken = create_with_nics(&store, "taken", vec![nic(Some("small"), Some("10.9.0.3"))])
        .await
        .unwrap_err();
    assert!(
        matches!(&taken, Error::AlreadyExists(m) if m.contains("nics[0].ipv4Address")),
        "{taken:?}"
    );
    let chosen = create_with_nics(
        &store,
        "chosen",
        vec![nic(Some("small"), Some("10.9.0.250"))],
    )
    .await
    .unwrap();
    assert_eq!(
        chosen.spec.nics[0].ipv4_address.as_deref(),
        Some("10.9.0.250")
    );
    assert!(
        store.get_instance("p", "taken").await.unwrap().is_none(),
        "a refused create leaves nothing"
    );
    // A full subnet is RESOURCE_EXHAUSTED.
    let (tiny, tiny_subnet) = network("tiny", "10.10.0.0/29");
    store.create_network(&tiny, &tiny_subnet).await.unwrap();
    for n in 0..4 {
        create_with_nics(&store, &format!("t-{n}"), vec![nic(Some("tiny"), None)])
            .await
            .unwrap();
    }
    let full = create_with_nics(&store, "t-4", vec![nic(Some("tiny"), None)])
        .await
        .unwrap_err();
    assert!(
        matches!(&full, Error::ResourceExhausted(m) if m.contains("no free address")),
        "{full:?}"
    );
    // Deleting an instance frees its address for the next one.
    let mut gone = store.get_instance("p", "t-0").await.unwrap().unwrap();
    let freed = gone.spec.nics[0].ipv4_address.clone();
    gone.desired = DesiredState::Deleted;
    store.update_instance(&gone).await.unwrap().unwrap();
    assert!(store.finalize_instance_deletion(gone.uid).await.unwrap());
    let again = create_with_nics(&store, "t-4", vec![nic(Some("tiny"), None)])
        .await
        .unwrap();
    assert_eq!(again.spec.nics[0].ipv4_address, freed);
    // A NIC naming no network lands in the project's network `default`, made on first use.
    let plain = create_with_nics(&store, "plain", vec![nic(None, None)])
        .await
        .unwrap();
    assert_eq!(plain.spec.nics[0].network.as_deref(), Some("default"));
    assert_eq!(plain.spec.nics[0].ipv4_address.as_deref(), Some("10.0.0.3"));
    let default = store.get_network("p", "default").await.unwrap().unwrap();
    assert_eq!(default.cidr, "10.0.0.0/16");
    let unknown = create_with_nics(&store, "lost", vec![nic(Some("nowhere"), None)])
        .await
        .unwrap_err();
    assert!(
        matches!(&unknown, Error::InvalidArgument { fields, .. } if fields[0].field == "nics[0].network"),
        "{unknown:?}"
    );
}

pub async fn networks_in_use_stay_and_reservations_bind_to_nics(store: Arc<dyn Store>) {
    seeded(&store).await;
    let (net, subnet) = network("web", "192.168.10.0/24");
    store.create_network(&net, &subnet).await.unwrap();
    let reservation = AddressRecord {
        uid: uuid::Uuid::new_v4(),
        project: "p".into(),
        id: Some("fixed".into()),
        space: subnet.uid.to_string(),
        ip: "192.168.10.50".into(),
        address_type: stratus_types::AddressType::Internal,
        network: Some("web".into()),
        subnet: Some(subnet.id.clone()),
        instance_uid: None,
        nic: None,
        display_name: String::new(),
        description: String::new(),
        created_at: Utc::now(),
    };
    let range = subnet.ipv4_cidr.parse().unwrap();
    store.allocate_address(&reservation, &range).await.unwrap();
    let next = AddressRecord {
        uid: uuid::Uuid::new_v4(),
        id: Some("next".into()),
        ip: String::new(),
        ..reservation.clone()
    };
    let next = store.allocate_address(&next, &range).await.unwrap();
    assert_eq!(next.ip, "192.168.10.3");
    let twice = AddressRecord {
        uid: uuid::Uuid::new_v4(),
        id: Some("twice".into()),
        ..reservation.clone()
    };
    assert!(matches!(
        store.allocate_address(&twice, &range).await,
        Err(Error::AlreadyExists(m)) if m.contains("taken by address fixed")
    ));
    // A NIC asking for the reserved address holds the reservation.
    let vm = create_with_nics(&store, "vm", vec![nic(Some("web"), Some("192.168.10.50"))])
        .await
        .unwrap();
    let held = store.get_address("p", "fixed").await.unwrap().unwrap();
    assert_eq!((held.instance_uid, held.nic), (Some(vm.uid), Some(0)));
    assert!(matches!(
        store.release_address("p", "fixed").await,
        Err(Error::FailedPrecondition(m)) if m.contains("instance vm")
    ));
    let in_use = store.delete_network("p", "web").await.unwrap_err();
    assert!(
        matches!(&in_use, Error::FailedPrecondition(m) if m.contains("instances [vm]") && m.contains("addresses [fixed, next]")),
        "{in_use:?}"
    );
    // The instance gone, the reservation stays the project's, free again.
    let mut vm = vm;
    vm.desired = DesiredState::Deleted;
    let vm = store.update_instance(&vm).await.unwrap().unwrap();
    assert!(store.finalize_instance_deletion(vm.uid).await.unwrap());
    let kept = store.get_address("p", "fixed").await.unwrap().unwrap();
    assert_eq!(kept.instance_uid, None);
    let listed = store.list_addresses("p", &page(10)).await.unwrap();
    assert_eq!(listed.items.len(), 2, "NICs' own addresses are not listed");
    assert!(store.release_address("p", "fixed").await.unwrap());
    assert!(store.release_address("p", "next").await.unwrap());
    assert!(store.delete_network("p", "web").await.unwrap());
    assert!(store.get_subnet("p", &subnet.id).await.unwrap().is_none());
    // A project goes with its networks.
    let (other, other_subnet) = network("other", "10.20.0.0/16");
    store.create_network(&other, &other_subnet).await.unwrap();
    assert!(store.delete_project("p").await.unwrap());
    assert!(store.get_network("p", "other").await.unwrap().is_none());
}

/// The writer keeps what it knows of a zone's hosts between groups; each change to them made
/// outside its placements is seen by the very next create.
pub async fn placement_sees_every_change_to_its_zones_hosts(store: Arc<dyn Store>) {
    let host = seeded(&store).await;
    let full = |err: Error| matches!(err, Error::ResourceExhausted(_));
    let mut placed = Vec::new();
    for n in 0..8 {
        placed.push(
            create(&store, instance(&format!("a{n}"), 1, &[]))
                .await
                .unwrap(),
        );
    }
    assert!(full(
        create(&store, instance("x1", 1, &[])).await.unwrap_err()
    ));
    // A deletion frees its vCPU.
    let mut gone = placed.pop().unwrap();
    gone.desired = DesiredState::Deleted;
    let gone = store.update_instance(&gone).await.unwrap().unwrap();
    assert!(store.finalize_instance_deletion(gone.uid).await.unwrap());
    create(&store, instance("b1", 1, &[])).await.unwrap();
    assert!(full(
        create(&store, instance("x2", 1, &[])).await.unwrap_err()
    ));
    // The host registering again with more vCPUs.
    store
        .register_host(&sim_host(&host.name, 10))
        .await
        .unwrap();
    create(&store, instance("c1", 2, &[])).await.unwrap();
    assert!(full(
        create(&store, instance("x3", 1, &[])).await.unwrap_err()
    ));
    // A new host in the zone.
    let second = store.register_host(&sim_host("host-2", 4)).await.unwrap();
    let on_second = create(&store, instance("d1", 3, &[])).await.unwrap();
    assert_eq!(on_second.host_id, Some(second.id));
    // A cordon, then its lifting.
    store
        .set_host_scheduling(second.id, "CORDONED")
        .await
        .unwrap()
        .unwrap();
    assert!(full(
        create(&store, instance("x4", 1, &[])).await.unwrap_err()
    ));
    store
        .set_host_scheduling(second.id, "SCHEDULABLE")
        .await
        .unwrap()
        .unwrap();
    let after = create(&store, instance("e1", 1, &[])).await.unwrap();
    assert_eq!(after.host_id, Some(second.id));
    let usage = store.host_usage().await.unwrap();
    let used: Vec<_> = usage.iter().map(|h| (h.vcpus, h.used_vcpus)).collect();
    assert!(
        used.contains(&(10, 10)) && used.contains(&(4, 4)),
        "{used:?}"
    );
}

pub async fn cordoned_hosts_take_nothing_new_and_stay_cordoned(store: Arc<dyn Store>) {
    let host = seeded(&store).await;
    create(&store, instance("before", 2, &[])).await.unwrap();
    let cordoned = store
        .set_host_scheduling(host.id, "CORDONED")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cordoned.scheduling, "CORDONED");
    let err = create(&store, instance("after", 1, &[])).await.unwrap_err();
    assert!(
        matches!(&err, Error::ResourceExhausted(m) if m.contains("no schedulable host")),
        "{err:?}"
    );
    // Its agent registering again (a restart, an upgrade) changes what it reports, not the
    // operator's cordon.
    let again = store
        .register_host(&HostRegistrationRecord {
            name: host.name.clone(),
            zone: "z".into(),
            driver: "qemu".into(),
            vcpus: 16,
            memory_mb: 8192,
            gpus: vec![],
            accelerator: Some("tcg".into()),
            agent_version: Some("9.9.9".into()),
            underlay: None,
            now: Utc::now(),
        })
        .await
        .unwrap();
    assert_eq!(again.id, host.id);
    assert_eq!(again.scheduling, "CORDONED");
    assert_eq!(
        (again.accelerator.as_deref(), again.agent_version.as_deref()),
        (Some("tcg"), Some("9.9.9"))
    );
    let usage = store.host_usage().await.unwrap();
    assert_eq!((usage[0].used_vcpus, usage[0].instances), (2, 1));
    store
        .set_host_scheduling(host.id, "SCHEDULABLE")
        .await
        .unwrap()
        .unwrap();
    create(&store, instance("after", 1, &[])).await.unwrap();
    assert!(
        store
            .set_host_scheduling(uuid::Uuid::new_v4(), "CORDONED")
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn quotas_hold_under_concurrent_creates_and_starts(store: Arc<dyn Store>) {
    seeded(&store).await;
    let quota = |overrides: &[(&str, Option<u64>)], generation| QuotaRecord {
        organization_id: "o".into(),
        overrides: overrides
            .iter()
            .map(|(name, limit)| (name.to_string(), *limit))
            .collect(),
        generation,
        updated_at: Utc::now(),
    };
    let saved = store
        .save_quota(&quota(&[("instanceCount", Some(10))], 0))
        .await
        .unwrap()
        .expect("first settings are stored");
    assert!(
        store
            .save_quota(&quota(&[("instanceCount", Some(3))], 0))
            .await
            .unwrap()
            .is_none(),
        "a second first write loses"
    );
    // 100 concurrent creates against 10 instances: exactly 10 get in.
    let attempts: Vec<_> = (0..100)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(
                async move { create(&store, instance(&format!("q-{n:03}"), 0, &[])).await },
            )
        })
        .collect();
    let (mut admitted, mut refused) = (vec![], 0);
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(created) => admitted.push(created),
            Err(Error::QuotaExceeded(e)) => {
                assert_eq!((e.quota.as_str(), e.limit), ("instanceCount", 10));
                refused += 1;
            }
            Err(other) => panic!("a create failed with {other:?}"),
        }
    }
    assert_eq!((admitted.len(), refused), (10, 90));
    assert_eq!(store.quota_usage("o").await.unwrap().instances, 10);
    // Deleting gives the quota back at once.
    for mut vm in admitted {
        vm.desired = DesiredState::Deleted;
        store.update_instance(&vm).await.unwrap().unwrap();
    }
    assert_eq!(
        store.quota_usage("o").await.unwrap(),
        stratus_core::quota::Amounts::default()
    );
    // Cores count while an instance is meant to run: stopping gives them back, starting takes
    // them again, past the limit only when there is room.
    let two_cores: Limits = [("cpuCores".to_string(), 2)].into();
    let admission = Admission {
        organization: "o",
        defaults: &two_cores,
    };
    let since = Utc::now() - Duration::seconds(60);
    let mut first = store
        .create_instance(&instance("first", 2, &[]), &demand(2), since, &admission)
        .await
        .unwrap();
    first.desired = DesiredState::Stopped;
    let stopped = store.update_instance(&first).await.unwrap().unwrap();
    assert_eq!(store.quota_usage("o").await.unwrap().vcpus, 0);
    store
        .create_instance(&instance("second", 2, &[]), &demand(2), since, &admission)
        .await
        .unwrap();
    let mut starting = stopped.clone();
    starting.desired = DesiredState::Running;
    let refused = store
        .update_instance_to_run(&starting, &admission)
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, Error::QuotaExceeded(e) if e.quota == "cpuCores" && e.usage == "2" && e.requested == "2"),
        "{refused:?}"
    );
    assert_eq!(
        store.get_instance("p", "first").await.unwrap().unwrap(),
        stopped,
        "a refused start changes nothing"
    );
    // The organization's own setting lifts the region's default.
    store
        .save_quota(&quota(&[("cpuCores", None)], saved.generation))
        .await
        .unwrap()
        .unwrap();
    let started = store
        .update_instance_to_run(&starting, &admission)
        .await
        .unwrap()
        .expect("admitted once the limit is lifted");
    assert_eq!(started.desired, DesiredState::Running);
    assert_eq!(store.quota_usage("o").await.unwrap().vcpus, 4);
}

fn server(id: &str, bmc: &str) -> ServerRecord {
    ServerRecord {
        uid: Uuid::new_v4(),
        project: "p".into(),
        id: id.into(),
        zone: "z".into(),
        display_name: String::new(),
        description: String::new(),
        bmc_address: bmc.into(),
        bmc_secret: "sealed".into(),
        hardware: Default::default(),
        provisioning_state: "registered".into(),
        status_message: None,
        health: stratus_types::HealthStatus {
            status: stratus_types::HealthState::Degraded,
            last_check_time: None,
            failure_reasons: vec![],
        },
        power_state: None,
        tags: Default::default(),
        persona: String::new(),
        host_id: None,
        generation: 1,
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
}

/// A server's id is unique in its project and its BMC among servers not decommissioned;
/// writes are guarded by generation; log lines keep their order and never collide.
pub async fn servers_are_unique_by_id_and_live_bmc_and_guarded(store: Arc<dyn Store>) {
    seeded(&store).await;
    let a = server("a", "http://bmc-a");
    store.create_server(&a).await.unwrap();
    for clash in [server("a", "http://bmc-other"), server("b", "http://bmc-a")] {
        assert!(matches!(
            store.create_server(&clash).await,
            Err(Error::AlreadyExists(_))
        ));
    }
    let mut gone = a.clone();
    gone.provisioning_state = "decommissioned".into();
    let stored = store.update_server(&gone).await.unwrap().unwrap();
    assert_eq!(stored.generation, 2);
    assert!(
        store.update_server(&gone).await.unwrap().is_none(),
        "a write from an older generation is refused"
    );
    store
        .create_server(&server("b", "http://bmc-a"))
        .await
        .unwrap();
    assert_eq!(store.active_servers().await.unwrap().len(), 1);
    for seq in [10, 10, 10] {
        store
            .append_server_log(&ServerLogRecord {
                server_uid: a.uid,
                seq,
                severity: "info".into(),
                message: format!("line {seq}"),
            })
            .await
            .unwrap();
    }
    let lines = store
        .list_server_logs(a.uid, 0, i64::MAX, 10)
        .await
        .unwrap();
    let seqs: Vec<i64> = lines.iter().map(|l| l.seq).collect();
    assert_eq!(seqs, [10, 11, 12], "a taken seq moves on");
}

pub async fn snapshots_carry_every_row(source: Arc<dyn Store>, target: Arc<dyn Store>) {
    use stratus_types::{ImageFormat, ImageStatus};
    let host = seeded(&source).await;
    source
        .setting_or_init("paging-key", "secret")
        .await
        .unwrap();
    let vm = create(&source, instance("vm", 2, &[("app", "web")]))
        .await
        .unwrap();
    source
        .append_console(vm.uid, 0, b"booted\n", 1024)
        .await
        .unwrap();
    assert!(
        source
            .claim_instance_lease(vm.uid, "replica-a", Utc::now(), Utc::now())
            .await
            .unwrap()
    );
    source
        .init_signing_key(&SigningKeyRecord {
            kid: "k1".into(),
            algorithm: "EdDSA".into(),
            private_key: vec![9; 32],
            public_key: vec![7; 32],
            created_at: Utc::now(),
        })
        .await
        .unwrap();
    source
        .create_api_key(&ApiKeyRecord {
            uid: Uuid::new_v4(),
            id: "key".into(),
            secret_hash: "hash".into(),
            organization_id: "o".into(),
            scope: "project".into(),
            scope_id: "p".into(),
            roles: vec!["member".into()],
            created_by: "someone".into(),
            display_name: "ci".into(),
            created_at: Utc::now(),
            last_used_at: Some(Utc::now()),
            status: "disabled".into(),
            previous_secret_hash: Some("old".into()),
            previous_secret_expires_at: Some(Utc::now()),
            last_rotated_at: Some(Utc::now()),
        })
        .await
        .unwrap();
    source
        .create_image(&ImageRecord {
            uid: Uuid::new_v4(),
            id: "img".into(),
            display_name: "Image".into(),
            description: "d".into(),
            os: "linux".into(),
            format: ImageFormat::Qcow2,
            size_bytes: 1 << 20,
            min_disk_gb: 1,
            status: ImageStatus::Ready,
            status_message: None,
            source: Some("https://example.test/img.qcow2".into()),
            sha256: Some("ab".repeat(32)),
            file: Some("/images/img".into()),
            bytes_done: 1 << 20,
            generation: 3,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        })
        .await
        .unwrap();

    source
        .revoke_token(&RevokedTokenRecord {
            jti: "revoked".into(),
            expires_at: Utc::now(),
        })
        .await
        .unwrap();
    source
        .create_service_account(&service_account("sa"))
        .await
        .unwrap();
    source
        .create_credential(&credential("c", "sa", Some(60)), 5, Utc::now())
        .await
        .unwrap();
    source
        .record_audit_event(&audit_event(1, "o"))
        .await
        .unwrap();
    source
        .save_quota(&QuotaRecord {
            organization_id: "o".into(),
            overrides: [("cpuCores".to_string(), Some(64)), ("ramGb".into(), None)].into(),
            generation: 0,
            updated_at: Utc::now(),
        })
        .await
        .unwrap()
        .unwrap();

    let (net, subnet) = network("snap", "10.30.0.0/24");
    source.create_network(&net, &subnet).await.unwrap();
    create_with_nics(&source, "with-nic", vec![nic(Some("snap"), None)])
        .await
        .unwrap();

    let bm = server("rack1", "http://bmc-1");
    source.create_server(&bm).await.unwrap();
    source
        .append_server_log(&ServerLogRecord {
            server_uid: bm.uid,
            seq: 1,
            severity: "info".into(),
            message: "registered".into(),
        })
        .await
        .unwrap();

    let mut gpu = instance("gpu", 1, &[]);
    gpu.gpu_type = Some("h100".into());
    gpu.gpu_count = 1;
    let gpu_demand = Demand {
        vcpus: 1,
        memory_mb: 0,
        gpu: Some(("h100".into(), 1)),
        baremetal: false,
    };
    source
        .create_instance(
            &gpu,
            &gpu_demand,
            Utc::now() - Duration::seconds(60),
            &UNLIMITED,
        )
        .await
        .unwrap();

    let snapshot = source.export().await.unwrap();
    assert_eq!(snapshot.hosts[0].id, host.id);
    target.import(&snapshot).await.unwrap();
    assert_eq!(
        target.host_usage().await.unwrap(),
        source.host_usage().await.unwrap(),
        "the copy knows what is placed on each host"
    );
    assert_eq!(target.host_usage().await.unwrap()[0].used_vcpus, 3);
    assert_eq!(
        target.export().await.unwrap(),
        snapshot,
        "the copy holds the same rows"
    );
    let counts = source.row_counts().await.unwrap();
    assert!(
        counts.values().all(|n| *n > 0),
        "the check fills every table of the schema: {counts:?}"
    );
    assert_eq!(
        target.row_counts().await.unwrap(),
        counts,
        "every table of the schema is carried"
    );
    assert_eq!(
        snapshot.row_counts(),
        counts,
        "the snapshot names every table"
    );
    let copied = target.get_instance("p", "vm").await.unwrap().unwrap();
    assert_eq!(copied.generation, vm.generation);
    assert!(
        target
            .claim_instance_lease(vm.uid, "replica-b", Utc::now(), Utc::now())
            .await
            .unwrap(),
        "leases are not carried over"
    );
    assert!(matches!(
        target.import(&snapshot).await,
        Err(Error::FailedPrecondition(_))
    ));
}

fn service_account(id: &str) -> ServiceAccountRecord {
    ServiceAccountRecord {
        uid: Uuid::new_v4(),
        id: id.into(),
        client_id: format!("{id}@o.iam"),
        organization_id: "o".into(),
        display_name: "Pipeline".into(),
        description: String::new(),
        scope: "organization".into(),
        scope_id: "o".into(),
        roles: vec!["member".into()],
        status: "active".into(),
        created_by: "someone".into(),
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
}

fn credential(id: &str, account: &str, expires_in_s: Option<i64>) -> CredentialRecord {
    CredentialRecord {
        uid: Uuid::new_v4(),
        id: id.into(),
        service_account_id: account.into(),
        secret_hash: format!("hash-{id}"),
        expires_at: expires_in_s.map(|s| Utc::now() + Duration::seconds(s)),
        created_at: Utc::now(),
        last_used_at: None,
    }
}

fn audit_event(n: u32, organization: &str) -> AuditEventRecord {
    AuditEventRecord {
        id: format!("{:013}-{n:04}", Utc::now().timestamp_millis()),
        at: Utc::now(),
        principal: "someone".into(),
        principal_type: "api_key".into(),
        organization_id: organization.into(),
        credential_id: "key-1".into(),
        method: "POST".into(),
        path: "/v1/regions/r/projects/p/compute/instances".into(),
        status: 201,
        request_id: format!("req-{n}"),
    }
}

pub async fn service_accounts_credentials_and_audit(store: Arc<dyn Store>) {
    let account = service_account("sa-1");
    store.create_service_account(&account).await.unwrap();
    assert!(matches!(
        store.create_service_account(&account).await,
        Err(Error::AlreadyExists(_))
    ));
    let by_client = store
        .get_service_account_by_client_id("sa-1@o.iam")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_client.id, "sa-1");
    let mut renamed = by_client.clone();
    renamed.display_name = "Deployer".into();
    renamed.status = "disabled".into();
    let stored = store
        .update_service_account(&renamed)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (stored.display_name.as_str(), stored.status.as_str()),
        ("Deployer", "disabled")
    );
    let listed = store
        .list_service_accounts(Some("o"), &page(10))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    assert!(
        store
            .list_service_accounts(Some("x"), &page(10))
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // At most `max_active` active credentials; expired ones do not count.
    store
        .create_credential(&credential("c-old", "sa-1", Some(-10)), 2, Utc::now())
        .await
        .unwrap();
    for id in ["c-1", "c-2"] {
        store
            .create_credential(&credential(id, "sa-1", None), 2, Utc::now())
            .await
            .unwrap();
    }
    assert!(matches!(
        store
            .create_credential(&credential("c-3", "sa-1", Some(60)), 2, Utc::now())
            .await,
        Err(Error::FailedPrecondition(_))
    ));
    assert_eq!(store.list_credentials("sa-1").await.unwrap().len(), 3);
    let found = store
        .find_credential_by_hash("hash-c-1")
        .await
        .unwrap()
        .unwrap();
    assert!(found.is_active(Utc::now()));
    store.touch_credential(found.uid, Utc::now()).await.unwrap();
    assert!(
        store
            .get_credential("c-1")
            .await
            .unwrap()
            .unwrap()
            .last_used_at
            .is_some()
    );
    assert!(
        !store
            .get_credential("c-old")
            .await
            .unwrap()
            .unwrap()
            .is_active(Utc::now())
    );
    assert!(store.delete_credential("c-2").await.unwrap());
    store
        .create_credential(&credential("c-3", "sa-1", Some(60)), 2, Utc::now())
        .await
        .unwrap();
    assert!(store.delete_service_account("sa-1").await.unwrap());
    assert!(
        store.get_credential("c-1").await.unwrap().is_none(),
        "an account's credentials go with it"
    );

    // The audit trail reads back in order, per organization.
    for n in 0..3 {
        store
            .record_audit_event(&audit_event(n, "o"))
            .await
            .unwrap();
    }
    store
        .record_audit_event(&audit_event(9, "other"))
        .await
        .unwrap();
    let events = store.list_audit_events(Some("o"), &page(10)).await.unwrap();
    let ids: Vec<&str> = events.items.iter().map(|e| e.request_id.as_str()).collect();
    assert_eq!(ids, ["req-0", "req-1", "req-2"]);
    assert_eq!(events.items[0].status, 201);
    assert_eq!(
        store
            .list_audit_events(None, &page(10))
            .await
            .unwrap()
            .items
            .len(),
        4
    );
    let mut old = audit_event(7, "o");
    old.id = format!(
        "{:013}-0007",
        (Utc::now() - Duration::days(100)).timestamp_millis()
    );
    store.record_audit_event(&old).await.unwrap();
    let pruned = store
        .prune_audit_events(Utc::now() - Duration::days(90))
        .await
        .unwrap();
    assert_eq!(pruned, 1, "only the event older than the retention goes");
    let left = store.list_audit_events(None, &page(10)).await.unwrap();
    assert_eq!(left.items.len(), 4);
    for (jti, expires) in [("gone", -60), ("kept", 60)] {
        store
            .revoke_token(&RevokedTokenRecord {
                jti: jti.into(),
                expires_at: Utc::now() + Duration::seconds(expires),
            })
            .await
            .unwrap();
    }
    assert_eq!(store.prune_revoked_tokens(Utc::now()).await.unwrap(), 1);
    assert!(store.is_token_revoked("kept").await.unwrap());
    assert!(!store.is_token_revoked("gone").await.unwrap());
}

/// What a host polls carries a digest of each instance's metadata, not the metadata (up to
/// 512 KiB each); reading the instance gives it whole, and a change of it changes the digest.
pub async fn hosts_poll_instances_without_their_metadata(store: Arc<dyn Store>) {
    use stratus_types::{MetadataItem, MetadataKey};
    let host = seeded(&store).await;
    let mut vm = instance("vm", 1, &[]);
    vm.spec.metadata = vec![MetadataItem {
        key: MetadataKey::parse("user-data").unwrap(),
        value: "x".repeat(100_000),
    }];
    let created = create(&store, vm.clone()).await.unwrap();
    assert_eq!(created.spec.metadata, vm.spec.metadata);
    let polled = store.list_assignments_on_host(host.id).await.unwrap();
    assert_eq!(polled.len(), 1);
    let (light, digest) = &polled[0];
    assert!(
        light.spec.metadata.is_empty(),
        "metadata travels with the poll"
    );
    assert_eq!(light.spec.hostname, "vm");
    assert_eq!(*digest, crate::metadata_digest(&vm.spec.metadata));
    let stored = store.get_instance("p", "vm").await.unwrap().unwrap();
    assert_eq!(stored.spec.metadata, vm.spec.metadata);
    let mut changed = stored.clone();
    changed.spec.metadata[0].value = "y".into();
    store.update_instance(&changed).await.unwrap().unwrap();
    let (_, after) = store
        .list_assignments_on_host(host.id)
        .await
        .unwrap()
        .remove(0);
    assert_ne!(after, *digest);
    assert_eq!(after, crate::metadata_digest(&changed.spec.metadata));
    let everything = store.export().await.unwrap();
    assert_eq!(everything.instances[0].spec.metadata, changed.spec.metadata);
}

/// What hosts read by uid (their reports, console output) comes from memory, yet always as the
/// last write through the store left it: the updated row, not the one it replaced, and nothing
/// once the instance is gone, even when a new instance takes its id.
pub async fn hosts_find_their_instances_by_uid_as_last_written(store: Arc<dyn Store>) {
    seeded(&store).await;
    let a = create(&store, instance("a", 1, &[])).await.unwrap();
    assert_eq!(
        store.get_cached_instance_by_uid(a.uid).await.unwrap(),
        Some(a.clone())
    );
    // Kept in memory by a read, then written twice: each read by uid sees the last write.
    store.get_instance("p", "a").await.unwrap();
    let mut current = a.clone();
    for status in [InstanceStatus::Staging, InstanceStatus::Running] {
        let stale = current.clone();
        current.set_status(status, None, Utc::now());
        current = store
            .update_instance_status(&current)
            .await
            .unwrap()
            .unwrap();
        let read = store.get_cached_instance_by_uid(a.uid).await.unwrap();
        assert_eq!(
            read.as_ref(),
            Some(&current),
            "after the write to {status:?}"
        );
        assert_eq!(
            store.get_instance("p", "a").await.unwrap().as_ref(),
            Some(&current)
        );
        // A write that loses its guard changes nothing that is read by uid.
        let mut lost = stale;
        lost.set_status(InstanceStatus::Terminated, None, Utc::now());
        assert!(store.update_instance_status(&lost).await.unwrap().is_none());
        assert_eq!(
            store
                .get_cached_instance_by_uid(a.uid)
                .await
                .unwrap()
                .as_ref(),
            Some(&current)
        );
    }
    current.desired = DesiredState::Deleted;
    let current = store.update_instance(&current).await.unwrap().unwrap();
    assert_eq!(
        store.get_cached_instance_by_uid(a.uid).await.unwrap(),
        Some(current.clone())
    );
    assert!(store.finalize_instance_deletion(a.uid).await.unwrap());
    assert_eq!(store.get_cached_instance_by_uid(a.uid).await.unwrap(), None);
    // The id is taken again by another instance: the old uid still finds nothing.
    let again = create(&store, instance("a", 1, &[])).await.unwrap();
    assert_ne!(again.uid, a.uid);
    assert_eq!(store.get_cached_instance_by_uid(a.uid).await.unwrap(), None);
    assert_eq!(
        store.get_cached_instance_by_uid(again.uid).await.unwrap(),
        Some(again)
    );
}

/// A NIC's subnet and its network's VNI are read together, and only when the two belong
/// together in the instance's project.
pub async fn a_nic_is_plumbed_from_its_subnet_and_network_together(store: Arc<dyn Store>) {
    seeded(&store).await;
    let (web, web_subnet) = network("web", "192.168.10.0/24");
    let web = store.create_network(&web, &web_subnet).await.unwrap();
    let (db, db_subnet) = network("db", "192.168.20.0/24");
    let db = store.create_network(&db, &db_subnet).await.unwrap();
    assert_ne!(web.vni, db.vni);
    for (network, subnet, cidr) in [
        (&web, &web_subnet, "192.168.10.0/24"),
        (&db, &db_subnet, "192.168.20.0/24"),
    ] {
        let (found, vni) = store
            .get_subnet_in_network("p", &network.id, &subnet.id)
            .await
            .unwrap()
            .expect("the subnet of its network");
        assert_eq!((found.ipv4_cidr.as_str(), vni), (cidr, network.vni));
    }
    for (project, network, subnet) in [
        ("p", "db", web_subnet.id.as_str()),
        ("p", "web", db_subnet.id.as_str()),
        ("p", "web", "nowhere"),
        ("p", "nowhere", web_subnet.id.as_str()),
        ("q", "web", web_subnet.id.as_str()),
    ] {
        assert!(
            store
                .get_subnet_in_network(project, network, subnet)
                .await
                .unwrap()
                .is_none(),
            "{project}/{network}/{subnet}"
        );
    }
}
