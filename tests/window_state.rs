//! Windows survive crashes: a pipeline windowing a Kafka source saves its
//! window state at every checkpoint and restores it on start, so `weir run`
//! killed with SIGKILL at seeded random moments while events arrive emits
//! the same window rows as a run that was never killed (each window once
//! per value: a row emitted after the last checkpoint may be written again
//! after a restart, never with another count); a backlog read partition by
//! partition loses nothing to lateness. Also: a changed window definition
//! discards its saved state, with the reason logged.

use crate::kafka::{one_per_batch, produce, wait_until, Weir};
use crate::support::tansu::Broker;
use rdkafka::producer::FutureProducer;
use rdkafka::ClientConfig;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

const EVENTS: usize = 30_000;
const SERVICES: usize = 5;
/// Event time of event `i`: 360 ms apart, three hours in all.
const STEP_MS: usize = 360;

fn event(i: usize) -> Vec<u8> {
    event_of(i, SERVICES)
}

/// Event `i` of service `svc{i % services}`.
fn event_of(i: usize, services: usize) -> Vec<u8> {
    let ms = i * STEP_MS;
    format!(
        r#"{{"timestamp":"2026-03-01T{:02}:{:02}:{:02}.{:03}Z","service":"svc{}","message":"event {i}"}}"#,
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000,
        i % services
    )
    .into_bytes()
}

/// One event per partition a day later: its watermark closes every window
/// of the three hours (their own window stays open).
fn closers() -> Vec<Vec<u8>> {
    (0..4)
        .map(|p| {
            format!(r#"{{"timestamp":"2026-03-02T12:00:00Z","service":"closer","message":"closer {p}"}}"#)
                .into_bytes()
        })
        .collect()
}

/// `group` reads the topic of its name.
fn rules(bootstrap: &str, group: &str, out: &Path, window: &str) -> String {
    rules_on(bootstrap, group, group, out, window)
}

fn rules_on(bootstrap: &str, topic: &str, group: &str, out: &Path, window: &str) -> String {
    format!(
        r#"source app = kafka(brokers: "{bootstrap}", topic: "{topic}", group: "{group}", commit_every: 300ms, options: ["session.timeout.ms=6000", "max.poll.interval.ms=10000"]) format json
output rows = file(path: "{}")
pipeline per_service {{
  from app
  | window {window} {{ n = count() }}
  | to rows
}}
"#,
        out.display()
    )
}

/// Lateness longer than the events' span: nothing is late however the
/// partitions' reads interleave (a backlog is read partition by partition;
/// per-partition watermarks are not built yet), and the closers close
/// every window.
const WINDOW: &str = "tumbling 10m by service lateness 4h";

/// (window_start, service) → every count written for it.
fn rows(out: &Path) -> BTreeMap<(String, String), BTreeSet<i64>> {
    let mut m: BTreeMap<(String, String), BTreeSet<i64>> = BTreeMap::new();
    for line in std::fs::read_to_string(out).unwrap_or_default().lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue; // a line cut by the kill
        };
        let key = (
            v["window_start"].to_string(),
            v["service"].as_str().unwrap_or_default().to_string(),
        );
        m.entry(key).or_default().insert(v["n"].as_i64().unwrap());
    }
    m
}

/// 18 ten-minute windows × 5 services.
const WINDOWS: usize = 18 * SERVICES;

