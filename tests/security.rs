//! Login, roles, scopes, the sandbox of submitted rules, browser-borne
//! attacks, TLS and the audit log, against a real `weir serve`.

use crate::support;
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::server::{client_with, create_token, start_server, Server, ADMIN_PASSWORD, RULES};

const SERVICES: [&str; 3] = ["checkout", "payments", "search"];
const ENVIRONMENTS: [&str; 2] = ["production", "staging"];

/// Writes `n` JSON events cycling through services and environments.
fn events(path: &Path, n: usize, salt: &str) {
    let text: String = (0..n)
        .map(|i| {
            format!(
                "{{\"timestamp\":\"2026-03-01T10:{:02}:{:02}Z\",\"service\":\"{}\",\"environment\":\"{}\",\"severity\":\"info\",\"message\":\"{salt} event {i}\",\"request_id\":\"r{i}\"}}\n",
                (i / 60) % 60,
                i % 60,
                SERVICES[i % 3],
                ENVIRONMENTS[(i / 3) % 2],
            )
        })
        .collect();
    std::fs::write(path, text).unwrap();
}

/// Archives two streams, `app` (3000 events) and `other` (600), into
/// `data`'s archive with `weir run`.
pub fn archive_two_streams(dir: &Path, data: &Path) {
    events(&dir.join("app.jsonl"), 3000, "app");
    events(&dir.join("other.jsonl"), 600, "other");
    let rules = dir.join("archive.rules");
    std::fs::write(
        &rules,
        format!(
            "source app = file(path: \"{}\") format json\nsource other = file(path: \"{}\") format json\narchive app raw full\narchive other raw full\n",
            dir.join("app.jsonl").display(),
            dir.join("other.jsonl").display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run", "--quiet", "--data-dir"])
        .arg(data)
        .arg(&rules)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn query(http: &reqwest::Client, base: &str, sql: &str) -> (u16, Value) {
    let r = http
        .post(format!("{base}/api/v1/query"))
        .json(&json!({ "sql": sql }))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn rows(v: &Value) -> Vec<Value> {
    v["rows"].as_array().cloned().unwrap_or_default()
}

/// Every route, called with no credentials, a malformed and an unknown
/// token, a revoked and an expired token, and a token of each role: 401,
/// 403 or through, as the route's rule says. The routes come from the
/// server's own table (the router is built from it, and a route without a
/// rule is refused), so a new route is covered without editing this test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_as_its_rule_says() {
    let data = tempfile::tempdir().unwrap();
    let d = data.path();
    let mut tokens: Vec<(String, String)> = ["admin", "editor", "viewer", "shipper"]
        .iter()
        .map(|r| (r.to_string(), create_token(d, r, r, &[])))
        .collect();
    let revoked = create_token(d, "revoked", "admin", &[]);
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["token", "revoke", "revoked", "--data-dir"])
        .arg(d)
        .output()
        .unwrap();
    assert!(out.status.success());
    let expired = create_token(d, "expired", "admin", &["--expires-in", "1s"]);
    let server = start_server(d, &[]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    tokens.push(("revoked".into(), revoked));
    tokens.push(("expired".into(), expired));
    tokens.push(("malformed".into(), "not-a-token".into()));
    tokens.push((
        "unknown".into(),
        format!("weir_000000000000_{}", "0".repeat(64)),
    ));

    let table: Value = server
        .client()
        .get(format!("{}/api/v1/routes", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let routes = table["routes"].as_array().unwrap().clone();
    assert!(routes.len() >= 20, "{table}");
    for must in [
        "/api/v1/query",
        "/api/v1/pipelines",
        "/api/v1/tokens",
        "/metrics",
    ] {
        assert!(
            routes.iter().any(|r| r["path"] == must),
            "{must} in {table}"
        );
    }
    let anonymous = reqwest::Client::new();
    let mut checked = 0;
    for route in &routes {
        let method = route["method"].as_str().unwrap();
        let path = route["path"]
            .as_str()
            .unwrap()
            .replace("{name}", "nobody")
            .replace("{id}", "nothing");
        let access = route["access"].as_str().unwrap();
        let body = route["body"].as_str().unwrap();
        let who: Vec<(String, Option<&str>)> = std::iter::once(("anonymous".to_string(), None))
            .chain(tokens.iter().map(|(n, t)| (n.clone(), Some(t.as_str()))))
            .collect();
        for (name, token) in who {
            let http = token.map(client_with).unwrap_or_else(|| anonymous.clone());
            let mut req = http.request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}{path}", server.base),
            );
            req = match body {
                "json" => req.json(&json!({})),
                "rules" => req.header("content-type", RULES).body("# nothing\n"),
                _ => req,
            };
            let status = req.send().await.unwrap().status().as_u16();
            let valid = matches!(name.as_str(), "admin" | "editor" | "viewer" | "shipper");
            let allowed = match access {
                "open" | "metrics" => true,
                "authenticated" => valid,
                "ingest" => matches!(name.as_str(), "admin" | "editor" | "shipper"),
                "read" => matches!(name.as_str(), "admin" | "editor" | "viewer"),
                "write" => matches!(name.as_str(), "admin" | "editor"),
                "admin" => name == "admin",
                other => panic!("unknown access {other}"),
            };
            let want = if allowed {
                "through"
            } else if valid {
                "403"
            } else {
                "401"
            };
            let got = match status {
                401 => "401",
                403 => "403",
                _ => "through",
            };
            assert_eq!(
                got, want,
                "{name} {method} {path} ({access}) answered {status}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, routes.len() * 9);
}

/// Browser sessions: the cookie's flags, CSRF on state changes, logout,
/// the same answer for a wrong password and an unknown user, the failed-
/// login limit, content types a form cannot send, and Host/Origin checks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_sessions_need_csrf_and_logins_are_limited() {
    let data = tempfile::tempdir().unwrap();
    let server = start_server(data.path(), &[]);
    let base = &server.base;
    let http = reqwest::Client::new();
    let login = |user: &str, password: &str| {
        http.post(format!("{base}/api/v1/login"))
            .json(&json!({ "user": user, "password": password }))
            .send()
    };

    let wrong = login("admin", "not the password").await.unwrap();
    assert_eq!(wrong.status(), 401);
    let wrong: Value = wrong.json().await.unwrap();
    let unknown: Value = login("nobody", "not the password")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        wrong, unknown,
        "the error never tells whether the user exists"
    );

    let ok = login("admin", ADMIN_PASSWORD).await.unwrap();
    assert_eq!(ok.status(), 200);
    let cookie = ok.headers()["set-cookie"].to_str().unwrap().to_string();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(flag), "{cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "no Secure without TLS: {cookie}"
    );
    let session: Value = ok.json().await.unwrap();
    let csrf = session["csrf_token"].as_str().unwrap().to_string();
    let pair = cookie.split(';').next().unwrap().to_string();

    // Reads need only the cookie.
    let r = http
        .get(format!("{base}/api/v1/session"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let me: Value = r.json().await.unwrap();
    assert_eq!(me["user"], "admin");
    assert_eq!(me["csrf_token"], csrf.as_str());

    // State changes need the CSRF token too.
    let silence = json!({ "matchers": ["service=checkout"], "duration": "1h" });
    let r = http
        .post(format!("{base}/api/v1/silences"))
        .header("cookie", &pair)
        .json(&silence)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("CSRF"));
    let r = http
        .post(format!("{base}/api/v1/silences"))
        .header("cookie", &pair)
        .header("x-csrf-token", &csrf)
        .json(&silence)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // ... and a same-site Origin.
    let r = http
        .post(format!("{base}/api/v1/silences"))
        .header("cookie", &pair)
        .header("x-csrf-token", &csrf)
        .header("origin", "http://evil.example")
        .json(&silence)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // What an HTML form can send is refused before anything runs.
    let api = server.client();
    for ctype in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ] {
        let r = api
            .post(format!("{base}/api/v1/pipelines"))
            .header("content-type", ctype)
            .body("source s = generator(rate: 1)\n")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 415, "{ctype}");
    }
    let r = api
        .post(format!("{base}/api/v1/silences"))
        .header("content-type", "text/plain")
        .body(silence.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);

    // DNS rebinding: a Host this server is not.
    let r = api
        .get(format!("{base}/api/v1/pipelines"))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 421);

    // Logout ends the session.
    let r = http
        .post(format!("{base}/api/v1/logout"))
        .header("cookie", &pair)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = http
        .get(format!("{base}/api/v1/session"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Five failures lock the name (even with the right password next),
    // another name from the same address still logs in.
    let r = api
        .post(format!("{base}/api/v1/users"))
        .json(&json!({ "name": "ana", "password": "ana's long password", "role": "viewer" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    for _ in 0..5 {
        assert_eq!(login("ana", "wrong password!").await.unwrap().status(), 401);
    }
    let r = login("ana", "ana's long password").await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(login("admin", ADMIN_PASSWORD).await.unwrap().status(), 200);

    // Passwords and tokens never reach the log, the audit log, the metrics
    // or the identity store in clear.
    let metrics = support::get_text(&api, &format!("{base}/metrics")).await;
    assert!(metrics.contains("weir_audit_events_total"), "{metrics}");
    let audit = std::fs::read_to_string(data.path().join("audit.log")).unwrap();
    assert!(audit.contains("\"action\":\"login\""), "{audit}");
    assert!(audit.contains("\"outcome\":\"limited\""), "{audit}");
    let store = std::fs::read_to_string(data.path().join("auth.json")).unwrap();
    for secret in [
        ADMIN_PASSWORD,
        "ana's long password",
        "wrong password!",
        "not the password",
        server.token.as_str(),
        server.token.rsplit('_').next().unwrap(),
        csrf.as_str(),
    ] {
        for (what, text) in [
            ("log", server.log_text()),
            ("audit", audit.clone()),
            ("metrics", metrics.clone()),
            ("store", store.clone()),
        ] {
            assert!(!text.contains(secret), "a secret in the {what}");
        }
    }
}

/// A viewer scoped to `service="checkout"` sees only checkout rows, however
/// the SQL is written; every count is checked against the events written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scoped_viewer_reads_only_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    archive_two_streams(dir.path(), &data);
    let scoped = create_token(
        &data,
        "checkout-viewer",
        "viewer",
        &["--scope", "service=\"checkout\""],
    );
    let server = start_server(&data, &[]);
    let admin = server.client();
    let viewer = client_with(&scoped);
    let base = &server.base;

    // Ground truth: everything for the admin, checkout for the viewer.
    let (_, all) = query(&admin, base, "SELECT count(*) AS n FROM app").await;
    assert_eq!(rows(&all)[0]["n"], 3000, "{all}");
    let checkout_app = 1000;
    let checkout_other = 200;

    let only_checkout = |v: &Value, col: &str| {
        let r = rows(v);
        assert!(!r.is_empty(), "{v}");
        for row in &r {
            assert_eq!(row[col], "checkout", "{row}");
        }
        r.len()
    };
    let count = |v: &Value| rows(v)[0]["n"].as_i64().unwrap_or(-1);

    type Check = Box<dyn Fn(&Value)>;
    let cases: Vec<(&str, Check)> = vec![
        ("SELECT * FROM app", Box::new(move |v| assert_eq!(only_checkout(v, "service"), checkout_app))),
        ("SELECT count(*) AS n FROM app", Box::new(move |v| assert_eq!(count(v), 1000))),
        (
            "SELECT service, count(*) AS n FROM app GROUP BY service",
            Box::new(move |v| {
                assert_eq!(only_checkout(v, "service"), 1);
                assert_eq!(count(v), 1000);
            }),
        ),
        ("SELECT count(*) AS n FROM app WHERE service = 'payments'", Box::new(move |v| assert_eq!(count(v), 0))),
        ("SELECT count(*) AS n FROM app WHERE service <> 'checkout' OR 1 = 1", Box::new(move |v| assert_eq!(count(v), 1000))),
        (
            "SELECT service FROM app UNION ALL SELECT service FROM other",
            Box::new(move |v| assert_eq!(only_checkout(v, "service"), checkout_app + checkout_other)),
        ),
        ("SELECT count(*) AS n FROM (SELECT * FROM other) t", Box::new(move |v| assert_eq!(count(v), 200))),
        ("WITH x AS (SELECT * FROM app) SELECT count(*) AS n FROM x", Box::new(move |v| assert_eq!(count(v), 1000))),
        ("SELECT count(DISTINCT service) AS n FROM app", Box::new(move |v| assert_eq!(count(v), 1))),
        (
            "SELECT json_get(_raw, 'service') AS service FROM app",
            Box::new(move |v| assert_eq!(only_checkout(v, "service"), checkout_app)),
        ),
        (
            "SELECT CAST(service AS VARCHAR) AS service FROM other",
            Box::new(move |v| assert_eq!(only_checkout(v, "service"), checkout_other)),
        ),
        (
            "SELECT count(*) AS n FROM app a JOIN app b ON a._offset = b._offset",
            Box::new(move |v| assert_eq!(count(v), 1000)),
        ),
        (
            "SELECT count(*) AS n FROM app a JOIN other b ON a._offset = b._offset",
            Box::new(move |v| assert_eq!(count(v), 200)),
        ),
        (
            "SELECT service, count(*) OVER () AS n FROM app LIMIT 1",
            Box::new(move |v| {
                assert_eq!(only_checkout(v, "service"), 1);
                assert_eq!(count(v), 1000);
            }),
        ),
        (
            "SELECT count(*) AS n FROM app WHERE message LIKE '%event%'",
            Box::new(move |v| assert_eq!(count(v), 1000)),
        ),
        (
            "SELECT count(*) AS n FROM app WHERE service IS NULL OR service = ''",
            Box::new(move |v| assert_eq!(count(v), 0)),
        ),
        (
            "SELECT table_name AS service FROM information_schema.tables WHERE table_name LIKE '%app%'",
            Box::new(move |v| {
                for r in rows(v) {
                    assert_eq!(r["service"], "app", "only the filtered view is registered: {v}");
                }
            }),
        ),
    ];
    for (sql, check) in &cases {
        let (status, v) = query(&viewer, base, sql).await;
        assert_eq!(status, 200, "{sql}: {v}");
        check(&v);
    }
    // EXPLAIN shows the filter inside the plan.
    let (status, v) = query(&viewer, base, "EXPLAIN SELECT count(*) FROM app").await;
    assert_eq!(status, 200, "{v}");
    assert!(
        v.to_string().contains("checkout"),
        "the scope is in the plan: {v}"
    );

    // Ways to reach the files or an unfiltered table do not exist.
    let file = walk_parquet(&data.join("archive"));
    for sql in [
        format!("SELECT count(*) FROM '{}'", file.display()),
        format!("SELECT count(*) FROM read_parquet('{}')", file.display()),
        "SELECT count(*) FROM __app_all".to_string(),
        "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '/tmp'".to_string(),
    ] {
        let (status, v) = query(&viewer, base, &sql).await;
        assert!(status == 400 || status == 403, "{sql}: {status} {v}");
    }
    assert!(scoped_queries_are_audited(&data));

    // A scope the files' statistics prove holds for every row adds no
    // filter at all; one they cannot prove keeps it, with the same answer.
    for (scope, in_plan) in [
        ("environment!=\"nowhere\"", false),
        ("service=~\"checkout|payments|search\"", true),
    ] {
        let token = create_token(
            &data,
            &format!("all-{in_plan}"),
            "viewer",
            &["--scope", scope],
        );
        let everyone = client_with(&token);
        let (_, v) = query(&everyone, base, "SELECT count(*) AS n FROM app").await;
        assert_eq!(count(&v), 3000, "{scope}: {v}");
        let (_, plan) = query(&everyone, base, "EXPLAIN SELECT count(*) FROM app").await;
        let text = plan.to_string();
        assert_eq!(
            text.contains("nowhere") || text.contains("payments"),
            in_plan,
            "{scope}: {text}"
        );
    }
}

fn scoped_queries_are_audited(data: &Path) -> bool {
    let audit = std::fs::read_to_string(data.join("audit.log")).unwrap();
    audit.lines().any(|l| {
        let v: Value = serde_json::from_str(l).unwrap();
        v["action"] == "query"
            && v["actor"] == "token:checkout-viewer"
            && v["detail"]["rows"] == 1000
    })
}

/// A Parquet file of the archive.
fn walk_parquet(dir: &Path) -> std::path::PathBuf {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                return p;
            }
        }
    }
    panic!("no parquet file under {}", dir.display())
}

/// Rules from the API may not read or write outside the allowed folders,
/// reach other brokers or bind other addresses; the refusal points at the
/// text. The same file run from the command line works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submitted_rules_are_sandboxed() {
    let data = tempfile::tempdir().unwrap();
    let server = start_server(data.path(), &[]);
    let http = server.client();
    let submit = |text: String| {
        http.post(format!("{}/api/v1/pipelines", server.base))
            .header("content-type", RULES)
            .body(text)
            .send()
    };
    // (rules, where the refusal points, what it says)
    let cases = [
        ("source f = file(path: \"/etc/passwd\") format plain\npipeline p {\n  from f\n  | to stdout\n}\n", "path:", "/etc/passwd"),
        ("source g = generator(rate: 1)\noutput o = file(path: \"/tmp/weir-escape.jsonl\")\npipeline p {\n  from g\n  | to o\n}\n", "path:", "/tmp/weir-escape.jsonl"),
        ("source f = file(path: \"../outside.log\") format plain\npipeline p {\n  from f\n  | to stdout\n}\n", "path:", ".."),
        ("source f = file(path: \"auth.json\") format plain\npipeline p {\n  from f\n  | to stdout\n}\n", "path:", "private"),
        ("source g = generator(rate: 1)\npipeline p {\n  from g\n  | set team = lookup(\"/etc/shadow\", service, \"team\")\n  | to stdout\n}\n", "\"/etc/shadow\"", "/etc/shadow"),
        ("source k = kafka(brokers: \"127.0.0.1:19092\", topic: \"x\")\npipeline p {\n  from k\n  | to stdout\n}\n", "brokers:", "127.0.0.1:19092"),
        ("source h = http(listen: \"0.0.0.0:9999\")\npipeline p {\n  from h\n  | to stdout\n}\n", "listen:", "0.0.0.0:9999"),
        ("source k = kafka(topic: \"x\", options: [\"plugin.library.paths=/tmp/x.so\"])\npipeline p {\n  from k\n  | to stdout\n}\n", "options:", "plugin.library.paths"),
        ("source g = generator(rate: 1)\narchive g to \"s3://someone-elses-bucket/x\"\n", "\"s3://", "s3://"),
    ];
    for (text, at, says) in cases {
        let r = submit(text.to_string()).await.unwrap();
        assert_eq!(r.status(), 422, "{text}");
        let body: Value = r.json().await.unwrap();
        let d = &body["diagnostics"][0];
        assert_eq!(d["kind"], "not_allowed", "{body}");
        let offset = text.find(at).unwrap();
        let line = text[..offset].matches('\n').count() as i64 + 1;
        let col = (offset - text[..offset].rfind('\n').map_or(0, |i| i + 1)) as i64 + 1;
        assert_eq!(
            (d["line"].as_i64(), d["col"].as_i64()),
            (Some(line), Some(col)),
            "{text}: {body}"
        );
        assert!(body.to_string().contains(says), "{body}");
        assert!(
            !body.to_string().contains("root:"),
            "no file contents: {body}"
        );
    }
    assert!(!Path::new("/tmp/weir-escape.jsonl").exists());

    // A symlink inside the data folder that points out of it is followed
    // and refused.
    std::os::unix::fs::symlink("/etc", data.path().join("etc-link")).unwrap();
    let r = submit("source f = file(path: \"etc-link/passwd\") format plain\npipeline p {\n  from f\n  | to stdout\n}\n".into())
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["diagnostics"][0]["kind"], "not_allowed", "{body}");

    // Inside the data folder is fine.
    std::fs::write(data.path().join("mine.log"), "hello\n").unwrap();
    let r = submit("source f = file(path: \"mine.log\") format plain\npipeline mine {\n  from f\n  | to stdout\n}\n".into())
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());

    // Over the size limit: 413.
    let r = submit(format!("# {}\n", "x".repeat(2 << 20)))
        .await
        .unwrap();
    assert_eq!(r.status(), 413);

    // A scoped editor cannot submit (a pipeline reads all of its source).
    let scoped = create_token(
        data.path(),
        "scoped-editor",
        "editor",
        &["--scope", "service=\"checkout\""],
    );
    let r = client_with(&scoped)
        .post(format!("{}/api/v1/pipelines", server.base))
        .header("content-type", RULES)
        .body("source g = generator(rate: 1)\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // The operator's own command line is not sandboxed.
    let file = data.path().join("passwd.rules");
    std::fs::write(&file, cases[0].0).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run", "--quiet", "--data-dir"])
        .arg(data.path().join("cli"))
        .arg(&file)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("root"));
}

