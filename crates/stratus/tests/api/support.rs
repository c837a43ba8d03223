//! A region on a real listener with SQLite in a temp dir and the simulated host, plus a
//! client that speaks to it as a user would.

#![allow(dead_code)]

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use stratus::{Config, Region};

pub const TYPE_SMALL: &str = "/v1/regions/local-1/zones/local-1a/instance-types/e2-small";
pub const TYPE_MICRO: &str = "/v1/regions/local-1/zones/local-1a/instance-types/e2-micro";
pub const INSTANCES: &str = "/v1/regions/local-1/projects/default/compute/instances";

/// Simulator timings short enough for tests, long enough to observe each state.
pub fn fast_config() -> Config {
    let mut config = Config::default();
    config.host.driver = "sim".into();
    config.sim.prepare_ms = 100;
    config.sim.boot_ms = 100;
    config.sim.stop_ms = 50;
    config.sim.pause_ms = 20;
    config.agent.poll_wait_ms = 500;
    config.reconciler.interval_ms = 200;
    config
}

pub struct TestRegion {
    pub region: Option<Region>,
    pub dir: tempfile::TempDir,
    pub client: Client,
}

impl TestRegion {
    pub async fn start() -> Self {
        Self::with_config(fast_config()).await
    }

    pub async fn with_config(config: Config) -> Self {
        Self::listening(config, "127.0.0.1:0").await
    }

    /// A region serving on `listen`.
    pub async fn listening(config: Config, listen: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let region = Region::start(dir.path(), listen, config).await.unwrap();
        let base = format!("http://{}", region.addr);
        let key = std::fs::read_to_string(&region.admin_key_path).unwrap();
        let client = Client::login(&base, key.trim()).await;
        Self {
            region: Some(region),
            dir,
            client,
        }
    }

    pub async fn stop(mut self) {
        if let Some(region) = self.region.take() {
            region.shutdown().await;
        }
    }
}

impl Drop for TestRegion {
    /// Guests outlive their agent by design; a test's guests must not outlive the test.
    fn drop(&mut self) {
        kill_processes_mentioning(&self.dir.path().display().to_string());
    }
}

/// Sends SIGKILL to every process whose command line contains `needle`.
pub fn kill_processes_mentioning(needle: &str) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        if let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline"))
            && String::from_utf8_lossy(&cmdline).contains(needle)
        {
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status();
        }
    }
}

/// Starts `stratus serve` as its own process on a free port with `config`, state in
/// `dir/data`; returns the process and its base URL.
pub async fn spawn_serve(
    dir: &std::path::Path,
    config: &Config,
) -> (tokio::process::Child, String) {
    use tokio::io::AsyncBufReadExt;
    let config_file = dir.join("stratus.toml");
    std::fs::write(&config_file, toml::to_string(config).unwrap()).unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_stratus"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.join("data"))
        .arg("--config")
        .arg(&config_file)
        .env("STRATUS_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    while let Some(line) = lines.next_line().await.unwrap() {
        if let Some(rest) = line.split("serving on ").nth(1) {
            // Keep draining its output so the server never writes into a closed pipe.
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return (child, rest.trim().to_owned());
        }
    }
    panic!("stratus serve exited before serving");
}

/// Starts `stratus agent` named `name` with the simulated driver, joined to `control_planes`
/// with the host credential in `credential`.
pub fn spawn_sim_agent(
    name: &str,
    dir: &std::path::Path,
    control_planes: &[&str],
    credential: &std::path::Path,
) -> tokio::process::Child {
    spawn_sim_agent_with(name, dir, control_planes, credential, &fast_config())
}

/// [`spawn_sim_agent`] with `config` as the agent's config file.
pub fn spawn_sim_agent_with(
    name: &str,
    dir: &std::path::Path,
    control_planes: &[&str],
    credential: &std::path::Path,
    config: &Config,
) -> tokio::process::Child {
    spawn_agent(name, "sim", dir, control_planes, credential, config, &[])
}

