//! A region on PostgreSQL, as operators run it: several `serve` replicas sharing a real
//! PostgreSQL server started for the test, a separate `stratus agent`, replicas killed with
//! SIGKILL, the database restarted under load, and a region moved off SQLite with
//! `stratus db copy`.

use crate::support::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};
use stratus::Config;
use stratus_store::testing::PostgresCluster;

/// The length of a reconciler's instance lease (`ReconcilerConfig::default().lease`).
const LEASE: Duration = Duration::from_secs(30);

fn admin_key(serve_dir: &Path) -> String {
    std::fs::read_to_string(serve_dir.join("data").join("admin-api-key"))
        .unwrap()
        .trim()
        .to_owned()
}

fn micro(id: &str) -> Value {
    json!({"id": id, "type": TYPE_MICRO})
}

/// Every instance of the default project with its status, read in pages.
async fn statuses(c: &Client) -> Option<BTreeMap<String, String>> {
    let mut all = BTreeMap::new();
    let mut token = String::new();
    loop {
        let reply = c
            .try_send(
                Method::GET,
                &format!("{INSTANCES}?pageSize=100&pageToken={token}"),
                None,
                &[],
            )
            .await?;
        if reply.status != StatusCode::OK {
            return None;
        }
        for item in reply.body["instances"].as_array().unwrap() {
            all.insert(
                item["id"].as_str().unwrap().to_owned(),
                item["lifecycle"]["status"].as_str().unwrap().to_owned(),
            );
        }
        match reply.body["nextPageToken"].as_str() {
            Some(next) if !next.is_empty() => token = next.to_owned(),
            _ => return Some(all),
        }
    }
}

/// Two `serve` replicas on one PostgreSQL database with a simulated host agent polling both,
/// and an administrator's client of each.
struct TwoReplicas {
    _pg: PostgresCluster,
    /// The region's database.
    url: String,
    dir_a: tempfile::TempDir,
    dir_b: tempfile::TempDir,
    agent_dir: tempfile::TempDir,
    replica_a: tokio::process::Child,
    _replica_b: tokio::process::Child,
    _agent: tokio::process::Child,
    a: Client,
    b: Client,
}