/// `http` sources under `weir serve` take events only from tokens allowed
/// to ingest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_sources_need_an_ingest_token() {
    let data = tempfile::tempdir().unwrap();
    let server = start_server(data.path(), &[]);
    let port = support::free_port();
    let r = server
        .client()
        .post(format!("{}/api/v1/pipelines", server.base))
        .header("content-type", RULES)
        .body(format!(
            "source web = http(listen: \"127.0.0.1:{port}\") format json\npipeline p {{\n  from web\n  | to stdout\n}}\n"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    support::wait_for_port(port);
    let shipper = create_token(data.path(), "shipper", "shipper", &[]);
    let viewer = create_token(data.path(), "viewer", "viewer", &[]);
    let url = format!("http://127.0.0.1:{port}/");
    let line = "{\"service\":\"a\"}\n";
    let r = reqwest::Client::new()
        .post(&url)
        .body(line)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = client_with(&viewer)
        .post(&url)
        .body(line)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = client_with(&shipper)
        .post(&url)
        .body(line)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
}

/// `[tls]`: HTTPS with a certificate made here; a client trusting its CA
/// gets through, one trusting another CA is refused, and the session
/// cookie is `Secure`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_serves_https_with_the_configured_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = support::tls::make_pki(dir.path(), "api");
    let other_ca = support::tls::make_pki(dir.path(), "other");
    let config = dir.path().join("weir.toml");
    std::fs::write(
        &config,
        "[tls]\ncert = \"api-server.pem\"\nkey = \"api-server.key\"\n",
    )
    .unwrap();
    let server: Server = start_server(
        &dir.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    assert!(server.base.starts_with("https://"), "{}", server.base);
    let trusting = |ca: &Path| {
        reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(
                reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap(),
            )
            .build()
            .unwrap()
    };
    let good = trusting(&ca);
    let r = good
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = good
        .post(format!("{}/api/v1/login", server.base))
        .json(&json!({ "user": "admin", "password": ADMIN_PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Secure"));
    assert!(trusting(&other_ca)
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .is_err());

    // The CLI speaks HTTPS too, trusting the CA it is given.
    let cli = |ca: &Path| {
        Command::new(env!("CARGO_BIN_EXE_weir"))
            .args([
                "query",
                "SELECT 41 + 1 AS answer",
                "--format",
                "json",
                "--server",
                &server.base,
            ])
            .arg("--ca")
            .arg(ca)
            .env("WEIR_TOKEN", &server.token)
            .output()
            .unwrap()
    };
    let out = cli(&ca);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("42"));
    let out = cli(&other_ca);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach"));
}

/// `weir user` reads the password from standard input and the server sees
/// the new user at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_added_on_the_command_line_log_in_at_once() {
    use std::io::Write;
    let data = tempfile::tempdir().unwrap();
    let server = start_server(data.path(), &[]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["user", "add", "bo", "--role", "editor", "--data-dir"])
        .arg(data.path())
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"bo's long password\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/login", server.base))
        .json(&json!({ "user": "bo", "password": "bo's long password" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let me: Value = r.json().await.unwrap();
    assert_eq!(me["role"], "editor");
    let list = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["user", "list", "--data-dir"])
        .arg(data.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(text.contains("bo\teditor"), "{text}");
    assert!(!text.contains("argon2"), "{text}");
}

/// Twenty failed logins from one address, under twenty names, lock that
/// address out for a while, whatever name it tries next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_are_limited_per_address() {
    let data = tempfile::tempdir().unwrap();
    let server = start_server(data.path(), &[]);
    let http = reqwest::Client::new();
    let login = |user: String, password: &'static str| {
        http.post(format!("{}/api/v1/login", server.base))
            .json(&json!({ "user": user, "password": password }))
            .send()
    };
    for i in 0..20 {
        let r = login(format!("guess{i}"), "wrong password!").await.unwrap();
        assert_eq!(r.status(), 401, "attempt {i}");
    }
    let r = login("admin".into(), ADMIN_PASSWORD).await.unwrap();
    assert_eq!(r.status(), 429);
    let audit = std::fs::read_to_string(data.path().join("audit.log")).unwrap();
    assert_eq!(audit.matches("\"outcome\":\"failed\"").count(), 20);
}
