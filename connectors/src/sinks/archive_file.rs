//! How one archive file is written, by the archive sink and by compaction:
//! the Parquet properties, and the Arrow schema embedded in the footer.
//!
//! The embedded schema marks every text column whose pages are all
//! dictionary-encoded in this file as `Dictionary(Int32, Utf8)`. It is only
//! a read hint (the Parquet column is the same text either way): Arrow
//! readers (DataFusion, pyarrow) then keep such columns as dictionaries, so
//! `LIKE`, `=` and `GROUP BY` work once per distinct value instead of once
//! per row. A column whose dictionary overflowed into plain pages (trace
//! ids, addresses) stays plain text.

use super::text_index::{self, Bloom, TextIndex, TrigramSet};
use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::arrow_writer::ArrowWriterOptions;
use parquet::arrow::{encode_arrow_schema, ArrowWriter, ARROW_SCHEMA_META_KEY};
use parquet::basic::{Compression, Encoding, PageType, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::metadata::{ColumnChunkMetaData, KeyValue, ParquetMetaData, RowGroupMetaData};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use std::collections::BTreeSet;
use weir_dsl::types::{OFFSET, TIMESTAMP};

/// The type a fully dictionary-encoded text column is read as.
pub fn dictionary_text() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

/// Rows of a row group at most (also the most distinct values a row
/// group's bloom filter is sized for), and of a data page. A needle lookup
/// decodes its column in every row group its bloom filter keeps, then one
/// page of each other column for the row it finds, so these bound a
/// lookup's work; each row group and page also costs scans a little (its
/// dictionaries, decoders, statistics, page headers). Measured on the
/// needle benchmark (20M events; docs/archive.md): against 262,144-row
/// groups and 20,000-row pages (Parquet's default), the lookups by id and
/// by address took 16–20 → 12–15 ms, a rare word 85 → 52 ms, with files
/// 6 % larger and a scan of a whole hour reading 7 % more bytes (16 % more
/// CPU). DuckDB's default row group is 122,880 rows.
const ROW_GROUP_ROWS: usize = 128 * 1024;
const PAGE_ROWS: usize = 8 * 1024;

/// How archive files are written: zstd, dictionaries for the (mostly
/// low-cardinality) text columns, delta encoding for event time and source
/// offsets, which mostly rise in small steps (a few bits a row instead of
/// eight bytes), and a bloom filter per row group for the text columns
/// people look events up by (see [`looked_up_by_value`]), so a needle query
/// (`WHERE trace_id = '…'`) skips the row groups that cannot hold it. The
/// filters are sized for a full row group at 1 % false positives and folded
/// down to what the row group holds (a small file pays a few bytes).
pub fn properties(schema: &Schema, index: &BloomColumns) -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap_or_default()))
        .set_dictionary_enabled(true)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_data_page_row_count_limit(PAGE_ROWS);
    for col in [TIMESTAMP, OFFSET] {
        let path = ColumnPath::from(col);
        b = b
            .set_column_dictionary_enabled(path.clone(), false)
            .set_column_encoding(path, Encoding::DELTA_BINARY_PACKED);
    }
    for f in schema.fields() {
        if is_text(f.data_type()) && index.has(f.name()) {
            let path = ColumnPath::from(f.name().as_str());
            b = b
                .set_column_bloom_filter_enabled(path.clone(), true)
                .set_column_bloom_filter_fpp(path.clone(), 0.01)
                .set_column_bloom_filter_max_ndv(path, ROW_GROUP_ROWS as u64);
        }
    }
    b.build()
}

/// Which text columns get a bloom filter per row group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum BloomColumns {
    /// The ones people look events up by ([`looked_up_by_value`]).
    #[default]
    Usual,
    /// These (none when empty): an archive's `index (…)`.
    Named(BTreeSet<String>),
}

impl BloomColumns {
    pub fn named<S: Into<String>>(names: impl IntoIterator<Item = S>) -> BloomColumns {
        BloomColumns::Named(names.into_iter().map(Into::into).collect())
    }