/// Starts `stratus agent` named `name` with `driver` and `config`, state under `dir`, joined
/// to `control_planes`; run through `wrapper` (a program and its arguments) when one is given.
pub fn spawn_agent(
    name: &str,
    driver: &str,
    dir: &std::path::Path,
    control_planes: &[&str],
    credential: &std::path::Path,
    config: &Config,
    wrapper: &[&str],
) -> tokio::process::Child {
    let config_file = dir.join("agent.toml");
    std::fs::write(&config_file, toml::to_string(config).unwrap()).unwrap();
    let stratus = env!("CARGO_BIN_EXE_stratus");
    let mut command = match wrapper.split_first() {
        Some((program, args)) => {
            let mut command = tokio::process::Command::new(program);
            command.args(args).arg(stratus);
            command
        }
        None => tokio::process::Command::new(stratus),
    };
    command
        .arg("agent")
        .arg("--control-plane")
        .arg(control_planes.join(","))
        .arg("--credential-file")
        .arg(credential)
        .args(["--driver", driver, "--name", name, "--data-dir"])
        .arg(dir.join("host"))
        .arg("--config")
        .arg(&config_file)
        .env("STRATUS_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// A thin JSON client with a bearer token.
#[derive(Clone)]
pub struct Client {
    pub base: String,
    pub token: Option<String>,
    http: reqwest::Client,
}

/// A response: status, headers of interest, JSON body (Null when empty).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub etag: Option<String>,
    pub request_id: Option<String>,
    pub body: Value,
}

impl Reply {
    /// The `details[0].field` of an error body.
    pub fn field(&self) -> &str {
        self.body["error"]["details"][0]["field"]
            .as_str()
            .unwrap_or("")
    }

    pub fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or("")
    }

    pub fn reason(&self) -> &str {
        self.body["error"]["details"][0]["reason"]
            .as_str()
            .unwrap_or("")
    }

    /// Asserts the contract's error body with `status`, returning self for more checks.
    pub fn assert_error(&self, status: u16) -> &Self {
        assert_eq!(self.status.as_u16(), status, "{:#}", self.body);
        assert_eq!(self.body["error"]["code"], status, "{:#}", self.body);
        assert!(self.body["error"]["message"].is_string(), "{:#}", self.body);
        assert!(self.body["error"]["details"].is_array(), "{:#}", self.body);
        assert!(self.request_id.is_some(), "X-Request-Id missing");
        self
    }
}

impl Client {
    pub fn anonymous(base: &str) -> Self {
        Self {
            base: base.to_owned(),
            token: None,
            http: reqwest::Client::new(),
        }
    }

    /// Signs in with `api_key` through the typed client's token exchange.
    pub async fn login(base: &str, api_key: &str) -> Self {
        let token = stratus_client::Client::new(base)
            .unwrap()
            .exchange_api_key(api_key)
            .await
            .unwrap_or_else(|e| panic!("token exchange at {base}: {e}"));
        let mut client = Self::anonymous(base);
        client.token = Some(token.access_token);
        client
    }

    /// The typed `stratus-client` with this client's endpoint and token, for tests that care
    /// about behaviour rather than the exact JSON on the wire.
    pub fn typed(&self) -> stratus_client::Client {
        let client = stratus_client::Client::new(&self.base).unwrap();
        match &self.token {
            Some(token) => client.with_token(token.clone()),
            None => client,
        }
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        self.try_send(method, path, body, headers)
            .await
            .expect("the server answers")
    }

