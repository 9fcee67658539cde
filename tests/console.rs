//! The web console in a real Chromium: `console/tests/console.test.mjs`
//! (playwright-core driving Debian's `chromium`, both installed by
//! scripts/test.sh) against a `weir serve` started here with an archive, an
//! `http` source, an alerting pipeline with a webhook channel, and a scoped
//! viewer. Fails, never skips, without node, the console's node_modules or
//! Chromium. Screenshots of each view land in `$CARGO_TARGET_DIR/console-shots`
//! (or the test's temporary folder).

use crate::support;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use support::server::{create_token, start_server, ADMIN_PASSWORD, RULES};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_works_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    crate::security::archive_two_streams(dir.path(), &data);
    let hook = support::free_port();
    let config = dir.path().join("weir.toml");
    std::fs::write(
        &config,
        format!("[channels.hook]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{hook}/hook\"\n"),
    )
    .unwrap();
    let server = start_server(&data, &["--config", config.to_str().unwrap()]);
    // After the first start, which creates `admin` in an empty store.
    let mut add = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args([
            "user",
            "add",
            "olga",
            "--role",
            "viewer",
            "--scope",
            "service=\"checkout\"",
            "--data-dir",
        ])
        .arg(&data)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    add.stdin
        .take()
        .unwrap()
        .write_all(b"olga's long password\n")
        .unwrap();
    assert!(add.wait().unwrap().success());
    let port = support::free_port();
    let rules = format!(
        "source web = http(listen: \"127.0.0.1:{port}\") format json\n\
         pipeline bursts {{\n  from web\n  | window tumbling 2s by service {{ n = count() }}\n  \
         | alert \"burst\" when n > 3 severity critical notify [hook]\n}}\n"
    );
    let r = server
        .client()
        .post(format!("{}/api/v1/pipelines", server.base))
        .header("content-type", RULES)
        .body(rules)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    support::wait_for_port(port);
    let shipper = create_token(&data, "console-shipper", "shipper", &[]);

    let shots = std::env::var_os("CARGO_TARGET_DIR")
        .map(|d| PathBuf::from(d).join("console-shots"))
        .unwrap_or_else(|| dir.path().join("shots"));
    let console = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("console");
    let out = Command::new("node")
        .arg("tests/console.test.mjs")
        .current_dir(&console)
        .env("WEIR_URL", &server.base)
        .env("ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("VIEWER_USER", "olga")
        .env("VIEWER_PASSWORD", "olga's long password")
        .env("API_TOKEN", &server.token)
        .env("INGEST_URL", format!("http://127.0.0.1:{port}/"))
        .env("INGEST_TOKEN", &shipper)
        .env("HOOK_PORT", hook.to_string())
        .env("SHOTS", &shots)
        .output()
        .unwrap_or_else(|e| panic!("node (Debian/NodeSource nodejs) is needed: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the browser test failed:\n{stdout}\n{stderr}\n--- server log ---\n{}",
        server.log_text()
    );
    assert!(stdout.contains("console test passed"), "{stdout}");
    for shot in [
        "tail.png",
        "search.png",
        "alerts.png",
        "pipelines.png",
        "viewer-tail.png",
    ] {
        assert!(shots.join(shot).is_file(), "no screenshot {shot}");
    }
}