async fn two_replicas(database: &str) -> TwoReplicas {
    let pg = PostgresCluster::start().unwrap();
    let mut config = fast_config();
    config.database.url = pg.create_database(database).await.unwrap();
    let url = config.database.url.clone();
    config.host.enabled = false;
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let agent_dir = tempfile::tempdir().unwrap();
    let (replica_a, base_a) = spawn_serve(dir_a.path(), &config).await;
    let (replica_b, base_b) = spawn_serve(dir_b.path(), &config).await;
    let agent = spawn_sim_agent(
        &format!("{database}-host-1"),
        agent_dir.path(),
        &[&base_a, &base_b],
        &dir_a.path().join("data/host-credential"),
    );
    let key = admin_key(dir_a.path());
    let a = Client::login(&base_a, &key).await;
    let b = Client::login(&base_b, &key).await;
    TwoReplicas {
        _pg: pg,
        url,
        dir_a,
        dir_b,
        agent_dir,
        replica_a,
        _replica_b: replica_b,
        _agent: agent,
        a,
        b,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_postgres_and_one_killed_loses_nothing() {
    let TwoReplicas {
        _pg,
        dir_a: _dir_a,
        dir_b,
        agent_dir,
        mut replica_a,
        _replica_b,
        _agent,
        a,
        b,
        ..
    } = two_replicas("replicas").await;
    assert!(
        !dir_b.path().join("data/admin-api-key").exists(),
        "the region was bootstrapped once, by the first replica"
    );

    // The host registers with whichever replica answers; creates wait for it.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reply = a.post(INSTANCES, micro("vm-000")).await;
        if reply.status == StatusCode::CREATED {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no host joined: {:#}",
            reply.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut acknowledged = BTreeSet::from(["vm-000".to_owned()]);
    let mut served_by = [1usize, 0];
    for n in 1..100 {
        if n == 50 {
            replica_a.start_kill().unwrap();
            replica_a.wait().await.unwrap();
        }
        let id = format!("vm-{n:03}");
        let first_choice = if n % 2 == 0 { &a } else { &b };
        let reply = match first_choice
            .try_send(Method::POST, INSTANCES, Some(micro(&id)), &[])
            .await
        {
            Some(reply) => {
                served_by[n % 2] += 1;
                reply
            }
            // A client fails over to the replica that is still there.
            None => {
                served_by[1] += 1;
                b.post(INSTANCES, micro(&id)).await
            }
        };
        assert_eq!(reply.status, StatusCode::CREATED, "{id}: {:#}", reply.body);
        acknowledged.insert(id);
    }
    assert!(
        served_by[0] >= 25 && served_by[1] >= 50,
        "creates were spread over both replicas: {served_by:?}"
    );

    let killed_at = Instant::now();
    let deadline = killed_at + LEASE + Duration::from_secs(10);
    let last = loop {
        let seen = statuses(&b).await.unwrap_or_default();
        let running = seen.values().filter(|s| *s == "RUNNING").count();
        if running == acknowledged.len() {
            break seen;
        }
        assert!(
            Instant::now() < deadline,
            "{running} of {} acknowledged instances reached RUNNING after replica A died: {seen:?}",
            acknowledged.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(
        last.keys().cloned().collect::<BTreeSet<_>>(),
        acknowledged,
        "exactly the acknowledged instances exist"
    );
    eprintln!(
        "all {} instances RUNNING {:.1} s after replica A was killed",
        acknowledged.len(),
        killed_at.elapsed().as_secs_f64()
    );

    // Deletions finish through the survivor: its reconciler takes over whatever A held.
    for n in 0..10 {
        let reply = b.delete(&format!("{INSTANCES}/vm-{n:03}")).await;
        assert!(reply.status.is_success(), "{:#}", reply.body);
    }
    for n in 0..10 {
        b.wait_gone(&format!("vm-{n:03}"), LEASE + Duration::from_secs(10))
            .await;
    }

    let provisions =
        std::fs::read_to_string(agent_dir.path().join("host/sim-host.provisions")).unwrap();
    let mut seen = BTreeSet::new();
    for uid in provisions.lines() {
        assert!(seen.insert(uid), "instance {uid} was provisioned twice");
    }
    assert_eq!(seen.len(), acknowledged.len(), "one guest per instance");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_gives_503s_and_loses_no_acknowledged_write() {
    let pg = PostgresCluster::start().unwrap();
    let mut config = fast_config();
    config.database.url = pg.create_database("outage").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (_serve, base) = spawn_serve(dir.path(), &config).await;
    let c = Client::login(&base, &admin_key(dir.path())).await;

    let stream = {
        let c = c.clone();
        tokio::spawn(async move {
            let mut answers: Vec<(String, StatusCode)> = Vec::new();
            let mut created = Vec::new();
            let started = Instant::now();
            let mut n = 0;
            while started.elapsed() < Duration::from_secs(16) {
                n += 1;
                let id = format!("vm-{n:04}");
                let reply = c.send(Method::POST, INSTANCES, Some(micro(&id)), &[]).await;
                if reply.status == StatusCode::CREATED {
                    created.push(id.clone());
                }
                answers.push((format!("create {id}"), reply.status));
                let reply = c.get(&format!("{INSTANCES}?pageSize=10")).await;
                answers.push(("list".into(), reply.status));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (answers, created)
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    pg.stop_server().unwrap();
    let down = reqwest::Client::new()
        .get(format!("{base}{INSTANCES}/vm-0001"))
        .bearer_auth(c.token.as_deref().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        down.headers().contains_key("retry-after"),
        "a 503 tells when to retry"
    );
    let body: Value = down.json().await.unwrap();
    assert_eq!(body["error"]["code"], 503);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("database"),
        "the 503 says what is wrong: {body}"
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    pg.start_server().unwrap();
    let (answers, created) = stream.await.unwrap();

    let unexpected: Vec<_> = answers
        .iter()
        .filter(|(_, status)| {
            !matches!(status.as_u16(), 200 | 201) && *status != StatusCode::SERVICE_UNAVAILABLE
        })
        .collect();
    assert!(
        unexpected.is_empty(),
        "only 503s during the outage: {unexpected:?}"
    );
    let unavailable = answers.iter().filter(|(_, s)| s.as_u16() == 503).count();
    assert!(unavailable > 0, "the outage was seen by the stream");
    assert!(
        answers.iter().rev().take(4).all(|(_, s)| s.is_success()),
        "requests succeed again after the database is back: {:?}",
        &answers[answers.len().saturating_sub(4)..]
    );
    eprintln!(
        "{} requests, {unavailable} answered 503 during the outage, {} instances created",
        answers.len(),
        created.len()
    );
    for id in &created {
        c.wait_status(id, "RUNNING", Duration::from_secs(30)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_copy_moves_a_region_from_sqlite_to_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let imports = dir.path().join("imports");
    std::fs::create_dir(&imports).unwrap();
    let mut config = fast_config();
    config.images.import_dirs = vec![imports.clone()];
    let (mut serve, base) = spawn_serve(dir.path(), &config).await;
    let key = admin_key(dir.path());
    let c = Client::login(&base, &key).await;
    for id in ["web-1", "web-2", "db-1"] {
        c.create_instance(id).await;
    }
    c.wait_status("db-1", "RUNNING", Duration::from_secs(20))
        .await;
    let image_file = imports.join("tiny.raw");
    std::fs::write(&image_file, vec![0u8; 1 << 20]).unwrap();
    let image = c
        .post(
            "/v1/regions/local-1/compute/images",
            json!({"id": "tiny", "source": image_file, "format": "raw", "os": "none"}),
        )
        .await;
    assert_eq!(image.status, StatusCode::CREATED, "{:#}", image.body);
    let paths: Vec<String> = [
        format!("{INSTANCES}?pageSize=50"),
        format!("{INSTANCES}/web-1"),
        format!("{INSTANCES}/web-2"),
        format!("{INSTANCES}/db-1"),
        "/v1/regions/local-1/compute/images/tiny".into(),
        "/v1/regions/local-1/compute/images".into(),
        "/v1/regions/global/organizations/default".into(),
        "/v1/regions/global/projects/default".into(),
    ]
    .into();
    // Settle: every instance RUNNING, the image imported.
    for id in ["web-1", "web-2"] {
        c.wait_status(id, "RUNNING", Duration::from_secs(20)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while c.get("/v1/regions/local-1/compute/images/tiny").await.body["status"] != "READY" {
        assert!(Instant::now() < deadline, "the image import did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut before = Vec::new();
    for path in &paths {
        let reply = c.get(path).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {:#}", reply.body);
        before.push(reply.body);
    }
    let old_token = c.token.clone();
    serve.start_kill().unwrap();
    serve.wait().await.unwrap();

    let pg = PostgresCluster::start().unwrap();
    let url = pg.create_database("moved").await.unwrap();
    let copy = std::process::Command::new(env!("CARGO_BIN_EXE_stratus"))
        .args(["db", "copy", "--from"])
        .arg(dir.path().join("data"))
        .args(["--to", &url])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&copy.stdout);
    assert!(
        copy.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&copy.stderr)
    );
    assert!(
        report.contains("instances") && report.contains("api_keys"),
        "{report}"
    );
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_stratus"))
        .args(["db", "copy", "--from"])
        .arg(dir.path().join("data"))
        .args(["--to", &url])
        .output()
        .unwrap();
    assert!(
        !again.status.success(),
        "a second copy into a used database is refused"
    );
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already holds a region"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    let mut on_postgres: Config = config.clone();
    on_postgres.database.url = url;
    let (_serve, base) = spawn_serve(dir.path(), &on_postgres).await;
    let mut moved = Client::login(&base, &key).await;
    for (path, was) in paths.iter().zip(&before) {
        let reply = moved.get(path).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {:#}", reply.body);
        assert_eq!(&reply.body, was, "{path} answers as before the move");
    }
    moved.token = old_token;
    let reply = moved.get(&format!("{INSTANCES}/web-1")).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "a token issued before the move still works: {:#}",
        reply.body
    );
    moved.create_instance("after-move").await;
    moved
        .wait_status("after-move", "RUNNING", Duration::from_secs(20))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_imported_images_and_revocations() {
    let pg = PostgresCluster::start().unwrap();
    let mut config = fast_config();
    config.database.url = pg.create_database("images").await.unwrap();
    config.host.enabled = false;
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let imports = tempfile::tempdir().unwrap();
    config.images.import_dirs = vec![imports.path().to_owned()];
    let (_a, base_a) = spawn_serve(dir_a.path(), &config).await;
    let (_b, base_b) = spawn_serve(dir_b.path(), &config).await;
    let a = Client::login(&base_a, &admin_key(dir_a.path())).await;
    let source = imports.path().join("disk.raw");
    std::fs::write(&source, vec![7u8; 3 << 20]).unwrap();
    let registered = a
        .post(
            "/v1/regions/local-1/compute/images",
            json!({"id": "shared", "source": source, "format": "raw", "os": "none"}),
        )
        .await;
    assert_eq!(
        registered.status,
        StatusCode::CREATED,
        "{:#}",
        registered.body
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while a
        .get("/v1/regions/local-1/compute/images/shared")
        .await
        .body["status"]
        != "READY"
    {
        assert!(Instant::now() < deadline, "the import did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stored: Vec<bool> = [dir_a.path(), dir_b.path()]
        .iter()
        .map(|d| d.join("data/images/shared.raw").exists())
        .collect();
    assert_eq!(
        stored.iter().filter(|s| **s).count(),
        1,
        "exactly one replica imported the image: {stored:?}"
    );
    // Hosts fetch it through either replica (on one machine both reach the file; a replica on
    // another machine answers 503 and the agent asks the next URL).
    let credential = std::fs::read_to_string(dir_a.path().join("data/host-credential")).unwrap();
    let http = reqwest::Client::new();
    let mut answers = Vec::new();
    for base in [&base_a, &base_b] {
        let response = http
            .get(format!("{base}/internal/v1/images/shared/content"))
            .bearer_auth(credential.trim())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body = response.bytes().await.unwrap();
        answers.push((status, body.len()));
    }
    assert_eq!(answers, [(200, 3 << 20), (200, 3 << 20)], "{answers:?}");

    // A token revoked through one replica stops on the other within a second.
    let b = Client::login(&base_b, &admin_key(dir_a.path())).await;
    let mut on_a = a.clone();
    on_a.token = b.token.clone();
    assert_eq!(on_a.get(INSTANCES).await.status, StatusCode::OK);
    let revoked = b
        .post(
            "/v1/regions/global/auth/revoke",
            json!({"token": b.token.clone().unwrap()}),
        )
        .await;
    assert_eq!(revoked.body, json!({"revoked": true}));
    b.get(INSTANCES).await.assert_error(401);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    on_a.get(INSTANCES).await.assert_error(401);
}

/// Reads come from each replica's memory: never older than the caller's own acknowledged write
/// on the replica that took it, and at most `stratus_store::SHARED_LAG` older through another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_is_read_back_at_once_where_it_was_made_and_within_the_lag_elsewhere() {
    let replicas = two_replicas("lag").await;
    let (a, b) = (&replicas.a, &replicas.b);
    let deadline = Instant::now() + Duration::from_secs(30);
    while a.post(INSTANCES, micro("lagged")).await.status != StatusCode::CREATED {
        assert!(Instant::now() < deadline, "no host joined");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let lag = stratus_store::SHARED_LAG + Duration::from_millis(500);
    let path = format!("{INSTANCES}/lagged");
    // A watch through B sees every write made through A.
    let typed_b = b.typed();
    let b_instances = typed_b.instances("local-1", "default");
    let mut watch = b_instances
        .watch(&stratus_client::WatchOptions {
            id: Some("lagged".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    // Its listing (the instance as it is) ends with a bookmark before any write is made.
    loop {
        let event = watch.next().await.unwrap().expect("the watch ended");
        if event.event_type == stratus_types::WatchEventType::Bookmark {
            break;
        }
    }
    for round in 0..5 {
        // Both replicas have the instance, and its JSON in a page, in memory.
        for replica in [a, b] {
            assert_eq!(replica.get(&path).await.status, StatusCode::OK);
            assert_eq!(replica.get(INSTANCES).await.status, StatusCode::OK);
        }
        let label = format!("v{round}");
        let patched = a.patch(&path, json!({"labels": {"round": label}})).await;
        assert_eq!(patched.status, StatusCode::OK, "{:#}", patched.body);
        let own = a.get(&path).await;
        assert_eq!(
            own.body["labels"]["round"], label,
            "replica A answered older than the write it acknowledged"
        );
        assert_eq!(own.etag, patched.etag);
        let own_page = a.get(INSTANCES).await;
        assert_eq!(
            own_page.body["instances"][0]["labels"]["round"], label,
            "replica A listed older than the write it acknowledged"
        );
        let written = Instant::now();
        loop {
            let other = b.get(&path).await;
            let other_page = b.get(INSTANCES).await;
            if other.body["labels"]["round"] == label
                && other_page.body["instances"][0]["labels"]["round"] == label
            {
                break;
            }
            assert!(
                written.elapsed() < lag,
                "replica B still answered {:#} after {:?}",
                other.body["labels"],
                written.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        loop {
            let event = tokio::time::timeout(lag, watch.next())
                .await
                .unwrap_or_else(|_| panic!("round {round}: the watch through B heard nothing"))
                .unwrap()
                .expect("the watch ended");
            let labels = event.object.as_ref().map(|i| i.labels.get("round"));
            if labels == Some(Some(label.as_str())) {
                // B reads what A announced when it hears it: the create's own announcement,
                // heard late, shows the instance as it is then (ADDED, with this label).
                assert!(
                    matches!(
                        event.event_type,
                        stratus_types::WatchEventType::Modified
                            | stratus_types::WatchEventType::Added
                    ),
                    "{event:?}"
                );
                break;
            }
        }
    }
    // A deletion through A reaches the watch through B as DELETED with the instance.
    assert!(a.delete(&path).await.status.is_success());
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), watch.next())
            .await
            .expect("the watch through B never heard of the deletion")
            .unwrap()
            .expect("the watch ended");
        if event.event_type == stratus_types::WatchEventType::Deleted {
            assert_eq!(
                event.object.map(|i| i.id.to_string()).as_deref(),
                Some("lagged")
            );
            break;
        }
    }
    // A project renamed through B: B at once, A within the lag.
    let project = "/v1/regions/global/projects/default";
    let renamed = b.patch(project, json!({"displayName": "Renamed"})).await;
    assert_eq!(renamed.status, StatusCode::OK, "{:#}", renamed.body);
    assert_eq!(b.get(project).await.body["displayName"], "Renamed");
    let written = Instant::now();
    while a.get(project).await.body["displayName"] != "Renamed" {
        assert!(written.elapsed() < lag, "replica A never saw the rename");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A request whose client gives up before the answer still does what it asked, with its
/// audit event: what serves it is never dropped halfway (on PostgreSQL, in the middle of a
/// statement, which also cost the connection). Here a cordon waits on its zone's lock, held
/// by another transaction, while its client gives up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cordon_whose_client_gave_up_still_lands_with_its_audit_event() {
    use sqlx::Connection;
    let replicas = two_replicas("impatient").await;
    let a = &replicas.a;
    let host = "/v1/regions/local-1/zones/local-1a/hosts/impatient-host-1";
    let deadline = Instant::now() + Duration::from_secs(30);
    while a.get(host).await.status != StatusCode::OK {
        assert!(Instant::now() < deadline, "the host never registered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut zone = sqlx::PgConnection::connect(&replicas.url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut zone).await.unwrap();
    sqlx::query("SELECT zone FROM placement_zones FOR UPDATE")
        .execute(&mut zone)
        .await
        .unwrap();
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let gave_up = impatient
        .post(format!("{}{host}:cordon", a.base))
        .bearer_auth(a.token.as_deref().unwrap())
        .json(&json!({}))
        .send()
        .await;
    assert!(
        gave_up.as_ref().is_err_and(reqwest::Error::is_timeout),
        "{gave_up:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    sqlx::query("COMMIT").execute(&mut zone).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while a.get(host).await.body["scheduling"] != "CORDONED" {
        assert!(
            Instant::now() < deadline,
            "the cordon was dropped with its client"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let path = format!("{host}:cordon");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let trail = a.get("/v1/regions/global/audit/events?pageSize=500").await;
        let events = trail.body["events"].as_array().cloned().unwrap_or_default();
        if let Some(event) = events.iter().find(|e| e["path"] == path.as_str()) {
            assert_eq!(event["status"], 200, "{event:#}");
            break;
        }
        assert!(Instant::now() < deadline, "the cordon left no audit event");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
