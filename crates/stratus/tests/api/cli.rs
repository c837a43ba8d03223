//! The `stratus` command-line client, run as a user runs it: the built binary against a region,
//! with its own config directory.

use crate::support::*;
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Instant;
use stratus_types::InstanceStatus;

/// A user's shell: a config directory of its own, signed in or not.
struct Shell {
    config_home: tempfile::TempDir,
}

/// What a command printed and how it ended.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:#?}"))
    }

    fn assert_ok(&self) -> &Self {
        assert_eq!(self.code, 0, "{self:#?}");
        self
    }

    /// The `id`s of a JSON list printed on standard output.
    fn ids(&self) -> Vec<String> {
        let list = self.json();
        let items = list
            .as_array()
            .unwrap_or_else(|| panic!("not a list: {self:#?}"));
        items
            .iter()
            .filter_map(|item| item["id"].as_str().map(str::to_owned))
            .collect()
    }

    /// The API refused with `status`: the API-error exit code and one line on standard error.
    fn assert_api_error(&self, status: u16) -> &Self {
        assert_eq!(self.code, stratus::cli::EXIT_API_ERROR, "{self:#?}");
        assert!(self.stdout.is_empty(), "{self:#?}");
        assert_eq!(self.stderr.lines().count(), 1, "one line: {self:#?}");
        assert!(self.stderr.contains(&format!("HTTP {status}")), "{self:#?}");
        self
    }
}

impl Shell {
    fn new() -> Self {
        Self {
            config_home: tempfile::tempdir().unwrap(),
        }
    }

    /// `stratus login` against `region`'s administrator key.
    async fn signed_in(region: &TestRegion) -> Self {
        let shell = Self::new();
        let key = region.dir.path().join("admin-api-key");
        shell
            .run(&[
                "login",
                "--endpoint",
                &region.endpoint(),
                "--api-key-file",
                key.to_str().unwrap(),
            ])
            .await
            .assert_ok();
        shell
    }

    fn profiles_file(&self) -> PathBuf {
        self.config_home.path().join("stratus/profiles.toml")
    }

    /// Makes `profile`'s cached token look expired, so the next command renews it.
    fn expire_token(&self, profile: &str) {
        let path = self.profiles_file();
        let mut file: toml::Table =
            toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let entry = file["profiles"][profile].as_table_mut().unwrap();
        entry.insert("access-token".into(), "expired-token".into());
        entry.insert("token-expires-at".into(), toml::Value::Integer(1));
        std::fs::write(&path, toml::to_string(&file).unwrap()).unwrap();
    }

