//! A throwaway PostgreSQL server for tests and benchmarks.
//!
//! The PostgreSQL backend is tested against the real thing, never a mock and never skipped:
//! [`PostgresCluster::start`] runs `initdb` into a temporary directory and `pg_ctl` on a free
//! loopback port, with the server's socket in that directory too, and stops the server when
//! dropped. The binaries are those of `STRATUS_PG_BIN` or the newest
//! `/usr/lib/postgresql/*/bin` (Debian's layout); the test script installs Debian's
//! `postgresql` where it is missing. PostgreSQL refuses to run as root, so as root the server
//! runs as the `postgres` user that package creates. Tests relax durability (`fsync` off): a
//! test may crash the server, not the machine; benchmarks use [`PostgresCluster::start_durable`]
//! so PostgreSQL flushes its commits as the embedded store does.

use std::path::PathBuf;
use std::process::Command;

/// A PostgreSQL server of its own, stopped and deleted on drop.
pub struct PostgresCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    run_as: Option<String>,
    durable: bool,
}

/// The process's shared cluster (see [`PostgresCluster::shared`]).
static SHARED: std::sync::OnceLock<PostgresCluster> = std::sync::OnceLock::new();

extern "C" fn stop_shared() {
    if let Some(cluster) = SHARED.get() {
        let _ = cluster.run(
            "pg_ctl",
            &["-D", &cluster.data_dir(), "-m", "immediate", "-w", "stop"],
        );
        let _ = std::fs::remove_dir_all(cluster.dir.path());
    }
}

impl PostgresCluster {
    /// One cluster for the whole process, started at the first call and stopped when the
    /// process exits: tests that each need a database of their own share its server instead
    /// of starting one each. Panics with the reason when it cannot start.
    pub fn shared() -> &'static PostgresCluster {
        SHARED.get_or_init(|| {
            let cluster = Self::start().unwrap_or_else(|e| panic!("{e}"));
            // SAFETY: registers a plain function to run at exit; it only reads the static.
            unsafe {
                libc::atexit(stop_shared);
            }
            cluster
        })
    }

    /// Initializes and starts a new cluster; the error says what is missing or what failed.
    pub fn start() -> Result<Self, String> {
        Self::start_with(false)
    }

    /// Like [`Self::start`], with every commit flushed to disk (`fsync` on), for measurements.
    pub fn start_durable() -> Result<Self, String> {
        Self::start_with(true)
    }

    fn start_with(durable: bool) -> Result<Self, String> {
        let bin = postgres_bin()?;
        let run_as = running_as_root().then(|| "postgres".to_owned());
        let dir = tempfile::Builder::new()
            .prefix("stratus-pg-")
            .tempdir()
            .map_err(|e| format!("creating a directory for PostgreSQL: {e}"))?;
        if let Some(user) = &run_as {
            let (uid, gid) = user_ids(user)?;
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .map_err(|e| format!("handing {} to {user}: {e}", dir.path().display()))?;
        }
        let port = free_port()?;
        let cluster = Self {
            dir,
            bin,
            port,
            run_as,
            durable,
        };
        let data = cluster.data_dir();
        cluster.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "--auth=trust",
                "--no-locale",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )?;
        cluster.start_server()?;
        Ok(cluster)
    }

    /// The TCP port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of `database` on this server.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates a new, empty database and returns its URL.
    pub async fn create_database(&self, name: &str) -> Result<String, String> {
        use sqlx::Connection;
        let mut admin = sqlx::PgConnection::connect(&self.url("postgres"))
            .await
            .map_err(|e| format!("connecting to the test PostgreSQL: {e}"))?;
        // `name` is chosen by the test; quoted as an identifier.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE \"{}\"",
            name.replace('"', "")
        )))
        .execute(&mut admin)
        .await
        .map_err(|e| format!("creating database {name}: {e}"))?;
        Ok(self.url(name))
    }

    /// Stops the server as an administrator would (`pg_ctl stop -m fast`): connections are
    /// cut, committed work is kept.
    pub fn stop_server(&self) -> Result<(), String> {
        self.run(
            "pg_ctl",
            &["-D", &self.data_dir(), "-m", "fast", "-w", "stop"],
        )
    }

    /// Starts the server again on the same port after [`Self::stop_server`].
    pub fn start_server(&self) -> Result<(), String> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync={} -c max_connections=300",
            self.port,
            self.dir.path().display(),
            if self.durable { "on" } else { "off" }
        );
        let log = self.dir.path().join("server.log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data_dir(),
                "-l",
                &log.display().to_string(),
                "-o",
                &options,
                "-w",
                "start",
            ],
        )
    }

    /// The server's log file.
    pub fn server_log(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    fn data_dir(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// Runs one of the server's programs, as the server's user.
    fn run(&self, program: &str, args: &[&str]) -> Result<(), String> {
        let exe = self.bin.join(program);
        let mut command = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        let output = command
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .map_err(|e| format!("running {}: {e}", exe.display()))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{program} failed ({}): {}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }
}

impl Drop for PostgresCluster {
    fn drop(&mut self) {
        let _ = self.run(
            "pg_ctl",
            &["-D", &self.data_dir(), "-m", "immediate", "-w", "stop"],
        );
    }
}

/// The directory of `initdb` and `pg_ctl`.
fn postgres_bin() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("STRATUS_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).ok_or_else(|| {
        "PostgreSQL's server programs were not found in /usr/lib/postgresql/*/bin; install \
         Debian's `postgresql` package (scripts/test.sh does) or set STRATUS_PG_BIN"
            .to_owned()
    })
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

fn user_ids(user: &str) -> Result<(u32, u32), String> {
    let id = |flag: &str| -> Result<u32, String> {
        let out = Command::new("id")
            .args([flag, user])
            .output()
            .map_err(|e| format!("running id: {e}"))?;
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .map_err(|_| format!("there is no `{user}` user to run PostgreSQL as"))
    };
    Ok((id("-u")?, id("-g")?))
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("finding a free port: {e}"))
}