    pub fn has(&self, column: &str) -> bool {
        match self {
            BloomColumns::Usual => looked_up_by_value(column),
            BloomColumns::Named(names) => names.contains(column),
        }
    }

    /// The columns with a filter in some row group of these files: what a
    /// rewrite of them (compaction, a trim) keeps, whatever the archive
    /// named when they were written.
    pub fn of_files<'a>(files: impl IntoIterator<Item = &'a ParquetMetaData>) -> BloomColumns {
        let mut names = BTreeSet::new();
        for m in files {
            for rg in m.row_groups() {
                for c in rg.columns() {
                    if c.bloom_filter_offset().is_some() {
                        names.insert(c.column_path().string());
                    }
                }
            }
        }
        BloomColumns::Named(names)
    }
}

/// Whether a text column is one people look events up by (trace, span,
/// request, session and user ids, addresses, hosts): `host`, `user`, and
/// names ending in `id`, `ip`, `host`, `addr` or `address` (`trace_id`,
/// `requestId`, `client_ip`, `remote_addr`), whatever the case.
pub fn looked_up_by_value(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n == "host"
        || n == "user"
        || n == "ip"
        || ["id", "_ip", "host", "addr", "address", "uuid"]
            .iter()
            .any(|end| n.ends_with(end))
}

/// One archive file being written, in memory.
pub struct FileWriter {
    writer: ArrowWriter<Vec<u8>>,
    schema: SchemaRef,
    /// Rows in the row group being written (the writer cuts row groups
    /// here, at [`ROW_GROUP_ROWS`], so the text index knows its rows).
    rows_in_group: usize,
    /// The full-text index being built: the `message` column's position,
    /// the row group in progress, the finished ones.
    text: Option<(usize, TrigramSet, Vec<Bloom>)>,
}

impl FileWriter {
    pub fn new(schema: SchemaRef, index: &BloomColumns) -> Result<FileWriter, ParquetError> {
        let options = ArrowWriterOptions::new()
            .with_properties(properties(&schema, index))
            // `finish` embeds the schema, once it knows which columns stayed
            // dictionary-encoded.
            .with_skip_arrow_metadata(true);
        let writer = ArrowWriter::try_new_with_options(Vec::new(), schema.clone(), options)?;
        let text = schema
            .index_of(text_index::COLUMN)
            .ok()
            .filter(|i| {
                let t = schema.field(*i).data_type();
                is_text(t) || matches!(t, DataType::Dictionary(_, v) if is_text(v))
            })
            .map(|i| (i, TrigramSet::default(), Vec::new()));
        Ok(FileWriter {
            writer,
            schema,
            rows_in_group: 0,
            text,
        })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), ParquetError> {
        let mut offset = 0;
        while offset < batch.num_rows() {
            let n = (ROW_GROUP_ROWS - self.rows_in_group).min(batch.num_rows() - offset);
            let part = batch.slice(offset, n);
            if let Some((col, set, _)) = &mut self.text {
                set.add_array(part.column(*col).as_ref());
            }
            self.writer.write(&part)?;
            self.rows_in_group += n;
            offset += n;
            if self.rows_in_group >= ROW_GROUP_ROWS {
                self.end_row_group()?;
            }
        }
        Ok(())
    }

    /// Closes the row group in progress, and its text index.
    fn end_row_group(&mut self) -> Result<(), ParquetError> {
        self.writer.flush()?;
        if self.rows_in_group > 0 {
            if let Some((_, set, done)) = &mut self.text {
                done.push(std::mem::take(set).to_bloom());
            }
        }
        self.rows_in_group = 0;
        Ok(())
    }

    /// Bytes written so far, with the row group in progress.
    pub fn size(&self) -> usize {
        self.writer.bytes_written() + self.writer.in_progress_size()
    }

