//! moto's S3 server on loopback (installed by
//! scripts/services/install-python-tools.sh), with the bucket `weir`.

use super::Service;

/// moto's S3 server on a free port, killed when dropped.
pub struct S3 {
    service: Service,
    pub port: u16,
}

impl S3 {
    pub fn start() -> S3 {
        // WEIR_PYTHON_BIN: the virtualenv's bin folder.
        let bin = super::installed(
            std::env::var_os("WEIR_PYTHON_BIN")
                .map(|b| std::path::PathBuf::from(b).join("moto_server")),
            ".cache/weir/venv/bin/moto_server",
            "scripts/services/install-python-tools.sh",
        );
        let service = Service::start(&bin, |port| {
            vec![
                "-H".into(),
                "127.0.0.1".into(),
                "-p".into(),
                port.to_string(),
            ]
        });
        let resp = service.request("PUT /weir HTTP/1.1\r\n");
        assert!(resp.starts_with("HTTP/1.1 200"), "bucket: {resp}");
        S3 {
            port: service.port,
            service,
        }
    }

    /// weir.toml text pointing the archive at `s3://weir/PREFIX` here.
    pub fn config(&self, prefix: &str) -> String {
        format!("archive = \"s3://weir/{prefix}\"\n{}", self.storage())
    }

    /// weir.toml's `[storage]` table for this server (last in a file).
    pub fn storage(&self) -> String {
        format!(
            "[storage.options]\naws_endpoint = \"http://127.0.0.1:{}\"\naws_allow_http = \"true\"\naws_region = \"us-east-1\"\naws_access_key_id = \"test\"\naws_secret_access_key = \"test\"\n",
            self.service.port
        )
    }

    /// The keys of the bucket's objects under `prefix` (the first 1,000).
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let resp = self.service.request(&format!(
            "GET /weir?list-type=2&prefix={prefix} HTTP/1.1\r\n"
        ));
        resp.split("<Key>")
            .skip(1)
            .filter_map(|k| k.split_once("</Key>").map(|(k, _)| k.to_string()))
            .collect()
    }
}
