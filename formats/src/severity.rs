//! Severity levels and their ordering, shared by the checker and the engine.
//!
//! Real logs spell levels many ways (`warning`, `WARN`, `W`, syslog numbers,
//! bunyan's `level=30`); [`rank`] maps them all onto one scale so that
//! `severity >= warn` means the same thing for every source.

/// Canonical names, indexed by rank.
pub const LEVELS: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];

/// Words accepted as severity literals in rules (lower case).
pub const WORDS: [&str; 12] = [
    "trace",
    "debug",
    "info",
    "notice",
    "warn",
    "warning",
    "error",
    "err",
    "fatal",
    "critical",
    "crit",
    "emergency",
];

/// Rank of a level as written in a rule or a log line; `None` if not a level.
pub fn rank(word: &str) -> Option<u8> {
    let w = word.trim();
    let r = match w.len() {
        0 => return None,
        1 => match w.as_bytes()[0].to_ascii_uppercase() {
            b'T' => 0,
            b'D' => 1,
            b'I' | b'N' => 2,
            b'W' => 3,
            b'E' => 4,
            b'F' | b'C' => 5,
            b'0'..=b'7' => syslog_rank(w.as_bytes()[0] - b'0'),
            _ => return None,
        },
        _ => {
            if let Ok(n) = w.parse::<u32>() {
                return Some(numeric_rank(n));
            }
            let mut buf = [0u8; 12];
            if w.len() > buf.len() {
                return None;
            }
            for (b, c) in buf.iter_mut().zip(w.bytes()) {
                *b = c.to_ascii_lowercase();
            }
            match &buf[..w.len()] {
                b"trace" | b"trc" | b"verbose" => 0,
                b"debug" | b"dbg" => 1,
                b"info" | b"information" | b"informational" | b"notice" | b"inf" => 2,
                b"warn" | b"warning" | b"wrn" => 3,
                b"error" | b"err" | b"eror" => 4,
                b"fatal" | b"critical" | b"crit" | b"alert" | b"emerg" | b"emergency"
                | b"panic" | b"ftl" => 5,
                _ => return None,
            }
        }
    };
    Some(r)
}

/// Canonical name for a rank (clamped).
pub fn name(rank: u8) -> &'static str {
    LEVELS[(rank as usize).min(LEVELS.len() - 1)]
}

/// Syslog priorities: 0 emergency .. 7 debug.
fn syslog_rank(p: u8) -> u8 {
    match p {
        0..=2 => 5,
        3 => 4,
        4 => 3,
        5 | 6 => 2,
        _ => 1,
    }
}

/// Numeric levels: 0-7 are syslog priorities; 10-60 are bunyan/pino levels.
fn numeric_rank(n: u32) -> u8 {
    match n {
        0..=7 => syslog_rank(n as u8),
        8..=10 => 0,
        11..=20 => 1,
        21..=30 => 2,
        31..=40 => 3,
        41..=50 => 4,
        _ => 5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_common_spellings() {
        assert_eq!(rank("warning"), Some(3));
        assert_eq!(rank("WARN"), Some(3));
        assert_eq!(rank("W"), Some(3));
        assert_eq!(rank("E"), Some(4));
        assert_eq!(rank("30"), Some(2));
        assert_eq!(rank("3"), Some(4));
        assert_eq!(rank("critical"), Some(5));
        assert_eq!(rank("banana"), None);
        assert_eq!(rank(""), None);
        assert_eq!(name(4), "ERROR");
    }
}
