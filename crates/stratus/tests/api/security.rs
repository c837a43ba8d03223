//! Trust boundaries, tried the way an attacker would: a local user reading the data directory,
//! an administrator's image import reaching for files and services it must not, clients that
//! hold connections open or send what is not HTTP, and requests that bend the contract.

use crate::support::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const IMAGES: &str = "/v1/regions/local-1/compute/images";

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// The attack: a local user reads `stratus.db` (the issuer's private key is in it), the admin
/// key or an imported image. Everything in the data directory is the server's user's only,
/// from creation, and what an older version left open is closed at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_directory_is_private_to_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let first = stratus::Region::start(&data, "127.0.0.1:0", fast_config())
        .await
        .unwrap();
    first.shutdown().await;
    let image_dir = tempfile::tempdir().unwrap();
    let file = image_dir.path().join("disk.raw");
    std::fs::write(&file, vec![0u8; 1 << 20]).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();

    // An older data directory, open to everyone; started again, it becomes private.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    for name in ["stratus.db", "admin-api-key"] {
        std::fs::set_permissions(data.join(name), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let mut config = fast_config();
    config.images.import_dirs = vec![image_dir.path().to_owned()];
    let region = stratus::Region::start(&data, "127.0.0.1:0", config)
        .await
        .unwrap();
    let key = std::fs::read_to_string(&region.admin_key_path).unwrap();
    let admin = Client::login(&format!("http://{}", region.addr), key.trim()).await;
    let registered = admin
        .post(
            IMAGES,
            json!({"id": "private", "source": file, "format": "raw"}),
        )
        .await;
    assert_eq!(
        registered.status,
        StatusCode::CREATED,
        "{:#}",
        registered.body
    );
    wait_image(&admin, "private", "READY").await;
    admin.create_instance("web-1").await;

    assert_eq!(mode(&data), 0o700);
    for entry in walk(&data) {
        let m = mode(&entry);
        assert_eq!(
            m & 0o077,
            0,
            "{} is open to other users ({m:o})",
            entry.display()
        );
    }
    for name in [
        "stratus.db",
        "stratus.db-wal",
        "admin-api-key",
        "host-credential",
        "images/private.raw",
    ] {
        assert_eq!(mode(&data.join(name)), 0o600, "{name}");
    }
    region.shutdown().await;
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if entry.file_type().unwrap().is_dir() {
            found.extend(walk(&path));
        }
        if !entry.file_type().unwrap().is_symlink() {
            found.push(path);
        }
    }
    found
}