    /// Like [`Client::send`], but `None` when the connection fails.
    pub async fn try_send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Option<Reply> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.ok()?;
        let status = response.status();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let etag = header("etag");
        let request_id = header("x-request-id");
        let bytes = response.bytes().await.ok()?;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                panic!("not JSON ({status}): {}", String::from_utf8_lossy(&bytes))
            })
        };
        Some(Reply {
            status,
            etag,
            request_id,
            body,
        })
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, None, &[]).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(Method::POST, path, Some(body), &[]).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        self.send(Method::PATCH, path, Some(body), &[]).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(Method::DELETE, path, None, &[]).await
    }

    /// Creates an instance of the small type with `id`; asserts the 201.
    pub async fn create_instance(&self, id: &str) -> Reply {
        let reply = self
            .post(INSTANCES, json!({"id": id, "type": TYPE_SMALL}))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:#}", reply.body);
        reply
    }

    pub async fn action(&self, id: &str, verb: &str) -> Reply {
        self.send(Method::POST, &format!("{INSTANCES}/{id}:{verb}"), None, &[])
            .await
    }

    /// Polls the instance until its status is `want`; panics after `within`.
    pub async fn wait_status(&self, id: &str, want: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        let mut last = Value::Null;
        while Instant::now() < deadline {
            let reply = self.get(&format!("{INSTANCES}/{id}")).await;
            if reply.status == StatusCode::OK {
                if reply.body["lifecycle"]["status"] == want {
                    return reply.body;
                }
                last = reply.body;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("instance {id} did not reach {want} within {within:?}; last seen {last:#}");
    }

    /// Polls the serial console until it contains `needle`; returns the whole reply body.
    pub async fn wait_console(&self, id: &str, needle: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        let mut last = Value::Null;
        while Instant::now() < deadline {
            let reply = self
                .get(&format!("{INSTANCES}/{id}/serialPortOutput"))
                .await;
            if reply.body["contents"]
                .as_str()
                .is_some_and(|c| c.contains(needle))
            {
                return reply.body;
            }
            last = reply.body;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let instance = self.get(&format!("{INSTANCES}/{id}")).await.body;
        let uid = instance["uid"].as_str().unwrap_or_default();
        panic!(
            "the console of {id} never showed {needle:?}; last seen {last:#}\n\
             the instance: {instance:#}\n{}",
            guest_diagnostics(uid)
        );
    }

    /// Polls until the instance answers 404.
    pub async fn wait_gone(&self, id: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            let reply = self.get(&format!("{INSTANCES}/{id}")).await;
            if reply.status == StatusCode::NOT_FOUND {
                reply.assert_error(404);
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("instance {id} was not gone within {within:?}");
    }
}

impl TestRegion {
    /// Claims of a user of `tenant` holding `roles` on the whole organization, valid for ten
    /// minutes from now, as the region's own issuer would make them.
    pub fn user_claims(&self, tenant: &str, roles: &[&str]) -> stratus_types::auth::Claims {
        let issuer = &self.region.as_ref().unwrap().app.issuer;
        let now = chrono::Utc::now().timestamp();
        stratus_types::auth::Claims {
            sub: format!("user-of-{tenant}-{}", roles.join("-")),
            iss: issuer.issuer().to_owned(),
            aud: issuer.audience().to_owned(),
            exp: now + 600,
            iat: now,
            jti: uuid::Uuid::new_v4().to_string(),
            tenant_id: tenant.into(),
            scope: "organization".into(),
            scope_id: tenant.into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            principal_type: "user".into(),
            credential_id: None,
        }
    }

    /// `claims` signed with the region's own key, exactly as given.
    pub fn sign(&self, claims: &stratus_types::auth::Claims) -> String {
        self.region
            .as_ref()
            .unwrap()
            .app
            .issuer
            .sign(claims)
            .unwrap()
    }

    /// The region's base URL.
    pub fn endpoint(&self) -> String {
        self.client.base.clone()
    }

    /// A typed `stratus-client` signed in as the administrator.
    pub fn typed(&self) -> stratus_client::Client {
        self.client.typed()
    }
}

/// What the host knows of a guest whose console shows nothing: its QEMU process and the files
/// in its VM directory (found through the process's command line), for a failure to explain
/// itself.
pub fn guest_diagnostics(uid: &str) -> String {
    let mut out = String::new();
    if uid.is_empty() {
        return "no uid to look for".into();
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return "no /proc".into();
    };
    for entry in entries.flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if !args.iter().any(|a| a == uid) || !args[0].contains("qemu") {
            continue;
        }
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        out.push_str(&format!(
            "QEMU pid {}: {}\n",
            entry.file_name().to_string_lossy(),
            stat.rsplit(')').next().unwrap_or("").trim()
        ));
        let serial = args
            .iter()
            .find_map(|a| a.split("path=").nth(1))
            .map(|p| p.split(',').next().unwrap_or(p).to_owned());
        if let Some(serial) = serial {
            let dir = std::path::Path::new(&serial).parent().unwrap().to_owned();
            for name in ["serial.log", "qemu.log", "exit-code"] {
                let text = std::fs::read(dir.join(name)).unwrap_or_default();
                let tail = &text[text.len().saturating_sub(2000)..];
                out.push_str(&format!(
                    "{name} ({} bytes): {}\n",
                    text.len(),
                    String::from_utf8_lossy(tail)
                ));
            }
        }
    }
    if out.is_empty() {
        out.push_str("no QEMU process runs for this uid");
    }
    out
}
