//! `type: syslog`: RFC 5424 and RFC 3164 messages over UDP (one per
//! datagram) or TCP (newline-framed, or octet-counted as in RFC 6587).
//! The priority gives `severity` (and `facility`); the header gives
//! `timestamp`, `host` and `appname` (used as `service` unless the source
//! sets one). RFC 5424 structured data becomes fields: each parameter under
//! its name (`[exampleSDID@32473 iut="3"]` gives `iut: "3"`, escapes
//! undone), unless the message already has a field of that name; the
//! elements as written stay in `structured_data`. An RFC 3164 time has no
//! year: it is the receive time's, or the year before when that would put
//! the message more than a day in the future (a December message received
//! in January) — the engine's timestamp parser, `weir_formats::timestamp`.

use super::SourceCtx;
use crate::ShipError;
use chrono::Utc;
use serde_json::{Map, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::{TcpListener, UdpSocket};

pub async fn run(ctx: SourceCtx) -> Result<(), ShipError> {
    let listen = ctx.cfg.listen.clone().unwrap_or_default();
    match ctx.cfg.protocol {
        crate::config::Protocol::Udp => udp(ctx, &listen).await,
        crate::config::Protocol::Tcp => tcp(ctx, &listen).await,
    }
}

async fn udp(mut ctx: SourceCtx, listen: &str) -> Result<(), ShipError> {
    let sock = UdpSocket::bind(listen)
        .await
        .map_err(|e| ShipError::io(format!("cannot listen on udp {listen}"), e))?;
    let mut buf = vec![0u8; 65536];
    loop {
        let n = tokio::select! {
            _ = ctx.cancel.cancelled() => return Ok(()),
            r = sock.recv_from(&mut buf) => r.map_err(|e| ShipError::io("udp", e))?.0,
        };
        let mut msgs = vec![String::from_utf8_lossy(&buf[..n]).into_owned()];
        while msgs.len() < 512 {
            match sock.try_recv_from(&mut buf) {
                Ok((n, _)) => msgs.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
                Err(_) => break,
            }
        }
        send(&mut ctx, msgs).await;
    }
}

async fn tcp(ctx: SourceCtx, listen: &str) -> Result<(), ShipError> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| ShipError::io(format!("cannot listen on tcp {listen}"), e))?;
    let ctx = std::sync::Arc::new(tokio::sync::Mutex::new(ctx));
    let cancel = ctx.lock().await.cancel.clone();
    loop {
        let (conn, _) = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            r = listener.accept() => r.map_err(|e| ShipError::io("tcp", e))?,
        };
        let ctx = ctx.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let mut r = BufReader::new(conn);
            loop {
                let msg = tokio::select! {
                    _ = cancel.cancelled() => return,
                    m = read_frame(&mut r) => m,
                };
                match msg {
                    Ok(Some(m)) => send(&mut *ctx.lock().await, vec![m]).await,
                    _ => return,
                }
            }
        });
    }
}

/// One message: octet-counted (`LEN SP MSG`) or up to a newline.
async fn read_frame<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
) -> std::io::Result<Option<String>> {
    let buf = r.fill_buf().await?;
    if buf.is_empty() {
        return Ok(None);
    }
    if buf[0].is_ascii_digit() {
        let mut len = Vec::new();
        r.read_until(b' ', &mut len).await?;
        let n: usize = String::from_utf8_lossy(&len).trim().parse().unwrap_or(0);
        let mut msg = vec![0u8; n.min(1 << 20)];
        r.read_exact(&mut msg).await?;
        return Ok(Some(String::from_utf8_lossy(&msg).into_owned()));
    }
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line).await?;
    let s = String::from_utf8_lossy(&line);
    Ok(Some(s.trim_end_matches(['\r', '\n']).to_string()))
}

async fn send(ctx: &mut SourceCtx, msgs: Vec<String>) {
    let now = Utc::now();
    let built: Vec<_> = msgs
        .iter()
        .map(|m| ctx.shape.fields(parse(m, now.timestamp_micros()), now))
        .collect();
    let _ = ctx.send_built(built, false).await;
}

