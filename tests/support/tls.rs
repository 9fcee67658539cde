//! TLS for tests: a CA and server certificate made with rcgen, and stunnel
//! terminating TLS in front of a plaintext broker.

use super::wait_for_port;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A CA and a server certificate for 127.0.0.1 signed by it, as PEM files in
/// `dir`: `NAME-ca.pem`, `NAME-server.pem`, `NAME-server.key`.
pub fn make_pki(dir: &Path, name: &str) -> PathBuf {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("weir test CA {name}"));
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    let ca_path = dir.join(format!("{name}-ca.pem"));
    std::fs::write(&ca_path, ca.pem()).unwrap();
    std::fs::write(dir.join(format!("{name}-server.pem")), cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{name}-server.key")), key.serialize_pem()).unwrap();
    ca_path
}

/// stunnel terminating TLS on `accept` in front of a plaintext broker.
pub struct Stunnel(Child);

impl Stunnel {
    pub fn start(dir: &Path, name: &str, accept: u16, connect: u16) -> Stunnel {
        let conf = dir.join("stunnel.conf");
        std::fs::write(
            &conf,
            format!(
                "foreground = yes\npid =\n[kafka]\naccept = 127.0.0.1:{accept}\nconnect = 127.0.0.1:{connect}\ncert = {}\nkey = {}\n",
                dir.join(format!("{name}-server.pem")).display(),
                dir.join(format!("{name}-server.key")).display()
            ),
        )
        .unwrap();
        let bin = ["/usr/bin/stunnel4", "/usr/bin/stunnel"]
            .into_iter()
            .find(|p| Path::new(p).is_file())
            .expect("stunnel4 is installed (scripts/test.sh installs it)");
        let child = Command::new(bin)
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("stunnel starts");
        wait_for_port(accept);
        Stunnel(child)
    }
}

impl Drop for Stunnel {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