    /// Closes the file and returns its bytes, with the Arrow schema (and
    /// its dictionary read hints) embedded.
    pub fn finish(mut self) -> Result<Vec<u8>, ParquetError> {
        self.end_row_group()?;
        if let Some((_, _, row_groups)) = self.text.take() {
            // Only an index of exactly the file's row groups is written.
            if row_groups.len() == self.writer.flushed_row_groups().len() && !row_groups.is_empty()
            {
                let index = TextIndex {
                    column: text_index::COLUMN.to_string(),
                    row_groups,
                };
                self.writer.append_key_value_metadata(KeyValue::new(
                    text_index::KEY.to_string(),
                    index.encode(),
                ));
            }
        }
        let schema = with_hints(&self.schema, self.writer.flushed_row_groups());
        self.writer.append_key_value_metadata(KeyValue::new(
            ARROW_SCHEMA_META_KEY.to_string(),
            encode_arrow_schema(&schema),
        ));
        self.writer.into_inner()
    }
}

/// `schema` with its text columns marked as dictionaries where every row
/// group holds them fully dictionary-encoded.
fn with_hints(schema: &Schema, row_groups: &[RowGroupMetaData]) -> Schema {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            let text = is_text(f.data_type());
            let encoded = !row_groups.is_empty()
                && row_groups.iter().all(|rg| {
                    rg.columns()
                        .iter()
                        .find(|c| c.column_path().parts() == [f.name().as_str()])
                        .is_some_and(all_dictionary_pages)
                });
            if text && encoded {
                f.as_ref().clone().with_data_type(dictionary_text())
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    let mut metadata = schema.metadata().clone();
    metadata.remove(text_index::KEY);
    Schema::new_with_metadata(fields, metadata)
}

/// Whether every data page of the column chunk is dictionary-encoded.
fn all_dictionary_pages(c: &ColumnChunkMetaData) -> bool {
    let dictionary =
        |e: Encoding| matches!(e, Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY);
    if c.dictionary_page_offset().is_none() {
        return false;
    }
    if let Some(stats) = c.page_encoding_stats() {
        return stats
            .iter()
            .filter(|s| matches!(s.page_type, PageType::DATA_PAGE | PageType::DATA_PAGE_V2))
            .all(|s| dictionary(s.encoding));
    }
    c.page_encoding_stats_mask().is_some_and(|m| {
        m.is_only(Encoding::RLE_DICTIONARY) || m.is_only(Encoding::PLAIN_DICTIONARY)
    })
}

/// `schema` with dictionary read hints taken off (text columns as plain
/// text) and without the file's text index (which a Parquet reader puts in
/// the schema's metadata), so files written with and without hints merge
/// into one schema and a rewritten file gets an index of its own rows.
pub fn without_hints(schema: &Schema) -> Schema {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Dictionary(_, v) if is_text(v) => {
                f.as_ref().clone().with_data_type(v.as_ref().clone())
            }
            _ => f.as_ref().clone(),
        })
        .collect();
    let mut metadata = schema.metadata().clone();
    metadata.remove(text_index::KEY);
    Schema::new_with_metadata(fields, metadata)
}

