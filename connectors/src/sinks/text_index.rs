//! The archive's full-text index: for each row group of a file, a bloom
//! filter of the byte trigrams of `message` (lower-cased), kept in the
//! file's footer under [`KEY`]. A substring search — `LIKE '%word%'`,
//! `ILIKE`, `strpos`, `contains`, the console's search terms — needs every
//! trigram of its word, so a row group whose filter lacks one cannot hold a
//! match and is not read (ClickHouse's `ngrambf` skip index, per row group).
//!
//! Trigrams, not words: a word index cannot answer `LIKE '%time%'` (a
//! substring of `timeout`), trigrams answer any substring of three bytes or
//! more. Lower-cased (ASCII, plus Unicode lower-casing and `ſ` → `s` for
//! text that is not ASCII) so case-insensitive searches use it too; a
//! needle that is not ASCII is never used to skip, so no case-folding rule
//! can hide a match. Files without the index (written before it) are read
//! whole.

use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;
use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

/// The footer key holding the index.
pub const KEY: &str = "weir.text_index";
/// The column indexed.
pub const COLUMN: &str = "message";
/// Version of the encoding (the first field of the value).
const VERSION: &str = "1";
/// Bloom bits per distinct trigram (about 1.7 % false positives with
/// [`PROBES`] probes), and the most bits a row group's filter gets.
const BITS_PER_TRIGRAM: usize = 10;
const MAX_BITS: usize = 1 << 21;
const PROBES: u64 = 3;

/// A trigram: three bytes in one integer.
type Trigram = u32;

/// Hashes a trigram set's keys (already well spread: three bytes) with one
/// multiply.
#[derive(Default)]
struct Mix(u64);

impl Hasher for Mix {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u32(&mut self, v: u32) {
        self.0 = u64::from(v).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// The distinct trigrams of the texts of one row group.
#[derive(Default)]
pub struct TrigramSet(HashSet<Trigram, BuildHasherDefault<Mix>>);

impl TrigramSet {
    pub fn add_text(&mut self, text: &str) {
        if text.is_ascii() {
            self.add_bytes(text.as_bytes());
        } else {
            // Both spellings: bytes as written (ASCII lower-cased), and the
            // Unicode lower-casing a case-insensitive search compares with.
            self.add_bytes(text.as_bytes());
            let folded: String = text
                .chars()
                .flat_map(char::to_lowercase)
                .map(|c| if c == 'ſ' { 's' } else { c })
                .collect();
            self.add_bytes(folded.as_bytes());
        }
    }

    fn add_bytes(&mut self, b: &[u8]) {
        for w in b.windows(3) {
            self.0.insert(trigram(w));
        }
    }