    /// Runs `stratus ARGS` with piped output (so JSON is the default format).
    async fn run(&self, args: &[&str]) -> Run {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_stratus"))
            .args(args)
            .env("XDG_CONFIG_HOME", self.config_home.path())
            .env_remove("STRATUS_PROFILE")
            .env_remove("STRATUS_PROJECT")
            .output()
            .await
            .unwrap();
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

#[tokio::test]
async fn cli_login_saves_a_private_profile_and_create_wait_shows_each_status_until_running() {
    // Each state lasts several polls, so none can slip between two of them.
    let mut config = fast_config();
    config.sim.prepare_ms = 800;
    config.sim.boot_ms = 800;
    let region = TestRegion::with_config(config).await;
    let shell = Shell::signed_in(&region).await;
    let mode = std::fs::metadata(shell.profiles_file())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the profile holds secrets");

    let started = Instant::now();
    let run = shell
        .run(&[
            "instances",
            "create",
            "web-1",
            "--type",
            "e2-small",
            "--image",
            "stratus-guest",
            "--label",
            "tier=web",
            "--wait",
        ])
        .await;
    run.assert_ok();
    eprintln!("create --wait took {:?}", started.elapsed());
    assert_eq!(run.json()["lifecycle"]["status"], "RUNNING", "{run:#?}");
    let changes: Vec<&str> = run
        .stderr
        .lines()
        .filter_map(|line| line.split_whitespace().nth(2))
        .collect();
    assert_eq!(
        changes,
        ["PROVISIONING", "STAGING", "RUNNING"],
        "each status change is shown once: {run:#?}"
    );
    // What the CLI says is what the API holds.
    let instance = region
        .typed()
        .instances("local-1", "default")
        .get("web-1")
        .await
        .unwrap();
    assert_eq!(instance.lifecycle.status, InstanceStatus::Running);
    assert_eq!(instance.labels.get("tier"), Some("web"));
    assert_eq!(
        instance.disks[0].source.as_deref(),
        Some("/v1/regions/local-1/compute/images/stratus-guest")
    );

    let list = shell.run(&["instances", "list"]).await;
    list.assert_ok();
    let listed = list.json();
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["id"].as_str())
        .collect();
    assert_eq!(ids, ["web-1"]);
    let yaml = shell
        .run(&["instances", "get", "web-1", "-o", "yaml"])
        .await;
    yaml.assert_ok();
    assert!(yaml.stdout.contains("status: RUNNING"), "{yaml:#?}");
    let table = shell.run(&["instances", "list", "-o", "table"]).await;
    let header = table.stdout.lines().next().unwrap_or_default();
    assert!(
        header.starts_with("ID") && header.contains("STATUS"),
        "{table:#?}"
    );
    assert!(table.stdout.contains("web-1") && table.stdout.contains("RUNNING"));
    region.stop().await;
}

#[tokio::test]
async fn cli_bad_type_prints_one_line_naming_the_field_and_exits_with_the_api_error_code() {
    let region = TestRegion::start().await;
    let shell = Shell::signed_in(&region).await;
    let run = shell
        .run(&["instances", "create", "--type", "no-such-type"])
        .await;
    assert_eq!(run.code, stratus::cli::EXIT_API_ERROR, "{run:#?}");
    assert!(run.stdout.is_empty(), "{run:#?}");
    assert_eq!(run.stderr.lines().count(), 1, "one line: {run:#?}");
    assert!(run.stderr.contains("field type"), "{run:#?}");
    assert!(run.stderr.contains("no-such-type"), "{run:#?}");
    assert!(
        run.stderr.contains("e2-small"),
        "says what exists: {run:#?}"
    );
    region.stop().await;
}

#[tokio::test]
async fn cli_wait_that_runs_out_of_time_exits_with_the_timeout_code() {
    let mut config = fast_config();
    config.sim.boot_ms = 5_000;
    let region = TestRegion::with_config(config).await;
    let shell = Shell::signed_in(&region).await;
    let run = shell
        .run(&[
            "instances",
            "create",
            "slow-1",
            "--type",
            "e2-micro",
            "--wait",
            "--timeout",
            "1",
        ])
        .await;
    assert_eq!(run.code, stratus::cli::EXIT_TIMEOUT, "{run:#?}");
    assert!(
        run.stderr.contains("timed out after 1s") && run.stderr.contains("RUNNING"),
        "{run:#?}"
    );
    region.stop().await;
}

#[tokio::test]
async fn cli_usage_errors_exit_with_the_usage_code() {
    let shell = Shell::new();
    let not_signed_in = shell.run(&["instances", "list"]).await;
    assert_eq!(
        not_signed_in.code,
        stratus::cli::EXIT_USAGE,
        "{not_signed_in:#?}"
    );
    assert!(
        not_signed_in.stderr.contains("stratus login"),
        "says what to do: {not_signed_in:#?}"
    );
    let bad_flag = shell.run(&["instances", "list", "--no-such-flag"]).await;
    assert_eq!(bad_flag.code, stratus::cli::EXIT_USAGE, "{bad_flag:#?}");
    let missing_type = shell.run(&["instances", "create"]).await;
    assert_eq!(
        missing_type.code,
        stratus::cli::EXIT_USAGE,
        "{missing_type:#?}"
    );
    assert!(missing_type.stderr.contains("--type"), "{missing_type:#?}");
}

#[tokio::test]
async fn cli_ssh_key_and_user_data_files_fill_the_instance_metadata() {
    let region = TestRegion::start().await;
    let shell = Shell::signed_in(&region).await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("id_ed25519.pub");
    std::fs::write(&key, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA alice@laptop\n").unwrap();
    let user_data = dir.path().join("user-data");
    std::fs::write(&user_data, "#cloud-config\nhostname: web\n").unwrap();
    shell
        .run(&[
            "instances",
            "create",
            "meta-1",
            "--type",
            "e2-micro",
            "--ssh-key",
            key.to_str().unwrap(),
            "--ssh-user",
            "alice",
            "--user-data",
            user_data.to_str().unwrap(),
            "--metadata",
            "role=web",
        ])
        .await
        .assert_ok();
    let instance = region
        .typed()
        .instances("local-1", "default")
        .get("meta-1")
        .await
        .unwrap();
    let metadata: Vec<(&str, &str)> = instance
        .instance_metadata
        .iter()
        .map(|m| (m.key.as_str(), m.value.as_str()))
        .collect();
    assert_eq!(
        metadata,
        [
            ("role", "web"),
            (
                "ssh-keys",
                "alice:ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA alice@laptop\n"
            ),
            ("user-data", "#cloud-config\nhostname: web\n"),
        ]
    );
    let missing = shell
        .run(&[
            "instances",
            "create",
            "--type",
            "e2-micro",
            "--ssh-key",
            "/no/such/key",
        ])
        .await;
    assert_eq!(missing.code, stratus::cli::EXIT_USAGE, "{missing:#?}");
    assert!(missing.stderr.contains("/no/such/key"), "{missing:#?}");
    region.stop().await;
}

#[tokio::test]
async fn cli_actions_and_delete_wait_for_their_target_state() {
    let region = TestRegion::start().await;
    let shell = Shell::signed_in(&region).await;
    let typed = region.typed();
    let instances = typed.instances("local-1", "default");
    shell
        .run(&[
            "instances",
            "create",
            "act-1",
            "--type",
            "e2-micro",
            "--wait",
        ])
        .await
        .assert_ok();
    for (verb, want) in [
        ("stop", "TERMINATED"),
        ("start", "RUNNING"),
        ("suspend", "SUSPENDED"),
        ("resume", "RUNNING"),
        ("reboot", "RUNNING"),
    ] {
        let run = shell.run(&["instances", verb, "act-1", "--wait"]).await;
        run.assert_ok();
        assert_eq!(run.json()["lifecycle"]["status"], want, "{verb}: {run:#?}");
        assert_eq!(
            instances
                .get("act-1")
                .await
                .unwrap()
                .lifecycle
                .status
                .as_str(),
            want
        );
    }
    // An action that makes no sense now is the API's 409, with exit code 1.
    let run = shell.run(&["instances", "resume", "act-1"]).await;
    assert_eq!(run.code, stratus::cli::EXIT_API_ERROR, "{run:#?}");
    assert!(run.stderr.contains("409"), "{run:#?}");

    let update = shell
        .run(&[
            "instances",
            "update",
            "act-1",
            "--display-name",
            "Act one",
            "--label",
            "env=dev",
        ])
        .await;
    update.assert_ok();
    assert_eq!(update.json()["displayName"], "Act one");
    assert_eq!(update.json()["labels"]["env"], "dev");

    // The console is text even when piped; JSON with its offsets only when asked for.
    let console = shell.run(&["instances", "console", "act-1"]).await;
    console.assert_ok();
    assert!(
        console.stdout.contains("act-1 login:"),
        "the simulated guest's boot log: {console:#?}"
    );
    let window = shell
        .run(&["instances", "console", "act-1", "-o", "json"])
        .await;
    window.assert_ok();
    assert_eq!(window.json()["start"], 0);
    assert!(window.json()["next"].as_u64().unwrap() > 0);

    shell
        .run(&["instances", "delete", "act-1", "--wait"])
        .await
        .assert_ok();
    let gone = instances.get("act-1").await.unwrap_err();
    assert_eq!(gone.status(), Some(404), "{gone}");
    region.stop().await;
}

#[tokio::test]
async fn cli_renews_an_expired_token_from_the_stored_key() {
    let region = TestRegion::start().await;
    let shell = Shell::signed_in(&region).await;
    let path = shell.profiles_file();
    shell.expire_token("default");

    shell.run(&["instances", "list"]).await.assert_ok();
    let renewed: toml::Table = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let profile = &renewed["profiles"]["default"];
    assert_ne!(profile["access-token"].as_str(), Some("expired-token"));
    assert!(profile["token-expires-at"].as_integer().unwrap() > 1);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    region.stop().await;
}

#[tokio::test]
async fn cli_catalog_projects_profiles_and_completions() {
    let region = TestRegion::start().await;
    let shell = Shell::signed_in(&region).await;
    let types = shell.run(&["instance-types", "list"]).await;
    types.assert_ok();
    assert!(
        types
            .json()
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == "e2-small"),
        "{types:#?}"
    );
    let images = shell.run(&["images", "get", "stratus-guest"]).await;
    images.assert_ok();
    assert_eq!(images.json()["status"], "READY");
    let created = shell
        .run(&["projects", "create", "team-a", "--organization", "default"])
        .await;
    created.assert_ok();
    let projects = shell.run(&["projects", "list"]).await;
    let ids: Vec<String> = projects
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(ids.contains(&"team-a".to_owned()), "{projects:#?}");
    // --project picks the project per call; `profiles set` changes the default.
    shell
        .run(&[
            "instances",
            "create",
            "a-1",
            "--type",
            "e2-micro",
            "--project",
            "team-a",
        ])
        .await
        .assert_ok();
    shell
        .run(&["profiles", "set", "--project", "team-a"])
        .await
        .assert_ok();
    let listed = shell.run(&["instances", "list"]).await;
    assert_eq!(listed.json()[0]["id"], "a-1", "{listed:#?}");
    let profiles = shell.run(&["profiles", "list"]).await;
    assert!(profiles.stdout.contains("* default") && profiles.stdout.contains("project=team-a"));

    let completions = shell.run(&["completions", "bash"]).await;
    completions.assert_ok();
    assert!(completions.stdout.contains("instances") && completions.stdout.contains("--wait"));
    region.stop().await;
}

#[tokio::test]
async fn cli_prints_a_table_on_a_terminal_and_json_when_piped() {
    let region = TestRegion::start().await;
    let shell = Shell::signed_in(&region).await;
    shell
        .run(&[
            "instances",
            "create",
            "tty-1",
            "--type",
            "e2-micro",
            "--wait",
        ])
        .await
        .assert_ok();
    // `script` gives the command a terminal as its standard output.
    let command = format!("{} instances list", env!("CARGO_BIN_EXE_stratus"));
    let output = tokio::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("XDG_CONFIG_HOME", shell.config_home.path())
        .env_remove("STRATUS_PROFILE")
        .output()
        .await
        .expect("script (util-linux) runs");
    let screen = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{screen}");
    let mut lines = screen.lines().filter(|l| !l.trim().is_empty());
    let header = lines.next().unwrap_or_default();
    assert!(
        header.starts_with("ID") && header.contains("STATUS") && header.contains("TYPE"),
        "{screen}"
    );
    let row = lines.next().unwrap_or_default();
    assert!(
        row.starts_with("tty-1") && row.contains("RUNNING") && row.contains("e2-micro"),
        "{screen}"
    );
    let piped = shell.run(&["instances", "list"]).await;
    assert_eq!(piped.json()[0]["id"], "tty-1");
    region.stop().await;
}

#[tokio::test]
async fn cli_wait_outlasting_its_token_renews_it_from_the_key() {
    let mut config = fast_config();
    config.auth.token_ttl_s = 2;
    // Each status change comes after the token has run out, so the read that follows it
    // needs a renewed token (a waiting read is authenticated when it is sent).
    config.sim.prepare_ms = 3_000;
    config.sim.boot_ms = 3_000;
    let region = TestRegion::with_config(config).await;
    let shell = Shell::signed_in(&region).await;
    let started = chrono::Utc::now().timestamp();
    let run = shell
        .run(&[
            "instances",
            "create",
            "long-1",
            "--type",
            "e2-micro",
            "--wait",
        ])
        .await;
    run.assert_ok();
    assert_eq!(run.json()["lifecycle"]["status"], "RUNNING", "{run:#?}");
    // The token saved last was minted during the six-second wait, not at its start.
    let file: toml::Table =
        toml::from_str(&std::fs::read_to_string(shell.profiles_file()).unwrap()).unwrap();
    let expires_at = file["profiles"]["default"]["token-expires-at"]
        .as_integer()
        .unwrap();
    assert!(
        expires_at > started + 4,
        "token renewed during the wait: expires {expires_at}, wait started {started}"
    );
    region.stop().await;
}

#[tokio::test]
async fn cli_images_create_wait_ends_ready_or_fails_with_the_failed_code() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = fast_config();
    config.images.import_dirs = vec![dir.path().to_owned()];
    let region = TestRegion::with_config(config).await;
    let shell = Shell::signed_in(&region).await;
    let file = dir.path().join("disk.raw");
    std::fs::write(&file, vec![0u8; 1 << 20]).unwrap();
    let sha256 = "30e14955ebf1352266dc2ff8067e68104607e750abb9d3b36582b8af909fcb58";
    let source = file.to_str().unwrap();
    let ready = shell
        .run(&[
            "images", "create", "blank", "--source", source, "--format", "raw", "--sha256", sha256,
            "--os", "none", "--wait",
        ])
        .await;
    ready.assert_ok();
    assert_eq!(ready.json()["status"], "READY", "{ready:#?}");
    assert_eq!(ready.json()["sha256"], sha256);

