//! A real Kafka-compatible broker for tests: `tansu` (crates.io), installed by
//! `scripts/services/install-tansu.sh` into a cache outside the clone. Tests
//! fail — never skip — when it is missing.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// The tansu binary: `$WEIR_TANSU`, or the install script's cache path.
pub fn binary() -> PathBuf {
    if let Ok(p) = std::env::var("WEIR_TANSU") {
        return PathBuf::from(p);
    }
    let home = std::env::var("HOME").unwrap_or_default();
    let p = PathBuf::from(home).join(".cache/weir/tansu-0.6.0/bin/tansu");
    assert!(
        p.is_file(),
        "the tansu broker is not installed at {}: run scripts/services/install-tansu.sh (scripts/test.sh does)",
        p.display()
    );
    p
}

/// A broker process on a loopback port, killed when dropped.
pub struct Broker {
    child: Option<Child>,
    pub port: u16,
    /// The port clients are told to use (a TLS front's, when there is one).
    pub advertised: u16,
    storage: String,
    pub authentication: bool,
    _dir: tempfile::TempDir,
}

impl Broker {
    /// In memory: fast, lost on restart.
    pub fn memory() -> Broker {
        let port = super::free_port();
        Broker::start(port, port, "memory://tansu/".into(), false)
    }

    /// On SQLite: survives a restart (for outage tests).
    pub fn durable() -> Broker {
        let port = super::free_port();
        // tansu resolves the database path against its working folder.
        Broker::start_in(port, port, false, |_| "sqlite://tansu.db".into())
    }

    /// Plaintext on `port`, advertising `advertised` (a TLS front).
    pub fn behind(port: u16, advertised: u16) -> Broker {
        Broker::start(port, advertised, "memory://tansu/".into(), false)
    }

    fn start(port: u16, advertised: u16, storage: String, auth: bool) -> Broker {
        Broker::start_in(port, advertised, auth, |_| storage)
    }

    fn start_in(
        port: u16,
        advertised: u16,
        auth: bool,
        storage: impl FnOnce(&std::path::Path) -> String,
    ) -> Broker {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut b = Broker {
            child: None,
            port,
            advertised,
            storage: storage(dir.path()),
            authentication: auth,
            _dir: dir,
        };
        b.spawn();
        b
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(binary());
        cmd.current_dir(self._dir.path())
            .arg("broker")
            .arg("--listener-url")
            .arg(format!("tcp://127.0.0.1:{}", self.port))
            .arg("--advertised-listener-url")
            .arg(format!("tcp://127.0.0.1:{}", self.advertised))
            .arg("--storage-engine")
            .arg(&self.storage)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if self.authentication {
            cmd.arg("--authentication");
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start tansu: {e}"));
        self.child = Some(child);
        wait_for_port(self.port);
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.advertised)
    }

    fn broker_url(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    pub fn create_topic(&self, name: &str, partitions: u32) {
        let out = Command::new(binary())
            .args(["topic", "create", name, "--partitions"])
            .arg(partitions.to_string())
            .arg("--broker")
            .arg(self.broker_url())
            .output()
            .unwrap_or_else(|e| panic!("tansu topic create: {e}"));
        assert!(
            out.status.success(),
            "tansu topic create {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn create_user(&self, name: &str, password: &str) {
        let out = Command::new(binary())
            .args(["user", "create", name, password, "--broker"])
            .arg(self.broker_url())
            .output()
            .unwrap_or_else(|e| panic!("tansu user create: {e}"));
        assert!(
            out.status.success(),
            "tansu user create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops and starts again on the same port and storage.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Restarts with client authentication required (SASL SCRAM).
    pub fn restart_with_authentication(&mut self) {
        self.authentication = true;
        self.restart();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

pub use super::wait_for_port;
