//! Writing text as a JSON string, quoted and escaped, fast: records written
//! a line at a time (dead letters carry whole log lines, themselves JSON
//! full of quotes) spend most of their encoding here. Eight bytes are
//! looked at a time for the few that need an escape (`"`, `\` and control
//! characters); the runs between them are copied whole. The output is the
//! same as `serde_json`'s.

/// Appends `s` to `out` as a JSON string: quoted, with `"`, `\` and control
/// characters escaped (`\n`, `\t`, … or `\u00XX`). Everything else,
/// non-ASCII text included, is copied as it is.
pub fn push_json_string(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    while let Some(at) = next_to_escape(bytes, start) {
        out.extend_from_slice(&bytes[start..at]);
        push_escape(out, bytes[at]);
        start = at + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Whether a byte is written escaped.
fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// The first byte at or after `from` that needs an escape.
fn next_to_escape(bytes: &[u8], mut from: usize) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    // A byte's high bit is set where it is below `n` (or zero); the lowest
    // such byte of a word is always a true one (a borrow only runs upwards).
    let below = |w: u64, n: u8| w.wrapping_sub(ONES * u64::from(n)) & !w & HIGHS;
    let zero = |w: u64| below(w, 1);
    while let Some(word) = bytes.get(from..).and_then(|b| b.first_chunk::<8>()) {
        let w = u64::from_le_bytes(*word);
        let hits = below(w, 0x20) | zero(w ^ (ONES * u64::from(b'"'))) | zero(w ^ (ONES * 0x5c));
        if hits != 0 {
            return Some(from + (hits.trailing_zeros() / 8) as usize);
        }
        from += 8;
    }
    let rest = bytes.get(from..)?;
    rest.iter().position(|&b| needs_escape(b)).map(|i| from + i)
}

fn push_escape(out: &mut Vec<u8>, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let short = match b {
        b'"' => b'"',
        b'\\' => b'\\',
        b'\n' => b'n',
        b'\r' => b'r',
        b'\t' => b't',
        0x08 => b'b',
        0x0c => b'f',
        _ => {
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]);
            return;
        }
    };
    out.extend_from_slice(&[b'\\', short]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quoted(s: &str) -> String {
        let mut out = Vec::new();
        push_json_string(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_same_as_serde_json_for_every_byte_at_every_place() {
        // Each character that needs an escape (and some that do not), alone
        // and at each place in strings long enough to use whole words.
        let specials = [
            '"', '\\', '\n', '\r', '\t', '\u{8}', '\u{c}', '\0', '\u{1f}', '\u{7f}', 'é', '€',
            '😀', '/', ' ', '!', '#', ']', '}',
        ];
        for c in specials {
            for len in 0..40 {
                for at in 0..=len {
                    let mut s: String =
                        "abcdefghijklmnopqrstuvwxyz0123456789ABCD"[..len].to_string();
                    s.insert(at, c);
                    assert_eq!(quoted(&s), serde_json::to_string(&s).unwrap(), "{s:?}");
                }
            }
        }
        for b in 0u8..0x80 {
            let s = (b as char).to_string().repeat(9);
            assert_eq!(quoted(&s), serde_json::to_string(&s).unwrap(), "byte {b}");
        }
    }

    #[test]
    fn log_lines_round_trip() {
        let line =
            r#"{"timestamp":"2026-03-01T00:00:00.001Z","message":"GET /a?b=\"c\" \\ done","n":1}"#;
        for cut in 0..line.len() {
            let s = &line[..cut];
            let q = quoted(s);
            assert_eq!(serde_json::from_str::<String>(&q).unwrap(), s);
        }
        assert_eq!(quoted(""), r#""""#);
    }
}