    let wrong = "0".repeat(64);
    let failed = shell
        .run(&[
            "images", "create", "broken", "--source", source, "--format", "raw", "--sha256",
            &wrong, "--wait",
        ])
        .await;
    assert_eq!(failed.code, stratus::cli::EXIT_FAILED, "{failed:#?}");
    assert_eq!(failed.json()["status"], "FAILED", "{failed:#?}");
    assert!(failed.stderr.contains("failed to import"), "{failed:#?}");

    shell.run(&["images", "delete", "blank"]).await.assert_ok();
    let gone = shell.run(&["images", "get", "blank"]).await;
    assert_eq!(gone.code, stratus::cli::EXIT_API_ERROR, "{gone:#?}");
    assert!(gone.stderr.contains("404"), "{gone:#?}");
    region.stop().await;
}

#[tokio::test]
async fn cli_login_to_a_bad_endpoint_says_why() {
    let shell = Shell::new();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    std::fs::write(&key, "stratus-key").unwrap();
    let key = key.to_str().unwrap();
    let not_a_url = shell
        .run(&[
            "login",
            "--endpoint",
            "127.0.0.1:8080",
            "--api-key-file",
            key,
        ])
        .await;
    assert_eq!(not_a_url.code, stratus::cli::EXIT_USAGE, "{not_a_url:#?}");
    assert!(not_a_url.stderr.contains("http://"), "{not_a_url:#?}");
    let nobody = shell
        .run(&[
            "login",
            "--endpoint",
            "http://127.0.0.1:1",
            "--api-key-file",
            key,
        ])
        .await;
    assert_eq!(nobody.code, stratus::cli::EXIT_API_ERROR, "{nobody:#?}");
    assert!(
        nobody.stderr.contains("cannot reach") && nobody.stderr.contains("refused"),
        "{nobody:#?}"
    );
    assert!(!shell.profiles_file().exists(), "nothing saved");
}