/// Whether `t` is a text type.
pub fn is_text(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// A stored Parquet file's metadata, read from its footer with two ranged
/// reads (the 8-byte tail, then the metadata).
pub async fn read_footer(
    store: &dyn object_store::ObjectStore,
    meta: &object_store::ObjectMeta,
) -> Result<parquet::file::metadata::ParquetMetaData, String> {
    use object_store::ObjectStoreExt;
    use parquet::file::metadata::{FooterTail, ParquetMetaDataReader};
    let size = meta.size;
    let short = || format!("{} is too short for a Parquet file", meta.location);
    let tail = store
        .get_range(&meta.location, size.checked_sub(8).ok_or_else(short)?..size)
        .await
        .map_err(|e| e.to_string())?;
    let tail: &[u8; 8] = tail.as_ref().try_into().map_err(|_| short())?;
    let len = FooterTail::try_new(tail)
        .map_err(|e| e.to_string())?
        .metadata_length() as u64;
    let start = size.checked_sub(8 + len).ok_or_else(short)?;
    let bytes = store
        .get_range(&meta.location, start..size - 8)
        .await
        .map_err(|e| e.to_string())?;
    ParquetMetaDataReader::decode_metadata(&bytes).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, StringArray};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use std::sync::Arc;

    fn file(rows: usize) -> Vec<u8> {
        file_indexed(rows, &BloomColumns::Usual)
    }

    fn file_indexed(rows: usize, index: &BloomColumns) -> Vec<u8> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("service", DataType::Utf8, true),
            Field::new("trace_id", DataType::Utf8, true),
        ]));
        let service: ArrayRef = Arc::new(StringArray::from_iter_values(
            (0..rows).map(|i| ["api", "web", "db"][i % 3]),
        ));
        // Unique, long values: the dictionary overflows into plain pages.
        let trace: ArrayRef = Arc::new(StringArray::from_iter_values(
            (0..rows).map(|i| format!("{i:064x}")),
        ));
        let batch = RecordBatch::try_new(schema.clone(), vec![service, trace]).unwrap();
        let mut w = FileWriter::new(schema, index).unwrap();
        w.write(&batch).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn dictionary_encoded_text_reads_as_a_dictionary_and_overflowed_text_as_text() {
        let bytes = bytes::Bytes::from(file(100_000));
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
        let schema = reader.schema().clone();
        assert_eq!(schema.field(0).data_type(), &dictionary_text());
        assert_eq!(schema.field(1).data_type(), &DataType::Utf8);
        let batches: Vec<RecordBatch> = reader.build().unwrap().map(|b| b.unwrap()).collect();
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        assert_eq!(rows, 100_000);
        let first = arrow::compute::cast(batches[0].column(0), &DataType::Utf8).unwrap();
        let first = first.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(
            (first.value(0), first.value(1), first.value(2)),
            ("api", "web", "db")
        );
        assert_eq!(without_hints(&schema).field(0).data_type(), &DataType::Utf8);
    }

    #[test]
    fn named_columns_replace_the_usual_ones_and_a_rewrite_keeps_them() {
        let indexed = |index: &BloomColumns| {
            let bytes = bytes::Bytes::from(file_indexed(1_000, index));
            let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
            BloomColumns::of_files([reader.metadata().as_ref()])
        };
        assert_eq!(
            indexed(&BloomColumns::Usual),
            BloomColumns::named(["trace_id"])
        );
        let service = BloomColumns::named(["service"]);
        assert_eq!(indexed(&service), service);
        let none = BloomColumns::named(Vec::<String>::new());
        assert_eq!(indexed(&none), none);
        assert!(!none.has("trace_id") && service.has("service") && !service.has("trace_id"));
    }

    #[test]
    fn id_columns_get_a_bloom_filter_that_answers_lookups() {
        use parquet::file::properties::ReaderProperties;
        use parquet::file::reader::{FileReader, SerializedFileReader};
        use parquet::file::serialized_reader::ReadOptionsBuilder;
        let small = file(1_000);
        let options = ReadOptionsBuilder::new()
            .with_reader_properties(
                ReaderProperties::builder()
                    .set_read_bloom_filter(true)
                    .build(),
            )
            .build();
        let reader =
            SerializedFileReader::new_with_options(bytes::Bytes::from(small.clone()), options)
                .unwrap();
        let rg = reader.get_row_group(0).unwrap();
        // `trace_id` has one, `service` none.
        assert!(rg.get_column_bloom_filter(0).is_none());
        let bloom = rg
            .get_column_bloom_filter(1)
            .expect("a bloom filter on trace_id");
        assert!(bloom.check(&format!("{:064x}", 7).as_str()));
        assert!(!bloom.check(&"not a trace id"));
        // Folded to what the row group holds: a 1,000-row file stays small.
        assert!(small.len() < 120_000, "{} bytes", small.len());
        for name in [
            "trace_id",
            "requestId",
            "client_ip",
            "host",
            "remote_addr",
            "user",
        ] {
            assert!(looked_up_by_value(name), "{name}");
        }
        for name in ["message", "service", "severity", "latency_ms"] {
            assert!(!looked_up_by_value(name), "{name}");
        }
    }
}