    /// Adds every text of a text column (plain, large, view, or a
    /// dictionary of text: its values, a superset of the rows'). Other
    /// types add nothing.
    pub fn add_array(&mut self, a: &dyn Array) {
        match a.data_type() {
            DataType::Utf8 => a
                .as_string::<i32>()
                .iter()
                .flatten()
                .for_each(|t| self.add_text(t)),
            DataType::LargeUtf8 => a
                .as_string::<i64>()
                .iter()
                .flatten()
                .for_each(|t| self.add_text(t)),
            DataType::Utf8View => a
                .as_string_view()
                .iter()
                .flatten()
                .for_each(|t| self.add_text(t)),
            DataType::Dictionary(_, _) => {
                if let Some(d) = a.as_any_dictionary_opt() {
                    self.add_array(d.values().as_ref());
                }
            }
            _ => {}
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The set as a bloom filter, sized for its count.
    pub fn to_bloom(&self) -> Bloom {
        let bits = (self.0.len() * BITS_PER_TRIGRAM)
            .next_power_of_two()
            .clamp(64, MAX_BITS);
        let mut bloom = Bloom {
            words: vec![0; bits / 64],
        };
        for t in &self.0 {
            bloom.insert(*t);
        }
        bloom
    }
}

fn trigram(w: &[u8]) -> Trigram {
    let l = |b: u8| u32::from(b.to_ascii_lowercase());
    (l(w[0]) << 16) | (l(w[1]) << 8) | l(w[2])
}

/// A bloom filter of trigrams; its size is a power of two of at least 64
/// bits.
#[derive(Debug, Clone, PartialEq)]
pub struct Bloom {
    words: Vec<u64>,
}

impl Bloom {
    fn positions(&self, t: Trigram) -> impl Iterator<Item = usize> {
        // splitmix64 of the trigram, split in two for double hashing.
        let mut z = u64::from(t).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let (h1, h2) = (z & 0xFFFF_FFFF, (z >> 32) | 1);
        let mask = (self.words.len() * 64 - 1) as u64;
        (0..PROBES).map(move |i| (h1.wrapping_add(i.wrapping_mul(h2)) & mask) as usize)
    }

    fn insert(&mut self, t: Trigram) {
        let ps: Vec<usize> = self.positions(t).collect();
        for p in ps {
            self.words[p / 64] |= 1 << (p % 64);
        }
    }

    fn may_contain(&self, t: Trigram) -> bool {
        self.positions(t)
            .all(|p| self.words[p / 64] & (1 << (p % 64)) != 0)
    }

    /// Bytes the filter takes.
    pub fn size(&self) -> usize {
        self.words.len() * 8
    }
}

/// The trigrams a needle needs, or `None` when the index cannot answer for
/// it (shorter than three bytes, or not ASCII).
pub fn needle_trigrams(needle: &str) -> Option<Vec<Trigram>> {
    if needle.len() < 3 || !needle.is_ascii() {
        return None;
    }
    let mut t: Vec<Trigram> = needle.as_bytes().windows(3).map(trigram).collect();
    t.sort_unstable();
    t.dedup();
    Some(t)
}

/// One file's index: a filter per row group, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct TextIndex {
    pub column: String,
    pub row_groups: Vec<Bloom>,
}

impl TextIndex {
    /// Whether row group `i` may hold a text containing every needle (each
    /// given as its [`needle_trigrams`]). A row group the index does not
    /// know may.
    pub fn may_match(&self, i: usize, needles: &[Vec<Trigram>]) -> bool {
        self.row_groups
            .get(i)
            .is_none_or(|b| needles.iter().all(|n| n.iter().all(|t| b.may_contain(*t))))
    }

    /// Bytes of the filters.
    pub fn size(&self) -> usize {
        self.row_groups.iter().map(Bloom::size).sum()
    }

    /// The footer value: `1;COLUMN;` then each row group's filter as
    /// base64 of its little-endian words, comma-separated.
    pub fn encode(&self) -> String {
        use base64::Engine;
        let groups: Vec<String> = self
            .row_groups
            .iter()
            .map(|b| {
                let bytes: Vec<u8> = b.words.iter().flat_map(|w| w.to_le_bytes()).collect();
                base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
            })
            .collect();
        format!("{VERSION};{};{}", self.column, groups.join(","))
    }

    /// Reads a footer value; `None` for anything it does not understand
    /// (another version, damage), so the file is read whole.
    pub fn decode(value: &str) -> Option<TextIndex> {
        use base64::Engine;
        let mut parts = value.splitn(3, ';');
        if parts.next()? != VERSION {
            return None;
        }
        let column = parts.next()?.to_string();
        let groups = parts.next()?;
        let mut row_groups = Vec::new();
        for g in groups.split(',').filter(|g| !g.is_empty()) {
            let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(g)
                .ok()?;
            if bytes.len() < 8 || !(bytes.len() / 8).is_power_of_two() || bytes.len() % 8 != 0 {
                return None;
            }
            let words = bytes
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect();
            row_groups.push(Bloom { words });
        }
        Some(TextIndex { column, row_groups })
    }