/// Fields of one syslog message (5424 or 3164) received at `now_us`;
/// unparseable text becomes the message.
pub fn parse(text: &str, now_us: i64) -> Map<String, Value> {
    let mut m = Map::new();
    let s = text.trim_end();
    let Some(rest) = s.strip_prefix('<') else {
        m.insert("message".into(), Value::String(s.into()));
        return m;
    };
    let Some((pri, rest)) = rest.split_once('>') else {
        m.insert("message".into(), Value::String(s.into()));
        return m;
    };
    if let Ok(p) = pri.parse::<u32>() {
        m.insert("priority".into(), Value::from(p & 7));
        m.insert("facility".into(), Value::from(p >> 3));
    }
    let str_field = |m: &mut Map<String, Value>, k: &str, v: &str| {
        if v != "-" && !v.is_empty() {
            m.insert(k.into(), Value::String(v.into()));
        }
    };
    if let Some(r5424) = rest.strip_prefix("1 ") {
        // VERSION TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG
        let mut parts = r5424.splitn(6, ' ');
        str_field(&mut m, "timestamp", parts.next().unwrap_or("-"));
        str_field(&mut m, "host", parts.next().unwrap_or("-"));
        str_field(&mut m, "appname", parts.next().unwrap_or("-"));
        str_field(&mut m, "procid", parts.next().unwrap_or("-"));
        str_field(&mut m, "msgid", parts.next().unwrap_or("-"));
        let tail = parts.next().unwrap_or("");
        let msg = if let Some(t) = tail.strip_prefix("- ") {
            t
        } else if tail == "-" {
            ""
        } else if tail.starts_with('[') {
            let (params, end) = structured_data(tail);
            str_field(&mut m, "structured_data", &tail[..end]);
            for (k, v) in params {
                m.entry(k).or_insert(Value::String(v));
            }
            tail[end..].strip_prefix(' ').unwrap_or(&tail[end..])
        } else {
            tail
        };
        m.insert(
            "message".into(),
            Value::String(msg.trim_start_matches('\u{feff}').into()),
        );
    } else {
        // Mmm dd hh:mm:ss HOST TAG[PID]: MSG
        let ts = rest.get(..15).unwrap_or("");
        match weir_formats::timestamp::TimestampParser::default().parse(ts, now_us) {
            Ok(us) => {
                let after = rest.get(16..).unwrap_or("");
                let t = chrono::DateTime::from_timestamp_micros(us).unwrap_or_default();
                m.insert("timestamp".into(), Value::String(t.to_rfc3339()));
                let (host, after) = after.split_once(' ').unwrap_or((after, ""));
                str_field(&mut m, "host", host);
                match after.split_once(": ") {
                    Some((tag, msg)) if !tag.contains(' ') => {
                        let (app, pid) = match tag.split_once('[') {
                            Some((a, p)) => (a, p.trim_end_matches(']')),
                            None => (tag, ""),
                        };
                        str_field(&mut m, "appname", app);
                        str_field(&mut m, "procid", pid);
                        m.insert("message".into(), Value::String(msg.into()));
                    }
                    _ => {
                        m.insert("message".into(), Value::String(after.into()));
                    }
                }
            }
            Err(_) => {
                m.insert("message".into(), Value::String(rest.into()));
            }
        }
    }
    if let Some(app) = m.get("appname").cloned() {
        m.entry("service").or_insert(app);
    }
    m
}

