//! Kafka TLS and SASL against a real broker: tansu behind stunnel (TLS, with a
//! CA and certificates made by rcgen for the test) and tansu with SCRAM-SHA-512
//! authentication. The right settings consume; a wrong CA or a wrong password
//! stop `weir run` with a clear error.

use crate::support;

use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::tansu::Broker;
use support::tls::{make_pki, Stunnel};
use support::{archived, free_port};

fn rules(bootstrap: &str) -> String {
    format!(
        r#"source app = kafka(brokers: "{bootstrap}", topic: "logs", group: "sec", commit_every: 300ms) format json
archive app roll every 1h
"#
    )
}

/// Runs `weir run` with a config file; returns the child.
fn weir(dir: &Path, rules: &str, config: &str, env: &[(&str, &str)]) -> Child {
    std::fs::write(dir.join("sec.rules"), rules).unwrap();
    std::fs::write(dir.join("weir.toml"), config).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weir"));
    cmd.arg("run")
        .arg(dir.join("sec.rules"))
        .arg("--quiet")
        .arg("--config")
        .arg(dir.join("weir.toml"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env("WEIR_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("weir starts")
}

/// Waits for a child to exit by itself; its exit code and stderr.
fn exit_of(mut child: Child, secs: u64) -> (Option<i32>, String) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            return (st.code(), err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("weir did not stop by itself within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

async fn produce(client: &ClientConfig, n: usize) {
    let p: FutureProducer = client.create().unwrap();
    for i in 0..n {
        let body = format!(r#"{{"service":"s","message":"m{i}"}}"#);
        p.send(
            FutureRecord::<(), _>::to("logs").payload(&body),
            Duration::from_secs(30),
        )
        .await
        .unwrap_or_else(|(e, _)| panic!("produce: {e}"));
    }
}

async fn wait_archived(dir: &Path, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while archived(&dir.join("data/archive")).0.len() < n {
        assert!(Instant::now() < deadline, "not all {n} events archived");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn terminate(child: &mut Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_the_right_ca_consumes_and_a_wrong_ca_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let ca = make_pki(dir.path(), "good");
    let wrong_ca = make_pki(dir.path(), "other");
    let (plain, tls) = (free_port(), free_port());
    let broker = Broker::behind(plain, tls);
    broker.create_topic("logs", 1);
    let _stunnel = Stunnel::start(dir.path(), "good", tls, plain);
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", format!("127.0.0.1:{tls}"))
        .set("security.protocol", "ssl")
        .set("ssl.ca.location", ca.display().to_string());
    produce(&client, 500).await;

    // The right CA: everything arrives over TLS.
    let good = tempfile::tempdir().unwrap();
    let mut child = weir(
        good.path(),
        &rules(&format!("127.0.0.1:{tls}")),
        &format!("[kafka.tls]\nca = \"{}\"\n", ca.display()),
        &[],
    );
    wait_archived(good.path(), 500).await;
    terminate(&mut child);

    // A CA that did not sign the broker's certificate: a clear error, exit 1.
    let bad = tempfile::tempdir().unwrap();
    let child = weir(
        bad.path(),
        &rules(&format!("127.0.0.1:{tls}")),
        &format!("[kafka.tls]\nca = \"{}\"\n", wrong_ca.display()),
        &[],
    );
    let (code, err) = exit_of(child, 60);
    eprintln!("what a user sees with a wrong CA:\n{err}");
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("certificate verify failed"), "{err}");
    assert!(
        err.contains("[kafka.tls]"),
        "the hint names the setting: {err}"
    );
    assert!(archived(&bad.path().join("data/archive")).0.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_scram_with_the_right_password_consumes_and_a_wrong_one_fails_clearly() {
    let mut broker = Broker::durable();
    broker.create_topic("logs", 1);
    broker.create_user("weir", "right-password");
    broker.restart_with_authentication();
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", broker.bootstrap())
        .set("security.protocol", "sasl_plaintext")
        .set("sasl.mechanism", "SCRAM-SHA-512")
        .set("sasl.username", "weir")
        .set("sasl.password", "right-password");
    produce(&client, 300).await;
    let config = "[kafka.sasl]\nmechanism = \"SCRAM-SHA-512\"\nusername = \"weir\"\npassword_env = \"TEST_KAFKA_PASSWORD\"\n";

    let good = tempfile::tempdir().unwrap();
    let mut child = weir(
        good.path(),
        &rules(&broker.bootstrap()),
        config,
        &[("TEST_KAFKA_PASSWORD", "right-password")],
    );
    wait_archived(good.path(), 300).await;
    terminate(&mut child);

    let bad = tempfile::tempdir().unwrap();
    let child = weir(
        bad.path(),
        &rules(&broker.bootstrap()),
        config,
        &[("TEST_KAFKA_PASSWORD", "wrong-password")],
    );
    let (code, err) = exit_of(child, 60);
    eprintln!("what a user sees with a wrong password:\n{err}");
    assert_eq!(code, Some(1), "{err}");
    assert!(err.to_lowercase().contains("authentication"), "{err}");
    assert!(
        err.contains("[kafka.sasl]"),
        "the hint names the setting: {err}"
    );
    assert!(
        !err.contains("wrong-password"),
        "the password is never printed: {err}"
    );
}