async fn wait_image(client: &Client, id: &str, want: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let image = client.get(&format!("{IMAGES}/{id}")).await.body;
        if image["status"] == want {
            return image;
        }
        assert!(
            Instant::now() < deadline,
            "image {id} did not become {want}: {image:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The attack: an image "imported" from `/etc/shadow`, the process environment, the region's own
/// admin key, a link out of the import directory, a qcow2 whose backing file is a host file, or
/// a URL of the host's own services, then attached as a disk. None of it is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_imports_read_only_what_the_region_allows() {
    let imports = tempfile::tempdir().unwrap();
    let inside = imports.path().join("disk.raw");
    std::fs::write(&inside, vec![1u8; 1 << 20]).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", imports.path().join("link.raw")).unwrap();
    let backed = imports.path().join("backed.qcow2");
    let made = std::process::Command::new("qemu-img")
        .args(["create", "-f", "qcow2", "-F", "raw", "-b", "/etc/passwd"])
        .arg(&backed)
        .output()
        .expect("qemu-img (scripts/test.sh installs it)");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    // A web server on this host's loopback, as the region's own API or anything else would be.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = served.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecret")
                .await;
        }
    });

    let mut config = fast_config();
    config.images.import_dirs = vec![imports.path().to_owned()];
    let t = TestRegion::with_config(config).await;
    let admin = t.client.clone();
    let admin_key = t.region.as_ref().unwrap().admin_key_path.clone();
    let escape = format!("{}/../../etc/hostname", imports.path().display());
    let refused_at_once = [
        "/etc/shadow".to_owned(),
        "/proc/self/environ".to_owned(),
        admin_key.display().to_string(),
        imports.path().join("link.raw").display().to_string(),
        escape,
        format!("http://127.0.0.1:{port}/disk.raw"),
        format!("http://[::1]:{port}/disk.raw"),
        "http://169.254.169.254/latest/meta-data".to_owned(),
        "file:///etc/shadow".to_owned(),
    ];
    for (i, source) in refused_at_once.iter().enumerate() {
        let reply = admin
            .post(
                IMAGES,
                json!({"id": format!("steal-{i}"), "source": source, "format": "raw"}),
            )
            .await;
        reply.assert_error(400);
        assert_eq!(reply.field(), "source", "{source}: {:#}", reply.body);
    }
    // A name that resolves to the loopback passes registration (nothing is resolved there) and
    // fails at import, saying why.
    let by_name = admin
        .post(
            IMAGES,
            json!({"id": "by-name", "source": format!("http://localhost:{port}/disk.raw"), "format": "raw"}),
        )
        .await;
    assert_eq!(by_name.status, StatusCode::CREATED, "{:#}", by_name.body);
    let failed = wait_image(&admin, "by-name", "FAILED").await;
    assert!(
        failed["statusMessage"]
            .as_str()
            .unwrap()
            .contains("loopback"),
        "{failed:#}"
    );
    assert_eq!(
        served.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "nothing was fetched"
    );
    // A disk that would read a host file through its backing file is refused at import.
    let backed_reply = admin
        .post(
            IMAGES,
            json!({"id": "backed", "source": backed, "format": "qcow2"}),
        )
        .await;
    assert_eq!(
        backed_reply.status,
        StatusCode::CREATED,
        "{:#}",
        backed_reply.body
    );
    let failed = wait_image(&admin, "backed", "FAILED").await;
    assert!(
        failed["statusMessage"]
            .as_str()
            .unwrap()
            .contains("backing file"),
        "{failed:#}"
    );
    // A file of the import directory is imported, and where it came from is shown to the
    // region's operators only.
    let fine = admin
        .post(
            IMAGES,
            json!({"id": "fine", "source": inside, "format": "raw"}),
        )
        .await;
    assert_eq!(fine.status, StatusCode::CREATED, "{:#}", fine.body);
    let ready = wait_image(&admin, "fine", "READY").await;
    assert_eq!(ready["source"], json!(inside));
    let viewer_key = admin
        .post(
            "/v1/regions/global/iam/apikeys",
            json!({"roles": ["viewer"]}),
        )
        .await;
    let viewer = Client::login(&admin.base, viewer_key.body["secret"].as_str().unwrap()).await;
    let seen = viewer.get(&format!("{IMAGES}/fine")).await;
    assert_eq!(seen.status, StatusCode::OK);
    assert!(seen.body.get("source").is_none(), "{:#}", seen.body);
    let listed = viewer.get(IMAGES).await;
    assert!(
        listed.body["images"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i.get("source").is_none()),
        "{:#}",
        listed.body
    );
    t.stop().await;
}

