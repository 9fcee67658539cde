//! `repartition by`: windows over a topic whose message keys say nothing of
//! the window's keys (event `i` is of service `svc{i % 5}` and goes to
//! partition `i % P`, as with random keys) count every event of a key in
//! one process. Processes of one group share the work and are killed with
//! SIGKILL at seeded moments mid-stream, then restarted: the killed sender
//! replays what it sent since its last commit (the receiver drops it), the
//! killed receiver's windows move on with their partitions. The window rows
//! equal the exact counts (and distinct users) of every window, and each
//! service's alert fires and resolves once.
//!
//! `WEIR_REPARTITION_EVENTS`, `_PARTITIONS`, `_PROCESSES`, `_KILLS` and
//! `_SEED` scale it (the issue's proof: 1,000,000 events, 6 partitions, 3
//! processes, 8 kills; with `WEIR_TEST_BIN` naming an optimised build).

use crate::kafka::{committed, one_per_batch, produce, produce_to, wait_until, Weir};
use crate::support::env_or;
use crate::support::tansu::Broker;
use crate::window_state::notified_services;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

const SERVICES: usize = 5;
/// Event `i` is `i × 360 ms` after the start.
const STEP_MS: i64 = 360;
const WINDOW_S: i64 = 600;

fn start_time() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339("2026-03-01T00:00:00Z")
        .unwrap()
        .to_utc()
}

fn event(i: usize) -> Vec<u8> {
    let t = start_time() + chrono::Duration::milliseconds(i as i64 * STEP_MS);
    format!(
        r#"{{"timestamp":"{}","service":"svc{}","user":"u{}","message":"event {i}"}}"#,
        t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        i % SERVICES,
        user(i)
    )
    .into_bytes()
}

fn user(i: usize) -> usize {
    i * 7919 % 40
}

/// (window start in seconds, service) → every (count, distinct users)
/// written for it.
type Rows = BTreeMap<(i64, String), BTreeSet<(i64, i64)>>;