#[tokio::test]
async fn cli_api_keys_make_a_second_profile_and_logout_revokes_its_token() {
    let region = TestRegion::start().await;
    let shell = Shell::signed_in(&region).await;
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("ci-key");
    let created = shell
        .run(&[
            "api-keys",
            "create",
            "--role",
            "member",
            "--display-name",
            "ci",
            "--secret-file",
            secret_file.to_str().unwrap(),
        ])
        .await;
    created.assert_ok();
    let key_id = created.json()["id"].as_str().unwrap().to_owned();
    assert!(
        created.json().get("secret").is_none(),
        "secret kept out of the output"
    );
    let mode = std::fs::metadata(&secret_file)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    shell
        .run(&[
            "login",
            "--endpoint",
            &region.endpoint(),
            "--api-key-file",
            secret_file.to_str().unwrap(),
            "--profile",
            "ci",
        ])
        .await
        .assert_ok();
    shell
        .run(&["instances", "list", "--profile", "ci"])
        .await
        .assert_ok();
    let listed = shell
        .run(&["api-keys", "list", "--profile", "default"])
        .await;
    listed.assert_ok();
    assert!(
        listed
            .json()
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["id"] == key_id.as_str()),
        "{listed:#?}"
    );
    let renamed = shell
        .run(&[
            "api-keys",
            "update",
            &key_id,
            "--display-name",
            "ci runner",
            "--profile",
            "default",
        ])
        .await;
    renamed.assert_ok();
    assert_eq!(renamed.json()["displayName"], "ci runner");

    // logout revokes the cached token and forgets the profile.
    let file: toml::Table =
        toml::from_str(&std::fs::read_to_string(shell.profiles_file()).unwrap()).unwrap();
    let ci_token = file["profiles"]["ci"]["access-token"]
        .as_str()
        .unwrap()
        .to_owned();
    shell.run(&["logout", "--profile", "ci"]).await.assert_ok();
    let introspected = region.typed().introspect_token(&ci_token).await.unwrap();
    assert!(!introspected.active, "the token was revoked");
    let gone = shell.run(&["instances", "list", "--profile", "ci"]).await;
    assert_eq!(gone.code, stratus::cli::EXIT_USAGE, "{gone:#?}");

    let rotated = shell
        .run(&["api-keys", "rotate", &key_id, "--profile", "default"])
        .await;
    rotated.assert_ok();
    let new_secret = rotated.json()["secret"].as_str().unwrap().to_owned();
    assert!(rotated.stderr.contains("not shown again"), "{rotated:#?}");
    let old_secret = std::fs::read_to_string(&secret_file).unwrap();
    assert_ne!(old_secret.trim(), new_secret);
    shell
        .run(&["api-keys", "delete", &key_id, "--profile", "default"])
        .await
        .assert_ok();
    let deleted = shell
        .run(&["api-keys", "get", &key_id, "--profile", "default"])
        .await;
    assert_eq!(deleted.code, stratus::cli::EXIT_API_ERROR, "{deleted:#?}");
    region.stop().await;
}

