//! A real `weir serve` child process on a free loopback port.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A `weir serve` child process, killed when dropped.
pub struct Server {
    pub child: Child,
    /// `http://127.0.0.1:PORT` (`https://` under `[tls]`).
    pub base: String,
    /// Every line it wrote to stderr so far.
    pub log: Arc<Mutex<Vec<String>>>,
    /// An admin API token (`weir token create`, made before the start).
    pub token: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The content type of a `.rules` body.
pub const RULES: &str = "application/x-weir-rules";

/// Creates an API token in `data_dir` with `weir token create`.
pub fn create_token(data_dir: &Path, name: &str, role: &str, extra: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["token", "create", "--data-dir"])
        .arg(data_dir)
        .args(["--name", name, "--role", role])
        .args(extra)
        .output()
        .expect("weir token create runs");
    assert!(
        out.status.success(),
        "weir token create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// `Authorization: Bearer TOKEN` as default headers for a client.
pub fn auth_headers(token: &str) -> reqwest::header::HeaderMap {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    headers
}

/// `GET base + path` with `http`, its JSON body.
pub async fn get_json(http: &reqwest::Client, url: &str) -> serde_json::Value {
    http.get(url).send().await.unwrap().json().await.unwrap()
}

/// An HTTP client that sends `token` with every request.
pub fn client_with(token: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .default_headers(auth_headers(token))
        .build()
        .unwrap()
}

impl Server {
    /// A client with the server's admin token.
    pub fn client(&self) -> reqwest::Client {
        client_with(&self.token)
    }

    /// Its stderr so far, one string.
    pub fn log_text(&self) -> String {
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .join("\n")
    }

    /// Asks it to stop (SIGTERM) and waits for it to exit.
    pub fn terminate(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// The password of `admin` in servers these helpers start.
pub const ADMIN_PASSWORD: &str = "correct horse battery staple";

/// Starts `weir serve` with data in `data_dir`, and waits for its address.
pub fn start_server(data_dir: &Path, extra: &[&str]) -> Server {
    std::fs::create_dir_all(data_dir).unwrap();
    static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let token = create_token(
        data_dir,
        &format!("test-{}-{n}", std::process::id()),
        "admin",
        &[],
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(extra)
        .env("WEIR_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("weir binary starts");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let log = Arc::new(Mutex::new(Vec::new()));
    let kept = log.clone();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if std::env::var_os("WEIR_TEST_VERBOSE").is_some() {
                eprintln!("[weir] {line}");
            }
            kept.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(line.clone());
            if !sent {
                // The text banner, or the JSON log event of --log-format json.
                let rest = line
                    .split("serving on ")
                    .nth(1)
                    .or_else(|| line.split("\"address\":\"").nth(1));
                if let Some(rest) = rest {
                    let addr = rest
                        .split(|c: char| c.is_whitespace() || c == '"')
                        .next()
                        .unwrap_or("")
                        .to_string();
                    let _ = tx.send(addr);
                    sent = true;
                }
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("weir serve prints its address");
    Server {
        child,
        base: addr,
        log,
        token,
    }
}