fn rows(out: &Path, into: &mut Rows) {
    for line in std::fs::read_to_string(out).unwrap_or_default().lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue; // a line cut by a kill
        };
        let start = chrono::DateTime::parse_from_rfc3339(v["window_start"].as_str().unwrap())
            .unwrap()
            .timestamp();
        into.entry((start, v["service"].as_str().unwrap().to_string()))
            .or_default()
            .insert((v["n"].as_i64().unwrap(), v["users"].as_i64().unwrap()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repartitioned_windows_count_events_of_every_partition_once_across_crashes() {
    let _heavy = crate::support::heavy().await;
    let events = env_or("WEIR_REPARTITION_EVENTS", 30_000) as usize;
    let partitions = env_or("WEIR_REPARTITION_PARTITIONS", 4) as i32;
    let processes = env_or("WEIR_REPARTITION_PROCESSES", 2) as usize;
    let kills = env_or("WEIR_REPARTITION_KILLS", 2);
    let mut seed = env_or("WEIR_REPARTITION_SEED", 20261202);
    let broker = Broker::memory();
    broker.create_topic("spread", partitions as u32);
    let dir = tempfile::tempdir().unwrap();
    let (config, shared, inbox) = crate::window_state::group_config(dir.path()).await;
    // `batch.num.messages=1`: the repartition topic's producer (which takes
    // the source's options) sends one record per batch, as tansu 0.6 needs
    // (see `exactly_once`). The lateness covers how far apart in event
    // time the source partitions are read (a killed process's partitions
    // wait for the rebalance while the others go on): rows of all of them
    // meet in each partition of the repartition topic.
    let rules = |out: &Path| {
        format!(
            r#"source app = kafka(brokers: "{}", topic: "spread", group: "rp", commit_every: 300ms, options: ["session.timeout.ms=6000", "max.poll.interval.ms=30000", "batch.num.messages=1", "linger.ms=0"]) format json fields {{ user: string }}
output rows = file(path: "{}")
pipeline per_service {{
  from app
  | repartition by service
  | window tumbling 10m by service lateness 48h {{ n = count(), users = count_distinct(user) }}
  | to rows
  | alert "busy" when n > 0 notify [hook]
}}
"#,
            broker.bootstrap(),
            out.display()
        )
    };
    let out = |k: usize| dir.path().join(format!("p{k}.ndjson"));
    let start =
        |k: usize| Weir::start_with(&rules(&out(k)), dir.path(), &format!("p{k}"), Some(&config));
    let mut running: Vec<Option<Weir>> = (0..processes).map(|k| Some(start(k))).collect();
    tokio::time::sleep(Duration::from_secs(6)).await;

    // Produced in about 30 slices, so that the kills land mid-stream.
    let bootstrap = broker.bootstrap();
    let slice = (events / 30).max(1_000);
    let producing = tokio::spawn(async move {
        let p = one_per_batch(&bootstrap);
        for chunk in (0..events).collect::<Vec<_>>().chunks(slice) {
            // At most 2,000 in flight: the broker also serves the
            // processes, and a send waiting over a minute fails.
            for part in chunk.chunks(2_000) {
                let payloads: Vec<Vec<u8>> = part.iter().map(|&i| event(i)).collect();
                produce(&p, "spread", partitions, &payloads).await;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    let files = shared.join("per_service");
    let saved = || crate::window_state::snapshots(&files).len();
    wait_until(60, "window state saved per partition", || saved() >= 2).await;
    let started = Instant::now();
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for k in 0..kills {
        let wait_ms = 1_000 + next() % 3_000;
        tokio::time::sleep(Duration::from_millis(wait_ms)).await;
        let victim = (next() % processes as u64) as usize;
        if let Some(w) = running[victim].take() {
            w.kill();
        }
        eprintln!(
            "kill {}: process {victim} at {:.1} s",
            k + 1,
            started.elapsed().as_secs_f64()
        );
        // tansu 0.6 may hand a rejoining member every partition while the
        // killed session is still open, and not rebalance when it ends:
        // restart after the session timeout.
        tokio::time::sleep(Duration::from_secs(7)).await;
        running[victim] = Some(start(victim));
    }
    producing.await.unwrap();
    let topic = "rp-per_service-repartition";
    let total = |group: &str, topic: &str| -> i64 {
        committed(&broker.bootstrap(), group, topic, partitions)
            .iter()
            .map(|o| o.max(&0))
            .sum()
    };
    wait_until(600, "every event sent on and read", || {
        let sent = total("rp", "spread");
        sent >= events as i64 && total(topic, topic) >= sent
    })
    .await;
    eprintln!(
        "{} rows went through the repartition topic for {events} events ({:.1} s after the first kill)",
        total(topic, topic),
        started.elapsed().as_secs_f64()
    );
    // A week after the last event (beyond the lateness), every service in
    // every partition: each window closes.
    let end = start_time()
        + chrono::Duration::milliseconds(events as i64 * STEP_MS)
        + chrono::Duration::days(7);
    let closers: Vec<Vec<u8>> = (0..partitions as usize * SERVICES)
        .map(|i| {
            format!(
                r#"{{"timestamp":"{}","service":"svc{}","user":"closer","message":"closer"}}"#,
                end.to_rfc3339(),
                i / partitions as usize
            )
            .into_bytes()
        })
        .collect();
    produce(
        &one_per_batch(&broker.bootstrap()),
        "spread",
        partitions,
        &closers,
    )
    .await;

    let mut expected: BTreeMap<(i64, String), (i64, BTreeSet<usize>)> = BTreeMap::new();
    let day = start_time().timestamp();
    for i in 0..events {
        let start = day + (i as i64 * STEP_MS / 1000 / WINDOW_S) * WINDOW_S;
        let e = expected
            .entry((start, format!("svc{}", i % SERVICES)))
            .or_default();
        e.0 += 1;
        e.1.insert(user(i));
    }
    let expected: Rows = expected
        .into_iter()
        .map(|(k, (n, users))| (k, BTreeSet::from([(n, users.len() as i64)])))
        .collect();
    let all = || {
        let mut m = Rows::new();
        for k in 0..processes {
            rows(&out(k), &mut m);
        }
        m
    };
    wait_until(180, "every window written", || {
        all().len() >= expected.len()
    })
    .await;
    let services = |status: &str| notified_services(&inbox, status);
    wait_until(60, "every alert resolved", || {
        services("resolved").len() >= SERVICES
    })
    .await;
    for w in running.into_iter().flatten() {
        assert!(w.terminate().success());
    }
    let got = all();
    let wrong: Vec<_> = got
        .iter()
        .filter(|(k, v)| expected.get(*k) != Some(*v))
        .take(5)
        .collect();
    assert!(
        wrong.is_empty() && got.len() == expected.len(),
        "{} of {} windows differ from the exact counts, e.g. {wrong:?}",
        got.iter()
            .filter(|(k, v)| expected.get(*k) != Some(*v))
            .count()
            + expected.keys().filter(|k| !got.contains_key(*k)).count(),
        expected.len()
    );
    let five: Vec<String> = (0..SERVICES).map(|s| format!("svc{s}")).collect();
    assert_eq!(services("firing"), five, "each alert fired once");
    assert_eq!(services("resolved"), five, "each alert resolved once");
}

/// Event time behind the topic moves per source partition: source
/// partition 1 is read after partition 0's whole backlog (both started at
/// the same moment), and the rows of both meet in each partition of the
/// repartition topic. With no lateness, none of partition 1's rows is late
/// — the window waits for it as it would without the topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_partition_read_behind_is_not_late_behind_the_topic() {
    let _heavy = crate::support::heavy().await;
    let broker = Broker::memory();
    broker.create_topic("skew", 2);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rows.ndjson");
    let rules = format!(
        r#"source app = kafka(brokers: "{}", topic: "skew", group: "sk", commit_every: 300ms, options: ["batch.num.messages=1", "linger.ms=0"]) format json
output rows = file(path: "{}")
pipeline per_service {{
  from app
  | repartition by service
  | window tumbling 1m by service {{ n = count() }}
  | to rows
}}
"#,
        broker.bootstrap(),
        out.display()
    );
    let weir = Weir::start(&rules, dir.path(), "p");
    tokio::time::sleep(Duration::from_secs(6)).await;
    // Second s is of service s{s % 10}: the services spread over both
    // partitions of the repartition topic.
    let at = |s: i64| {
        let t = start_time() + chrono::Duration::seconds(s);
        format!(
            r#"{{"timestamp":"{}","service":"s{}","message":"at {s}"}}"#,
            t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            s % 10
        )
        .into_bytes()
    };
    let p = one_per_batch(&broker.bootstrap());
    let send = |partition: i32, seconds: Vec<i64>| {
        let p = p.clone();
        async move {
            for chunk in seconds.chunks(1_000) {
                let bodies: Vec<Vec<u8>> = chunk.iter().map(|&s| at(s)).collect();
                produce_to(&p, "skew", |_| partition, &bodies).await;
            }
        }
    };
    // Both source partitions start together (every service once)...
    send(0, (0..10).collect()).await;
    send(1, (0..10).collect()).await;
    wait_until(60, "both starts read", || {
        committed(&broker.bootstrap(), "sk", "skew", 2)
            .iter()
            .all(|&o| o >= 10)
    })
    .await;
    // ... then partition 0's hour is read before partition 1's.
    const SECONDS: i64 = 3_600;
    send(0, (10..SECONDS).collect()).await;
    send(1, (10..SECONDS).collect()).await;
    // Later events of every service close every window.
    send(0, (SECONDS + 120..SECONDS + 130).collect()).await;
    send(1, (SECONDS + 120..SECONDS + 130).collect()).await;
    let windows = (SECONDS / 60) as usize * 10;
    let counts = || -> BTreeMap<(String, String), i64> {
        std::fs::read_to_string(&out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(|v| {
                let text = |k: &str| v[k].as_str().unwrap_or_default().to_string();
                (
                    (text("window_start"), text("service")),
                    v["n"].as_i64().unwrap_or_default(),
                )
            })
            .collect()
    };
    wait_until(120, "every window written", || counts().len() >= windows).await;
    assert!(weir.terminate().success());
    // Each service has 6 seconds a minute, from each source partition.
    let got = counts();
    let short: Vec<_> = got.iter().filter(|(_, n)| **n != 12).take(5).collect();
    assert!(
        got.len() == windows && short.is_empty(),
        "{} of {} windows differ from 12 events, e.g. {short:?}",
        got.values().filter(|n| **n != 12).count(),
        got.len()
    );
}