#[tokio::test]
async fn cli_service_account_signs_in_with_client_credentials_and_its_create_is_audited() {
    let region = TestRegion::start().await;
    let shell = Shell::signed_in(&region).await;
    let created = shell
        .run(&[
            "service-accounts",
            "create",
            "--role",
            "member",
            "--display-name",
            "deployer",
            "--description",
            "ships web servers",
        ])
        .await;
    created.assert_ok();
    let account = created.json();
    let account_id = account["id"].as_str().unwrap().to_owned();
    let client_id = account["clientId"].as_str().unwrap().to_owned();
    assert_eq!(
        account["roles"],
        serde_json::json!(["member"]),
        "{created:#?}"
    );
    assert_eq!(account["description"], "ships web servers");

    // The first credential's secret goes to a private file, not to the output.
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("deployer-secret");
    let credential = shell
        .run(&[
            "service-accounts",
            "credentials",
            "create",
            &account_id,
            "--expires-in",
            "1h",
            "--secret-file",
            secret_file.to_str().unwrap(),
        ])
        .await;
    credential.assert_ok();
    assert!(
        credential.json().get("clientSecret").is_none(),
        "secret kept out of the output: {credential:#?}"
    );
    assert_eq!(credential.json()["clientId"], client_id.as_str());
    let expires_at =
        chrono::DateTime::parse_from_rfc3339(credential.json()["expiresAt"].as_str().unwrap())
            .unwrap();
    let in_an_hour = chrono::Utc::now() + chrono::Duration::hours(1);
    assert!(
        (expires_at.with_timezone(&chrono::Utc) - in_an_hour)
            .num_seconds()
            .abs()
            < 60,
        "--expires-in 1h: {credential:#?}"
    );
    let mode = std::fs::metadata(&secret_file)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(
        credential
            .stderr
            .contains(&format!("--client-id {client_id}")),
        "says how to sign in: {credential:#?}"
    );

    // A second profile signs in as the account and creates an instance.
    shell
        .run(&[
            "login",
            "--endpoint",
            &region.endpoint(),
            "--client-id",
            &client_id,
            "--client-secret-file",
            secret_file.to_str().unwrap(),
            "--profile",
            "robot",
        ])
        .await
        .assert_ok();
    // login made robot the current profile; the administrator goes back to the default one.
    shell.run(&["profiles", "use", "default"]).await.assert_ok();
    let file: toml::Table =
        toml::from_str(&std::fs::read_to_string(shell.profiles_file()).unwrap()).unwrap();
    let robot = &file["profiles"]["robot"];
    assert_eq!(robot["client-id"].as_str(), Some(client_id.as_str()));
    assert!(robot.get("api-key").is_none(), "{robot:#?}");
    let made = shell
        .run(&[
            "instances",
            "create",
            "robo-1",
            "--type",
            "e2-micro",
            "--profile",
            "robot",
        ])
        .await;
    made.assert_ok();
    assert_eq!(made.json()["id"], "robo-1");

    // The administrator sees the create in the audit trail, made by the account.
    let audit = shell.run(&["audit", "list", "-o", "json"]).await;
    audit.assert_ok();
    let events = audit.json();
    let create = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| {
            e["method"] == "POST"
                && e["path"] == "/v1/regions/local-1/projects/default/compute/instances"
        })
        .unwrap_or_else(|| panic!("the create is audited: {audit:#?}"));
    assert_eq!(create["principal"], client_id.as_str(), "{create:#?}");
    assert_eq!(create["principalType"], "service_account");
    assert_eq!(create["status"], 201);
    assert!(!create["requestId"].as_str().unwrap().is_empty());
    let latest = shell.run(&["audit", "list", "--limit", "1"]).await;
    latest.assert_ok();
    assert_eq!(latest.json().as_array().unwrap().len(), 1, "{latest:#?}");
    let table = shell.run(&["audit", "list", "-o", "table"]).await;
    table.assert_ok();
    let header = table.stdout.lines().next().unwrap_or_default();
    for column in [
        "TIME",
        "PRINCIPAL",
        "METHOD",
        "PATH",
        "STATUS",
        "REQUEST ID",
    ] {
        assert!(header.contains(column), "{column}: {table:#?}");
    }
    assert!(
        table
            .stdout
            .lines()
            .any(|l| l.contains(&client_id) && l.contains("POST") && l.contains("201")),
        "{table:#?}"
    );

    // The robot profile renews its expired token through the client_credentials grant.
    shell.expire_token("robot");
    shell
        .run(&["instances", "get", "robo-1", "--profile", "robot"])
        .await
        .assert_ok();
    let file: toml::Table =
        toml::from_str(&std::fs::read_to_string(shell.profiles_file()).unwrap()).unwrap();
    assert_ne!(
        file["profiles"]["robot"]["access-token"].as_str(),
        Some("expired-token")
    );

    // Four more secrets, printed once each; a sixth active one is refused in one line.
    for _ in 0..4 {
        let more = shell
            .run(&["service-accounts", "credentials", "create", &account_id])
            .await;
        more.assert_ok();
        assert!(more.json()["clientSecret"].as_str().is_some(), "{more:#?}");
        assert!(more.stderr.contains("not shown again"), "{more:#?}");
    }
    let sixth = shell
        .run(&["service-accounts", "credentials", "create", &account_id])
        .await;
    sixth.assert_api_error(409);
    assert!(
        sixth
            .stderr
            .contains("at most 5 active credentials; delete one first"),
        "{sixth:#?}"
    );
    assert!(!sixth.stderr.contains("stc_"), "no secret in the error");

    let listed = shell
        .run(&["service-accounts", "credentials", "list", &account_id])
        .await;
    listed.assert_ok();
    let credentials = listed.json();
    let credentials = credentials.as_array().unwrap();
    assert_eq!(credentials.len(), 5, "{listed:#?}");
    assert!(credentials.iter().all(|c| c.get("clientSecret").is_none()));
    let first = credential.json()["id"].as_str().unwrap().to_owned();
    let got = shell
        .run(&[
            "service-accounts",
            "credentials",
            "get",
            &account_id,
            &first,
        ])
        .await;
    got.assert_ok();
    assert_eq!(got.json()["status"], "active");

    let accounts = shell.run(&["service-accounts", "list"]).await;
    accounts.assert_ok();
    assert!(accounts.ids().contains(&account_id), "{accounts:#?}");
    let renamed = shell
        .run(&[
            "service-accounts",
            "update",
            &account_id,
            "--display-name",
            "deploy bot",
        ])
        .await;
    renamed.assert_ok();
    assert_eq!(renamed.json()["displayName"], "deploy bot");
    let shown = shell
        .run(&["service-accounts", "get", &account_id, "-o", "yaml"])
        .await;
    shown.assert_ok();
    assert!(
        shown.stdout.contains("displayName: deploy bot"),
        "{shown:#?}"
    );

    // Once the credential the robot signed in with is deleted, its next renewal is refused
    // (a token already minted runs out within its lifetime).
    shell
        .run(&[
            "service-accounts",
            "credentials",
            "delete",
            &account_id,
            &first,
        ])
        .await
        .assert_ok();
    shell.expire_token("robot");
    let refused = shell
        .run(&["instances", "list", "--profile", "robot"])
        .await;
    refused.assert_api_error(401);
    let secret = std::fs::read_to_string(&secret_file).unwrap();
    assert!(
        !refused.stderr.contains(secret.trim()),
        "no secret in errors"
    );
    shell
        .run(&["service-accounts", "delete", &account_id])
        .await
        .assert_ok();
    shell
        .run(&["service-accounts", "get", &account_id])
        .await
        .assert_api_error(404);
    region.stop().await;
}