fn modified(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_killed_at_random_moments_emit_what_an_uninterrupted_run_does() {
    let _heavy = crate::support::heavy().await;
    let broker = Broker::memory();
    // The same events to two topics: one for the killed runs, one for the
    // reference run.
    broker.create_topic("chaos", 4);
    broker.create_topic("reference", 4);
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = broker.bootstrap();
    // Produce slowly in the background, so the kills land mid-stream.
    let producing = tokio::spawn(async move {
        let p = one_per_batch(&bootstrap);
        for chunk in (0..EVENTS).collect::<Vec<_>>().chunks(1_000) {
            let payloads: Vec<Vec<u8>> = chunk.iter().map(|&i| event(i)).collect();
            produce(&p, "chaos", 4, &payloads).await;
            produce(&p, "reference", 4, &payloads).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });

    let out = dir.path().join("chaos.ndjson");
    let chaos = rules(&broker.bootstrap(), "chaos", &out, WINDOW);
    let state = dir.path().join("chaos/state/per_service.state");
    let mut seed = 20261202u64;
    let started = Instant::now();
    for k in 0..3 {
        let before = modified(&state);
        let weir = Weir::start(&chaos, dir.path(), "chaos");
        // Once it saved a checkpoint of its own, at a random moment after.
        wait_until(60, "a checkpoint of the window state", || {
            modified(&state).is_some_and(|m| Some(m) != before)
        })
        .await;
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let wait_ms = seed % 1_500;
        tokio::time::sleep(Duration::from_millis(wait_ms)).await;
        weir.kill();
        eprintln!(
            "kill {} {wait_ms} ms after a checkpoint (at {:.1} s)",
            k + 1,
            started.elapsed().as_secs_f64()
        );
    }
    producing.await.unwrap();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .create()
        .unwrap();
    // Runs a group to the end of the events, then sends the closers (only
    // then: a closer read before another partition's last events would
    // make those late) and waits for every window.
    let finish = |group: &'static str, out: std::path::PathBuf| {
        let bootstrap = broker.bootstrap();
        let producer = producer.clone();
        async move {
            wait_until(180, "every event read and checkpointed", || {
                crate::kafka::committed(&bootstrap, group, group, 4)
                    .iter()
                    .map(|o| o.max(&0))
                    .sum::<i64>()
                    >= EVENTS as i64
            })
            .await;
            produce(&producer, group, 4, &closers()).await;
            wait_until(60, "every window written", || rows(&out).len() >= WINDOWS).await;
        }
    };
    // tansu 0.6 sometimes completes a join while a killed member's
    // session is still open, hands it every partition and never
    // rebalances when that session ends: the last start waits it out.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let weir = Weir::start(&chaos, dir.path(), "chaos");
    finish("chaos", out.clone()).await;
    assert!(weir.terminate().success());

    // The reference: one run, never killed, of the same events.
    let ref_out = dir.path().join("reference.ndjson");
    let reference = Weir::start(
        &rules(&broker.bootstrap(), "reference", &ref_out, WINDOW),
        dir.path(),
        "reference",
    );
    finish("reference", ref_out.clone()).await;
    assert!(reference.terminate().success());

    let expected = rows(&ref_out);
    let total: i64 = expected.values().flatten().sum();
    assert_eq!(
        (expected.len(), total),
        (WINDOWS, EVENTS as i64),
        "the reference counts every event once"
    );
    let got = rows(&out);
    for (key, counts) in &got {
        assert_eq!(
            counts.len(),
            1,
            "window {key:?} was written with different counts: {counts:?}"
        );
    }
    assert_eq!(
        got, expected,
        "the killed runs' windows equal the reference's"
    );

    // The whole topic as a backlog with no lateness at all: read
    // partition by partition, yet nothing is late (event time is the
    // least over the partitions), and the closers at the end of each
    // partition close every window.
    let backlog_out = dir.path().join("backlog.ndjson");
    let backlog = Weir::start(
        &rules_on(
            &broker.bootstrap(),
            "reference",
            "backlog",
            &backlog_out,
            "tumbling 10m by service",
        ),
        dir.path(),
        "backlog",
    );
    wait_until(120, "every window of the backlog", || {
        rows(&backlog_out).len() >= WINDOWS
    })
    .await;
    assert!(backlog.terminate().success());
    assert_eq!(rows(&backlog_out), expected, "no event of the backlog late");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_window_starts_empty_and_an_unchanged_one_keeps_its_state() {
    let broker = Broker::memory();
    broker.create_topic("g", 2);
    let dir = tempfile::tempdir().unwrap();
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("linger.ms", "0")
        .create()
        .unwrap();
    // The first hour's events; their windows stay open.
    let first: Vec<Vec<u8>> = (0..10_000).map(event).collect();
    produce(&p, "g", 2, &first).await;
    let out = dir.path().join("rows.ndjson");
    let log = dir.path().join("engine.log");
    let run = |window: &str| {
        let text = rules(&broker.bootstrap(), "g", &out, window);
        std::fs::write(dir.path().join("engine.rules"), &text).unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
            .arg("run")
            .arg(dir.path().join("engine.rules"))
            .arg("--quiet")
            .arg("--data-dir")
            .arg(dir.path().join("engine"))
            .env("WEIR_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .map(crate::support::Reaped)
            .unwrap()
    };
    let stop = |mut child: crate::support::Reaped| {
        assert!(child.terminate(Duration::from_secs(60)).success());
        std::fs::read_to_string(&log).unwrap()
    };
    let state = dir.path().join("engine/state/per_service.state");
    let child = run(WINDOW);
    wait_until(60, "the window state saved", || state.exists()).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let text = stop(child);
    assert!(!text.contains("restored"), "{text}");
    // A stop keeps open windows for the next start instead of emitting
    // them half-full.
    assert!(
        rows(&out).is_empty(),
        "open windows were emitted at the stop"
    );

    // The same window in an edited file: restored.
    let child = run(WINDOW);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let text = stop(child);
    assert!(
        text.contains("window state restored from the last checkpoint"),
        "{text}"
    );
    // Another window: its state is discarded, with the reason.
    let child = run("tumbling 5m by service lateness 4h");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let text = stop(child);
    assert!(text.contains("definition changed"), "{text}");
    assert!(!text.contains("window state restored"), "{text}");
}

/// The config of processes sharing one state folder (returned second),
/// whose alerts notify the webhook channel `hook` (its inbox third).
pub(crate) async fn group_config(
    dir: &Path,
) -> (std::path::PathBuf, std::path::PathBuf, crate::alerts::Inbox) {
    let shared = dir.join("shared-state");
    let (config, inbox) =
        group_config_at(dir, &format!("{:?}", shared.display().to_string()), "").await;
    (config, shared, inbox)
}

/// The config of processes keeping state at `state` (a TOML string),
/// whose alerts notify the webhook channel `hook` (its inbox second);
/// `tail` ends the file (a `[storage]` table).
async fn group_config_at(
    dir: &Path,
    state: &str,
    tail: &str,
) -> (std::path::PathBuf, crate::alerts::Inbox) {
    let config = dir.join("weir.toml");
    let (hook_port, inbox) = crate::alerts::start_receiver().await;
    std::fs::write(
        &config,
        format!(
            "state = {state}\n[channels.hook]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{hook_port}/hook\"\n{tail}"
        ),
    )
    .unwrap();
    (config, inbox)
}

/// The `service` label of every alert the webhook `hook` received with
/// `status`, sorted (one entry per notification of it).
pub(crate) fn notified_services(inbox: &crate::alerts::Inbox, status: &str) -> Vec<String> {
    let mut s: Vec<String> = crate::alerts::of(inbox, "hook", status, None)
        .iter()
        .flat_map(|r| r.body["alerts"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a["labels"]["service"].as_str().map(String::from))
        .collect();
    s.sort();
    s
}

/// Event `i` of the keyed topic: service `svc{i % 4}`, produced to
/// partition `i % 4` — the topic is keyed by service.
fn keyed_event(i: usize) -> Vec<u8> {
    event_of(i, 4)
}

/// The rules of the keyed-topic tests: a window per service over `keyed`
/// (a source `keyed_by` service), its rows to `out`, an alert notifying
/// the webhook `hook`.
fn keyed_rules(bootstrap: &str, out: &Path) -> String {
    format!(
        r#"source app = kafka(brokers: "{bootstrap}", topic: "keyed", group: "keyed", keyed_by: "service", commit_every: 300ms, options: ["session.timeout.ms=6000", "max.poll.interval.ms=10000"]) format json
output rows = file(path: "{}")
pipeline per_service {{
  from app
  | window {WINDOW} {{ n = count() }}
  | to rows
  | alert "busy" when n > 0 notify [hook]
}}
"#,
        out.display()
    )
}

/// Produces the keyed events `range` in chunks of 1,000, 300 ms apart.
async fn produce_keyed(bootstrap: String, range: std::ops::Range<usize>) {
    let p = one_per_batch(&bootstrap);
    for chunk in range.collect::<Vec<_>>().chunks(1_000) {
        let payloads: Vec<Vec<u8>> = chunk.iter().map(|&i| keyed_event(i)).collect();
        produce(&p, "keyed", 4, &payloads).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Waits until the group committed every event of the keyed topic.
async fn keyed_committed(broker: &Broker, events: usize) {
    wait_until(180, "every event read and checkpointed", || {
        crate::kafka::committed(&broker.bootstrap(), "keyed", "keyed", 4)
            .iter()
            .map(|o| o.max(&0))
            .sum::<i64>()
            >= events as i64
    })
    .await;
}

/// Ends the keyed test: closers end every window; checks that the window
/// rows of both processes' outputs equal one uninterrupted process's and
/// that each service's alert fired and resolved once.
async fn keyed_windows_are_exact(
    broker: &Broker,
    inbox: &crate::alerts::Inbox,
    outs: [&Path; 2],
    processes: [Weir; 2],
) {
    let closers: Vec<Vec<u8>> = (0..4)
        .map(|p| {
            format!(
                r#"{{"timestamp":"2026-03-02T12:00:00Z","service":"svc{p}","message":"closer"}}"#
            )
            .into_bytes()
        })
        .collect();
    produce(&one_per_batch(&broker.bootstrap()), "keyed", 4, &closers).await;
    // 18 ten-minute windows × 4 services.
    let all = || {
        let mut m = BTreeMap::new();
        for out in outs {
            for (k, v) in rows(out) {
                m.entry(k).or_insert_with(BTreeSet::new).extend(v);
            }
        }
        m
    };
    wait_until(90, "every window written", || all().len() >= 18 * 4).await;
    // Each service's alert fired once, when its first window closed, and
    // resolved once, when the closers ended its matches — by whichever
    // process had its partition then, never by both.
    let services = |status: &str| notified_services(inbox, status);
    let four: Vec<String> = (0..4).map(|s| format!("svc{s}")).collect();
    wait_until(60, "every alert resolved", || {
        services("resolved").len() >= 4
    })
    .await;
    for p in processes {
        assert!(p.terminate().success());
    }

    // What one process that was never killed writes: every event counted
    // once in its window (window start in seconds, service).
    let mut expected: BTreeMap<(i64, String), BTreeSet<i64>> = BTreeMap::new();
    let day = chrono::DateTime::parse_from_rfc3339("2026-03-01T00:00:00Z")
        .unwrap()
        .timestamp();
    for i in 0..EVENTS {
        let start = day + (i * STEP_MS / 600_000) as i64 * 600;
        let n = expected
            .entry((start, format!("svc{}", i % 4)))
            .or_default();
        let c = n.pop_first().unwrap_or(0);
        n.insert(c + 1);
    }
    let got: BTreeMap<(i64, String), BTreeSet<i64>> = all()
        .into_iter()
        .map(|((start, service), n)| {
            let start: String = serde_json::from_str(&start).unwrap();
            let secs = chrono::DateTime::parse_from_rfc3339(&start)
                .unwrap_or_else(|e| panic!("window_start {start}: {e}"))
                .timestamp();
            ((secs, service), n)
        })
        .collect();
    assert_eq!(
        got, expected,
        "windows handed on with their partitions count every event once"
    );
    assert_eq!(services("firing"), four, "each alert fired once");
    assert_eq!(services("resolved"), four, "each alert resolved once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_of_a_keyed_topic_move_with_their_partitions_between_processes() {
    let _heavy = crate::support::heavy().await;
    let dir = tempfile::tempdir().unwrap();
    let (config, shared, inbox) = group_config(dir.path()).await;
    let files = shared.join("per_service");
    hand_over(dir.path(), &config, &inbox, || snapshots(&files).len()).await;
}

/// Processes on several machines share window state and the delivered
/// notifications through an object store (S3, on moto here): the same
/// hand-over as through a shared folder, every window exact, each alert
/// notified once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_move_with_their_partitions_through_state_on_an_object_store() {
    let _heavy = crate::support::heavy().await;
    let s3 = crate::support::moto::S3::start();
    let dir = tempfile::tempdir().unwrap();
    let (config, inbox) =
        group_config_at(dir.path(), "\"s3://weir/group/state\"", &s3.storage()).await;
    let saved = || {
        s3.keys("group/state/per_service/")
            .iter()
            .filter(|k| k.ends_with(".state"))
            .count()
    };
    hand_over(dir.path(), &config, &inbox, saved).await;
    let keys = s3.keys("group/state/");
    assert!(
        keys.iter().any(|k| k.starts_with("group/state/notified/")),
        "deliveries are remembered in the store: {keys:?}"
    );
    assert!(
        keys.iter().any(|k| k.ends_with("/0.owner")),
        "partitions are claimed in the store: {keys:?}"
    );
    for data in ["a", "b"] {
        let local = dir.path().join(data).join("state");
        assert!(!local.exists(), "nothing is kept in {}", local.display());
    }
}

/// Two processes of one group read the keyed topic; one is killed once
/// its partitions' windows were saved (`saved` counts the snapshots) and
/// restarted later: the windows and alerts equal one uninterrupted
/// process's.
async fn hand_over(
    dir: &Path,
    config: &Path,
    inbox: &crate::alerts::Inbox,
    saved: impl Fn() -> usize,
) {
    let broker = Broker::memory();
    broker.create_topic("keyed", 4);
    let (out_a, out_b) = (dir.join("a.ndjson"), dir.join("b.ndjson"));
    let start = |name: &str, out: &Path| {
        Weir::start_with(
            &keyed_rules(&broker.bootstrap(), out),
            dir,
            name,
            Some(config),
        )
    };
    let a = start("a", &out_a);
    let b = start("b", &out_b);
    // Both in the group before data flows.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let producing = tokio::spawn(produce_keyed(broker.bootstrap(), 0..EVENTS));
    // B crashes after its partitions' windows were saved: A takes them
    // over with their state. B comes back later and takes some back (A
    // saves them when they are revoked).
    wait_until(60, "window state saved per partition", || saved() >= 4).await;
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    b.kill();
    tokio::time::sleep(Duration::from_secs(9)).await;
    let b = start("b", &out_b);
    producing.await.unwrap();
    keyed_committed(&broker, EVENTS).await;
    keyed_windows_are_exact(&broker, inbox, [&out_a, &out_b], [a, b]).await;
}

/// A process that paused past its session timeout (a long GC, a frozen
/// VM) wakes up holding partitions that went to another process, which
/// claimed them in the shared state folder: its checkpoints must not save
/// its stale state over the new owner's snapshots. Here the other process's
/// claim is written by the test (a broker-driven takeover of a frozen
/// process is not reproducible on tansu, whose rebalances stall while a
/// member is stopped): the claimed partitions' snapshots stay the other's,
/// the process says why, and its own partitions are saved as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_does_not_save_partitions_another_process_claimed() {
    let _heavy = crate::support::heavy().await;
    let broker = Broker::memory();
    broker.create_topic("keyed", 4);
    let dir = tempfile::tempdir().unwrap();
    let (config, shared, _inbox) = group_config(dir.path()).await;
    let out = dir.path().join("rows.ndjson");
    let log = dir.path().join("weir.log");
    let rules = keyed_rules(&broker.bootstrap(), &out);
    let weir = Weir::start_logging(&rules, dir.path(), "a", Some(&config), &log);
    tokio::time::sleep(Duration::from_secs(6)).await;
    produce_keyed(broker.bootstrap(), 0..4_000).await;
    let files = shared.join("per_service");
    wait_until(60, "window state saved per partition", || {
        snapshots(&files).len() >= 4
    })
    .await;
    keyed_committed(&broker, 4_000).await;
    let read = |p: usize| std::fs::read(files.join(format!("{p}.state"))).unwrap_or_default();
    let own = std::fs::read_to_string(files.join("0.owner")).unwrap();
    // Another process was assigned partitions 2 and 3 and saved them.
    for p in [2, 3] {
        assert_eq!(
            std::fs::read_to_string(files.join(format!("{p}.owner"))).unwrap(),
            own,
            "the process claimed every partition it was assigned"
        );
        std::fs::write(files.join(format!("{p}.owner")), "other-host:1:1:0").unwrap();
        std::fs::write(files.join(format!("{p}.state")), format!("the other's {p}")).unwrap();
    }
    let before = [read(0), read(1)];
    produce_keyed(broker.bootstrap(), 4_000..8_000).await;
    keyed_committed(&broker, 8_000).await;
    wait_until(30, "both claimed partitions fenced", || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.lines()
            .filter(|l| l.contains("another process owns this partition now"))
            .filter(|l| l.contains("partition=2") || l.contains("partition=3"))
            .count()
            >= 2
    })
    .await;
    assert!(weir.terminate().success());
    for p in [2, 3] {
        assert_eq!(
            read(p),
            format!("the other's {p}").into_bytes(),
            "partition {p}'s snapshot is still the other process's"
        );
    }
    assert_ne!([read(0), read(1)], before, "its own partitions are saved");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let fenced_own = text
        .lines()
        .filter(|l| l.contains("another process owns this partition now"))
        .any(|l| l.contains("partition=0 ") || l.contains("partition=1 "));
    assert!(!fenced_own, "its own partitions are not fenced: {text}");
}

/// The snapshot files in a pipeline's per-partition state folder.
pub(crate) fn snapshots(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "state"))
                .collect()
        })
        .unwrap_or_default()
}