/// RFC 5424 structured data at the start of `text` (`[id k="v" ...]...`):
/// its parameters with their values unescaped (`\"`, `\\`, `\]`), and where
/// the elements end. A malformed element ends the structured data there.
fn structured_data(text: &str) -> (Vec<(String, String)>, usize) {
    let b = text.as_bytes();
    let mut params = Vec::new();
    let mut i = 0;
    while b.get(i) == Some(&b'[') {
        // The SD-ID, then ` name="value"` pairs, then `]`.
        let Some(sp) = text[i..].find([' ', ']']).map(|p| i + p) else {
            return (params, i);
        };
        let mut j = sp;
        loop {
            match b.get(j) {
                Some(b']') => {
                    j += 1;
                    break;
                }
                Some(b' ') => {
                    let Some(eq) = text[j + 1..].find('=').map(|p| j + 1 + p) else {
                        return (params, i);
                    };
                    let name = &text[j + 1..eq];
                    if b.get(eq + 1) != Some(&b'"') || name.is_empty() || name.contains(' ') {
                        return (params, i);
                    }
                    let mut value = String::new();
                    let mut k = eq + 2;
                    let mut chars = text[k..].char_indices();
                    let mut closed = false;
                    while let Some((at, c)) = chars.next() {
                        match c {
                            '\\' => match chars.next() {
                                Some((_, e @ ('"' | '\\' | ']'))) => value.push(e),
                                Some((_, e)) => {
                                    value.push('\\');
                                    value.push(e);
                                }
                                None => break,
                            },
                            '"' => {
                                k += at + 1;
                                closed = true;
                                break;
                            }
                            c => value.push(c),
                        }
                    }
                    if !closed {
                        return (params, i);
                    }
                    params.push((name.to_string(), value));
                    j = k;
                }
                _ => return (params, i),
            }
        }
        i = j;
    }
    (params, i)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_788_000_000_000_000; // 2026-08-29

    #[test]
    fn parses_rfc5424() {
        let m = parse("<165>1 2026-08-24T05:14:15.003Z web-1 checkout 8710 ID47 [exampleSDID@32473 iut=\"3\"] payment failed", NOW);
        assert_eq!(m["priority"], 5);
        assert_eq!(m["facility"], 20);
        assert_eq!(m["timestamp"], "2026-08-24T05:14:15.003Z");
        assert_eq!(m["host"], "web-1");
        assert_eq!(m["service"], "checkout");
        assert_eq!(m["message"], "payment failed");
    }

    #[test]
    fn parses_rfc3164() {
        let m = parse(
            "<11>Oct 11 22:14:15 db-2 postgres[123]: connection refused",
            NOW,
        );
        assert_eq!(m["priority"], 3);
        assert_eq!(m["host"], "db-2");
        assert_eq!(m["appname"], "postgres");
        assert_eq!(m["procid"], "123");
        assert_eq!(m["message"], "connection refused");
    }

    #[test]
    fn structured_data_parameters_become_fields() {
        let m = parse(
            r#"<165>1 2026-08-24T05:14:15Z web-1 checkout - - [req@1 user="ann" path="/a\"b\]c"][meta host="spoof" ip="10.0.0.1"] paid"#,
            NOW,
        );
        assert_eq!(m["user"], "ann");
        assert_eq!(m["path"], r#"/a"b]c"#);
        assert_eq!(m["ip"], "10.0.0.1");
        // The header's host wins over a parameter of the same name.
        assert_eq!(m["host"], "web-1");
        assert_eq!(m["message"], "paid");
        assert!(m["structured_data"]
            .as_str()
            .unwrap()
            .ends_with(r#"ip="10.0.0.1"]"#));
        // No structured data, and a malformed element: the text is the message.
        let m = parse("<165>1 2026-08-24T05:14:15Z web-1 app - - - plain", NOW);
        assert_eq!(m["message"], "plain");
        let m = parse(
            r#"<165>1 2026-08-24T05:14:15Z web-1 app - - [broken x=1] text"#,
            NOW,
        );
        assert!(m.get("x").is_none());
    }

    #[test]
    fn a_december_message_received_in_january_is_last_year() {
        let jan = 1_767_229_200_000_000; // 2026-01-01T01:00:00Z
        let m = parse("<11>Dec 31 23:59:58 db-2 postgres[1]: late", jan);
        assert_eq!(m["timestamp"], "2025-12-31T23:59:58+00:00");
        let m = parse("<11>Jan  1 00:59:00 db-2 postgres[1]: now", jan);
        assert_eq!(m["timestamp"], "2026-01-01T00:59:00+00:00");
    }
}