/// An operator can allow a mirror on this host by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_url_host_is_fetched_from_but_not_redirected_away_from() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut request = [0u8; 1024];
            let n = stream.read(&mut request).await.unwrap_or(0);
            let head = String::from_utf8_lossy(&request[..n]).into_owned();
            if head.starts_with("GET /hop.raw ") {
                // The same server under a name the region was not told to trust.
                let moved = format!(
                    "HTTP/1.1 302 Found\r\nLocation: http://localhost:{port}/d.raw\r\nContent-Length: 0\r\n\r\n"
                );
                let _ = stream.write_all(moved.as_bytes()).await;
                continue;
            }
            let body = vec![3u8; 4096];
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(&body).await;
        }
    });
    let mut config = fast_config();
    config.images.allowed_url_hosts = vec!["127.0.0.1".into()];
    let t = TestRegion::with_config(config).await;
    let reply = t
        .client
        .post(
            IMAGES,
            json!({"id": "mirror", "source": format!("http://127.0.0.1:{port}/d.raw"), "format": "raw"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:#}", reply.body);
    let ready = wait_image(&t.client, "mirror", "READY").await;
    assert_eq!(ready["sizeBytes"], 4096);
    // A redirect is checked like the first URL: an allowed host cannot lead to a loopback name.
    let reply = t
        .client
        .post(
            IMAGES,
            json!({"id": "hop", "source": format!("http://127.0.0.1:{port}/hop.raw"), "format": "raw"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:#}", reply.body);
    let failed = wait_image(&t.client, "hop", "FAILED").await;
    let why = failed["statusMessage"].as_str().unwrap_or_default();
    assert!(why.contains("localhost"), "{failed:#}");
    t.stop().await;
}

/// Opens a raw connection to the region at `base`.
async fn connect(base: &str) -> TcpStream {
    TcpStream::connect(base.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Reads until the peer closes (or `within` passes); returns what was read and whether the
/// peer closed.
async fn read_to_close(stream: &mut TcpStream, within: Duration) -> (Vec<u8>, bool) {
    let mut all = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let mut buf = [0u8; 4096];
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (all, true),
            Ok(Ok(n)) => all.extend_from_slice(&buf[..n]),
            Err(_) => return (all, false),
        }
    }
}

/// The attack: thousands of connections that send nothing, or half a request, until the server
/// runs out of descriptors. Connections are capped and timed out, and the region keeps
/// answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_half_sent_connections_are_closed_and_capped() {
    let mut config = fast_config();
    config.api.max_connections = 40;
    config.api.header_read_timeout_s = 1;
    config.api.idle_timeout_s = 2;
    let t = TestRegion::with_config(config).await;
    let base = t.client.base.clone();

    // Far more idle connections than the cap: the extra ones are closed at once.
    let mut idle = Vec::new();
    for _ in 0..120 {
        idle.push(connect(&base).await);
    }
    let mut closed_at_once = 0;
    for stream in idle.iter_mut().skip(40) {
        if read_to_close(stream, Duration::from_millis(500)).await.1 {
            closed_at_once += 1;
        }
    }
    assert!(
        closed_at_once >= 70,
        "only {closed_at_once} of 80 extra connections were closed"
    );
    // The ones kept are closed when they have sent no request head in time, and then the
    // region answers again.
    let started = Instant::now();
    for stream in idle.iter_mut().take(40) {
        let (_, closed) = read_to_close(stream, Duration::from_secs(5)).await;
        assert!(closed, "an idle connection stayed open");
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(idle);
    let health = Client::anonymous(&base).get("/healthz").await;
    assert_eq!(health.status, StatusCode::OK);

    // Half a request head: closed after the header timeout.
    let mut half = connect(&base).await;
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let (_, closed) = read_to_close(&mut half, Duration::from_secs(4)).await;
    assert!(closed, "a half-sent request kept its connection");

    // A body that never finishes: closed once the connection has been idle too long.
    let token = t.client.token.clone().unwrap();
    let mut slow = connect(&base).await;
    let head = format!(
        "POST {INSTANCES} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"id\""
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    let (_, closed) = read_to_close(&mut slow, Duration::from_secs(6)).await;
    assert!(closed, "a stalled body kept its connection");
    t.stop().await;
}

/// Sends raw bytes and returns the status and JSON body of the answer.
async fn raw_exchange(base: &str, request: &[u8]) -> (u16, Value) {
    let mut stream = connect(base).await;
    stream.write_all(request).await.unwrap();
    let (answer, _) = read_to_close(&mut stream, Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
    let status = head[9..12].parse().unwrap();
    let body = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {text:?}"));
    (status, body)
}

/// Answers that hyper or the body limit give before a handler runs carry the contract's error
/// body too, and JSON bodies are JSON exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_has_the_contract_body() {
    let t = TestRegion::start().await;
    let base = t.client.base.clone();
    let token = t.client.token.clone().unwrap();

    let huge_header = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let (status, body) = raw_exchange(&base, huge_header.as_bytes()).await;
    assert_eq!(status, 431);
    assert_eq!(body["error"]["code"], 431);
    let (status, body) = raw_exchange(&base, b"\x16\x03\x01 this is not http\r\n\r\n").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], 400);

    // A chunked body over the limit is 413, like a declared one.
    let mut chunked = format!(
        "POST {INSTANCES} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    let chunk = vec![b' '; 256 * 1024];
    for _ in 0..5 {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(&chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let (status, body) = raw_exchange(&base, &chunked).await;
    assert_eq!(status, 413, "{body:#}");
    assert_eq!(body["error"]["code"], 413);

    let c = &t.client;
    let jsonx = c
        .send(
            reqwest::Method::POST,
            INSTANCES,
            Some(json!({"type": TYPE_SMALL})),
            &[("content-type", "application/jsonx")],
        )
        .await;
    jsonx.assert_error(400);
    assert_eq!(jsonx.field(), "Content-Type");
    let with_charset = c
        .send(
            reqwest::Method::POST,
            INSTANCES,
            Some(json!({"id": "charset", "type": TYPE_SMALL})),
            &[("content-type", "application/json; charset=utf-8")],
        )
        .await;
    assert_eq!(
        with_charset.status,
        StatusCode::CREATED,
        "{:#}",
        with_charset.body
    );

    // Duplicate keys: {"id": "a", "id": "b"} is refused, not read as "b".
    let http = reqwest::Client::new();
    let duplicate = http
        .post(format!("{base}{INSTANCES}"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"id": "dup-a", "type": "{TYPE_SMALL}", "id": "dup-b"}}"#
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(duplicate.status(), StatusCode::BAD_REQUEST);
    let body: Value = duplicate.json().await.unwrap();
    assert!(
        body["error"]["message"].as_str().unwrap().contains("twice"),
        "{body:#}"
    );

    // Bodies the document marks required are required.
    for (method, path) in [
        (reqwest::Method::POST, "/v1/regions/global/organizations"),
        (
            reqwest::Method::PATCH,
            "/v1/regions/global/iam/apikeys/key-nothing",
        ),
    ] {
        let reply = http
            .request(method, format!("{base}{path}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), StatusCode::BAD_REQUEST, "{path}");
    }
    // An optional body may be left out, but what is sent must be JSON: a form feed is not
    // JSON whitespace.
    let rotate = "/v1/regions/global/iam/apikeys/key-nothing:rotate";
    for body in ["\x0c", "\x0cnull", "\x0b{}"] {
        let reply = http
            .post(format!("{base}{rotate}"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), StatusCode::BAD_REQUEST, "{body:?}");
    }
    t.stop().await;
}

/// The attack: a token signed with the region's key (as a leaked signing key or a bug would
/// allow) that cannot be revoked (no `jti`) or lives for years. Neither is one the region
/// issues, so neither is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn region_tokens_without_jti_or_with_long_lives_are_refused() {
    let t = TestRegion::start().await;
    let now = chrono::Utc::now().timestamp();
    let claims = |jti: &str, exp: i64| {
        let mut claims = t.user_claims("default", &["viewer"]);
        claims.jti = jti.into();
        claims.exp = exp;
        claims
    };
    let mut client = t.client.clone();
    for (case, token) in [
        ("no jti", claims("", now + 300)),
        ("ten years", claims("a-jti", now + 10 * 365 * 86_400)),
    ] {
        client.token = Some(t.sign(&token));
        let reply = client.get(INSTANCES).await;
        reply.assert_error(401);
        assert!(!reply.message().is_empty(), "{case}");
    }
    client.token = Some(t.sign(&claims("a-jti", now + 300)));
    assert_eq!(client.get(INSTANCES).await.status, StatusCode::OK);
    t.stop().await;
}

/// When a guest's metadata service is not there, the proxy QEMU runs for the guest's
/// connection answers it in HTTP, not with its own error text.
#[tokio::test]
async fn the_metadata_proxy_answers_503_when_the_service_is_down() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_stratus"))
        .args(["metadata-proxy", "/nonexistent/metadata.sock"])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    let answer = String::from_utf8_lossy(&output.stdout);
    assert!(answer.starts_with("HTTP/1.0 503 "), "{answer:?}");
    assert!(
        output.stderr.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The attack: instances with half a megabyte of metadata each, so that every host poll and
/// every large list page carries megabytes (the host flapped to REPAIRING, lists took hundreds
/// of megabytes). Polls carry a digest instead of the metadata, and a page stops at 4 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_metadata_keeps_host_polls_and_list_pages_small() {
    let t = TestRegion::start().await;
    let c = &t.client;
    let big = "m".repeat(500 * 1024);
    for i in 0..12 {
        let reply = c
            .post(
                INSTANCES,
                json!({"id": format!("fat-{i:02}"), "type": "/v1/regions/local-1/zones/local-1a/instance-types/e2-micro",
                       "instanceMetadata": [{"key": "user-data", "value": big}]}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:#}", reply.message());
    }
    c.wait_status("fat-11", "RUNNING", Duration::from_secs(20))
        .await;

    // A host's poll: what an agent downloads on every change.
    let app = &t.region.as_ref().unwrap().app;
    let host = stratus_store::Store::list_hosts(app.store.as_ref())
        .await
        .unwrap()[0]
        .id;
    let credential = std::fs::read_to_string(t.dir.path().join("host-credential")).unwrap();
    let poll = reqwest::Client::new()
        .get(format!("{}/internal/v1/hosts/{host}/assignments", c.base))
        .bearer_auth(credential.trim())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(
        poll.len() < 64 * 1024,
        "a poll of 12 instances carries {} bytes",
        poll.len()
    );

    // A page asks for 500 and stops at 4 MiB; the pages together hold every instance once.
    let mut seen = Vec::new();
    let mut path = format!("{INSTANCES}?pageSize=500");
    loop {
        let page = c.get(&path).await;
        assert_eq!(page.status, StatusCode::OK);
        let size = serde_json::to_vec(&page.body).unwrap().len();
        assert!(
            size <= 4 * 1024 * 1024 + 64 * 1024,
            "a page of {size} bytes"
        );
        for instance in page.body["instances"].as_array().unwrap() {
            seen.push(instance["id"].as_str().unwrap().to_owned());
        }
        match page.body["nextPageToken"].as_str() {
            Some(token) => path = format!("{INSTANCES}?pageSize=500&pageToken={token}"),
            None => break,
        }
    }
    let expected: Vec<String> = (0..12).map(|i| format!("fat-{i:02}")).collect();
    assert_eq!(seen, expected);
    // The host never went silent: everything is RUNNING, and creates go on.
    let listed = c.get(&format!("{INSTANCES}?pageSize=5")).await;
    for instance in listed.body["instances"].as_array().unwrap() {
        assert_eq!(instance["lifecycle"]["status"], "RUNNING");
    }
    c.create_instance("after").await;
    t.stop().await;
}