#[tokio::test]
async fn cli_client_credential_flags_that_cannot_work_are_usage_errors() {
    let shell = Shell::new();
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty-secret");
    std::fs::write(&empty, "\n").unwrap();
    let empty = empty.to_str().unwrap();
    for args in [
        // A client id needs its secret, and excludes an API key.
        &[
            "login",
            "--endpoint",
            "http://127.0.0.1:1",
            "--client-id",
            "bot@default.iam",
        ][..],
        &[
            "login",
            "--endpoint",
            "http://127.0.0.1:1",
            "--client-id",
            "bot@default.iam",
            "--client-secret-file",
            empty,
            "--api-key-file",
            empty,
        ],
        &[
            "service-accounts",
            "credentials",
            "create",
            "bot",
            "--expires-in",
            "soon",
        ],
        &[
            "service-accounts",
            "credentials",
            "create",
            "bot",
            "--expires-in",
            "1h",
            "--expires-at",
            "2030-01-01T00:00:00Z",
        ],
        &["audit", "list", "--limit", "many"],
    ] {
        let run = shell.run(args).await;
        assert_eq!(run.code, stratus::cli::EXIT_USAGE, "{args:?}: {run:#?}");
    }
    let run = shell
        .run(&[
            "login",
            "--endpoint",
            "http://127.0.0.1:1",
            "--client-id",
            "bot@default.iam",
            "--client-secret-file",
            empty,
        ])
        .await;
    assert_eq!(run.code, stratus::cli::EXIT_USAGE, "{run:#?}");
    assert!(run.stderr.contains("is empty"), "{run:#?}");
    assert!(!shell.profiles_file().exists(), "nothing saved");
}

