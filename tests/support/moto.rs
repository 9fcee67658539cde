//! moto's S3 server on loopback (installed by
//! scripts/services/install-python-tools.sh), with the bucket `weir`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// moto's S3 server on a free port, killed when dropped.
pub struct S3 {
    child: Child,
    pub port: u16,
}

impl S3 {
    pub fn start() -> S3 {
        let bin = std::env::var("WEIR_PYTHON_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|_| {
                PathBuf::from(std::env::var("HOME").unwrap_or_default())
                    .join(".cache/weir/venv/bin")
            });
        let server = bin.join("moto_server");
        assert!(
            server.is_file(),
            "moto_server is not installed at {}: run scripts/services/install-python-tools.sh (scripts/test.sh does)",
            server.display()
        );
        let port = super::free_port();
        let child = Command::new(server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server starts");
        super::tansu::wait_for_port(port);
        let s3 = S3 { child, port };
        // Create the bucket (PUT /bucket).
        let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            conn,
            "PUT /weir HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut resp = String::new();
        conn.read_to_string(&mut resp).unwrap();
        assert!(resp.starts_with("HTTP/1.1 200"), "bucket: {resp}");
        s3
    }

    /// weir.toml text pointing the archive at `s3://weir/PREFIX` here.
    pub fn config(&self, prefix: &str) -> String {
        format!(
            "archive = \"s3://weir/{prefix}\"\n[storage.options]\naws_endpoint = \"http://127.0.0.1:{}\"\naws_allow_http = \"true\"\naws_region = \"us-east-1\"\naws_access_key_id = \"test\"\naws_secret_access_key = \"test\"\n",
            self.port
        )
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
