//! Azurite's Blob service (Microsoft's Azure Storage emulator, installed by
//! scripts/services/install-azurite.sh) on loopback, with the container
//! `weir`.

use super::Service;

/// Azurite's well-known development account and its key (public: the same
/// in every Azurite, accepted by no real Azure account).
const ACCOUNT: &str = "devstoreaccount1";
const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Azurite's Blob service on a free port, in memory, killed when dropped.
pub struct Azurite {
    service: Service,
    pub port: u16,
}

impl Azurite {
    pub fn start() -> Azurite {
        let bin = super::installed(
            std::env::var_os("WEIR_AZURITE").map(std::path::PathBuf::from),
            ".cache/weir/azurite/node_modules/.bin/azurite-blob",
            "scripts/services/install-azurite.sh",
        );
        let service = Service::start(&bin, |port| {
            ["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()]
                .into_iter()
                .chain(["--inMemoryPersistence", "--disableTelemetry"])
                .map(String::from)
                .collect()
        });
        let azurite = Azurite {
            port: service.port,
            service,
        };
        azurite.create_container("weir");
        azurite
    }

    /// Create Container, signed with the account key (Shared Key).
    fn create_container(&self, name: &str) {
        let date = chrono::Utc::now()
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        let version = "2021-08-06";
        let to_sign = format!(
            "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n/{ACCOUNT}/{ACCOUNT}/{name}\nrestype:container"
        );
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &base64_decode(KEY));
        let signature = base64_encode(ring::hmac::sign(&key, to_sign.as_bytes()).as_ref());
        let resp = self.service.request(&format!(
            "PUT /{ACCOUNT}/{name}?restype=container HTTP/1.1\r\nx-ms-date: {date}\r\nx-ms-version: {version}\r\nAuthorization: SharedKey {ACCOUNT}:{signature}\r\n"
        ));
        assert!(resp.starts_with("HTTP/1.1 201"), "container: {resp}");
    }

    /// weir.toml text pointing the archive at `az://weir/PREFIX` here, and
    /// the environment it needs (object_store finds an emulator that is not
    /// on port 10000 through `AZURITE_BLOB_STORAGE_URL`).
    pub fn config(&self, prefix: &str) -> (String, Vec<(String, String)>) {
        (
            format!("archive = \"az://weir/{prefix}\"\n[storage.options]\nazure_storage_use_emulator = \"true\"\n"),
            vec![(
                "AZURITE_BLOB_STORAGE_URL".to_string(),
                format!("http://127.0.0.1:{}", self.port),
            )],
        )
    }
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_decode(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut n, mut bits) = (0u32, 0);
    for c in text.bytes().filter(|c| *c != b'=') {
        let v = ALPHABET.iter().position(|a| *a == c).expect("base64") as u32;
        n = n << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((n >> bits & 0xff) as u8);
        }
    }
    out
}

#[test]
fn base64_round_trips() {
    for s in [&b""[..], b"f", b"fo", b"foo", b"foob", b"fooba", b"foobar"] {
        assert_eq!(base64_decode(&base64_encode(s)), s);
    }
    assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
    assert_eq!(base64_encode(b"fo"), "Zm8=");
    assert_eq!(base64_decode(KEY).len(), 64);
}