    /// The index in a file's footer, if it has one.
    pub fn of_file(meta: &parquet::file::metadata::ParquetMetaData) -> Option<TextIndex> {
        let kv = meta.file_metadata().key_value_metadata()?;
        let value = kv.iter().find(|k| k.key == KEY)?.value.as_deref()?;
        let index = TextIndex::decode(value)?;
        // An index for another layout of row groups is no index.
        (index.row_groups.len() == meta.num_row_groups()).then_some(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{DictionaryArray, StringArray};
    use arrow::datatypes::Int32Type;

    fn index(groups: &[&[&str]]) -> TextIndex {
        TextIndex {
            column: COLUMN.into(),
            row_groups: groups
                .iter()
                .map(|texts| {
                    let mut s = TrigramSet::default();
                    for t in *texts {
                        s.add_text(t);
                    }
                    s.to_bloom()
                })
                .collect(),
        }
    }

    fn needles(words: &[&str]) -> Vec<Vec<Trigram>> {
        words.iter().map(|w| needle_trigrams(w).unwrap()).collect()
    }

    #[test]
    fn a_row_group_without_the_word_is_skipped_and_one_with_it_never() {
        let ix = index(&[
            &["connection reset by peer", "GET /health 200"],
            &["upstream Timeout after 30s", "disk full on /var"],
        ]);
        let ix = TextIndex::decode(&ix.encode()).unwrap();
        // Substrings, any case, several words at once.
        assert!(ix.may_match(1, &needles(&["timeout"])));
        assert!(ix.may_match(1, &needles(&["TIME", "full"])));
        assert!(ix.may_match(0, &needles(&["eset by"])));
        assert!(!ix.may_match(0, &needles(&["timeout"])));
        assert!(!ix.may_match(1, &needles(&["timeout", "reset"])));
        // Unknown row groups may match.
        assert!(ix.may_match(7, &needles(&["anything"])));
        // Short or non-ASCII needles cannot be answered.
        assert!(needle_trigrams("ab").is_none());
        assert!(needle_trigrams("größe").is_none());
    }

    #[test]
    fn unicode_text_is_found_by_case_insensitive_ascii_needles() {
        // The Kelvin sign lower-cases to `k`, the long s folds to `s`.
        let ix = index(&[&["\u{212A}ELVIN and ſtatus"]]);
        assert!(ix.may_match(0, &needles(&["kelvin"])));
        assert!(ix.may_match(0, &needles(&["status"])));
    }

    #[test]
    fn dictionaries_add_their_values() {
        let d: DictionaryArray<Int32Type> = vec!["alpha beta", "gamma", "alpha beta"]
            .into_iter()
            .collect();
        let mut s = TrigramSet::default();
        s.add_array(&d);
        s.add_array(&StringArray::from(vec![Some("delta"), None]));
        let b = TextIndex {
            column: COLUMN.into(),
            row_groups: vec![s.to_bloom()],
        };
        for w in ["beta", "gamma", "delta"] {
            assert!(b.may_match(0, &needles(&[w])), "{w}");
        }
        assert!(!b.may_match(0, &needles(&["omega"])));
    }

    #[test]
    fn false_positives_stay_near_the_design_rate() {
        let mut s = TrigramSet::default();
        for i in 0..20_000 {
            s.add_text(&format!("request {i:08x} served"));
        }
        let b = s.to_bloom();
        let absent = (0..10_000u32)
            .map(|i| 0x0100_0000 | i) // no text byte is 0x01
            .filter(|t| b.may_contain(*t))
            .count();
        assert!(
            absent < 500,
            "{absent} of 10,000 absent trigrams reported present"
        );
    }

    #[test]
    fn damaged_or_foreign_values_are_no_index() {
        assert!(TextIndex::decode("2;message;AAAAAAAAAAA").is_none());
        assert!(TextIndex::decode("1;message;@@@").is_none());
        assert!(TextIndex::decode("1;message;AAAA").is_none());
    }
}