#[tokio::test]
async fn cli_quotas_set_and_show_limits_next_to_usage() {
    let region = TestRegion::start().await;
    let shell = Shell::signed_in(&region).await;
    shell
        .run(&["instances", "create", "q-1", "--type", "e2-small"])
        .await
        .assert_ok();
    let set = shell
        .run(&[
            "quotas",
            "set",
            "--cpu-cores",
            "2",
            "--instance-count",
            "unlimited",
            "--gpu-type",
            "nvidia-h100=1",
        ])
        .await;
    set.assert_ok();
    assert_eq!(set.json()["cpuCores"], 2, "{set:#?}");
    assert_eq!(set.json()["gpuCountByType"]["nvidia-h100"], 1, "{set:#?}");
    let table = shell.run(&["quotas", "get", "-o", "table"]).await;
    table.assert_ok();
    let cores = table
        .stdout
        .lines()
        .find(|l| l.starts_with("cpuCores"))
        .unwrap_or_else(|| panic!("{table:#?}"));
    assert_eq!(
        cores.split_whitespace().collect::<Vec<_>>(),
        ["cpuCores", "2", "2"],
        "{table:#?}"
    );
    assert!(
        table
            .stdout
            .lines()
            .any(|l| l.starts_with("instanceCount") && l.ends_with("unlimited")),
        "{table:#?}"
    );
    // Over quota: the API's 409 names the quota, and the exit code says conflict.
    let over = shell
        .run(&["instances", "create", "q-2", "--type", "e2-small"])
        .await;
    over.assert_api_error(409);
    assert!(over.stderr.contains("quota cpuCores"), "{over:#?}");
    let nothing = shell.run(&["quotas", "set"]).await;
    assert_eq!(nothing.code, stratus::cli::EXIT_USAGE, "{nothing:#?}");
    assert!(nothing.stderr.contains("--cpu-cores"), "{nothing:#?}");
    region.stop().await;
}

