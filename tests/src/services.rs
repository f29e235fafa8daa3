//! Services a test starts and stops itself: a private Redis on a port of its own (to take it away
//! and bring it back while the service runs).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// `redis-server` on 127.0.0.1:`port`, keeping nothing on disk; killed when dropped.
pub struct PrivateRedis {
    child: Child,
    pub port: u16,
}

impl PrivateRedis {
    /// Starts it and waits until it accepts connections.
    pub async fn start(port: u16) -> PrivateRedis {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server must be installed for this test (scripts/test installs it)");
        // Owned at once, so that it is killed and reaped whatever happens next.
        let redis = PrivateRedis { child, port };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return redis;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server did not start on {port}");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A PostgreSQL server of the test's own (initdb in a temporary directory, on a free loopback
/// port, trust auth), to stop and start under a running service. Uses the newest server binaries
/// under `/usr/lib/postgresql` (Debian's `postgresql` package, which `scripts/test` installs when
/// no server is running); as root it runs them as the `postgres` user.
pub struct PrivatePostgres {
    dir: tempfile::TempDir,
    bin: std::path::PathBuf,
    pub port: u16,
}

impl PrivatePostgres {
    pub fn start() -> PrivatePostgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries in /usr/lib/postgresql (Debian's postgresql package)")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|b| b.join("initdb").exists())
            .max_by_key(|b| {
                b.parent().and_then(|v| v.file_name()).and_then(|v| v.to_str()).and_then(|v| v.parse::<u32>().ok())
            })
            .expect("an initdb under /usr/lib/postgresql/*/bin");
        let dir = tempfile::Builder::new().prefix("rmm-pg-").tempdir().unwrap();
        if is_root() {
            let ok = Command::new("chown").args(["-R", "postgres"]).arg(dir.path()).status().unwrap().success();
            assert!(ok, "chown postgres {}", dir.path().display());
        }
        let pg = PrivatePostgres { dir, bin, port: free_port() };
        pg.run(&format!("{} -D {} -U postgres -A trust", pg.tool("initdb"), pg.data()));
        pg.start_again();
        pg
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops at once, as a crash would (`pg_ctl stop -m immediate`): connections are cut.
    pub fn stop_immediately(&self) {
        self.run(&format!("{} -D {} -m immediate -w stop", self.tool("pg_ctl"), self.data()));
    }

    /// Starts the stopped server on the same port and waits until it accepts connections.
    pub fn start_again(&self) {
        let opts = format!("-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200", self.port, self.data());
        self.run(&format!(
            "{} -D {} -o '{opts}' -l {}/server.log -w start",
            self.tool("pg_ctl"),
            self.data(),
            self.data()
        ));
    }

    fn tool(&self, name: &str) -> String {
        self.bin.join(name).display().to_string()
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn run(&self, cmd: &str) {
        let out = as_server_user(cmd).unwrap();
        assert!(
            out.status.success(),
            "{cmd}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = as_server_user(&format!("{} -D {} -m immediate stop", self.tool("pg_ctl"), self.data()));
    }
}

/// A shell command, as the `postgres` user when this runs as root (PostgreSQL refuses root).
fn as_server_user(cmd: &str) -> std::io::Result<std::process::Output> {
    if is_root() {
        Command::new("su").args(["postgres", "-s", "/bin/sh", "-c", cmd]).output()
    } else {
        Command::new("sh").args(["-c", cmd]).output()
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}