#[tokio::test]
async fn cli_hosts_list_cordon_and_drain() {
    let region = TestRegion::start().await;
    let shell = Shell::signed_in(&region).await;
    shell
        .run(&["instances", "create", "h-1", "--type", "e2-micro"])
        .await
        .assert_ok();
    let cordoned = shell.run(&["hosts", "cordon", "local"]).await;
    cordoned.assert_ok();
    assert_eq!(cordoned.json()["scheduling"], "CORDONED", "{cordoned:#?}");
    let table = shell.run(&["hosts", "list", "-o", "table"]).await;
    table.assert_ok();
    let row = table
        .stdout
        .lines()
        .find(|l| l.starts_with("local"))
        .unwrap_or_else(|| panic!("{table:#?}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        &cells[..5],
        ["local", "UP", "CORDONED", "sim", "1/256"],
        "{table:#?}"
    );
    let drained = shell.run(&["hosts", "drain", "local", "-o", "table"]).await;
    drained.assert_ok();
    assert!(drained.stdout.contains("DRAINING"), "{drained:#?}");
    assert!(drained.stdout.contains("default/h-1"), "{drained:#?}");
    shell.run(&["hosts", "uncordon", "local"]).await.assert_ok();
    let missing = shell.run(&["hosts", "get", "nowhere"]).await;
    missing.assert_api_error(404);
    region.stop().await;
}

#[tokio::test]
async fn cli_networks_addresses_and_instances_on_them() {
    let region = TestRegion::start().await;
    let shell = Shell::signed_in(&region).await;
    shell
        .run(&["networks", "create", "web", "--cidr", "10.7.0.0/24"])
        .await
        .assert_ok();
    let networks = shell.run(&["networks", "list", "-o", "table"]).await;
    networks.assert_ok();
    assert!(
        networks
            .stdout
            .lines()
            .any(|l| l.starts_with("web") && l.contains("10.7.0.0/24") && l.contains("web-subnet")),
        "{networks:#?}"
    );
    let reserved = shell
        .run(&[
            "addresses",
            "create",
            "front",
            "--network",
            "web",
            "--ip",
            "10.7.0.9",
        ])
        .await;
    reserved.assert_ok();
    assert_eq!(reserved.json()["status"], "RESERVED", "{reserved:#?}");
    let created = shell
        .run(&[
            "instances",
            "create",
            "n-1",
            "--type",
            "e2-micro",
            "--network",
            "web",
            "--ip",
            "10.7.0.9",
        ])
        .await;
    created.assert_ok();
    assert_eq!(created.json()["nics"][0]["ipv4Address"], "10.7.0.9");
    let shown = shell.run(&["instances", "get", "n-1", "-o", "table"]).await;
    assert!(
        shown.stdout.contains("10.7.0.9 in web (52:54:00:"),
        "{shown:#?}"
    );
    let addresses = shell.run(&["addresses", "list", "-o", "table"]).await;
    assert!(
        addresses
            .stdout
            .lines()
            .any(|l| l.starts_with("front") && l.contains("IN_USE") && l.contains("n-1")),
        "{addresses:#?}"
    );
    let in_use = shell.run(&["networks", "delete", "web"]).await;
    in_use.assert_api_error(409);
    assert!(in_use.stderr.contains("instances [n-1]"), "{in_use:#?}");
    let bad = shell
        .run(&["addresses", "create", "--ip", "10.7.0.10"])
        .await;
    assert_eq!(bad.code, stratus::cli::EXIT_USAGE, "{bad:#?}");
    region.stop().await;
}
