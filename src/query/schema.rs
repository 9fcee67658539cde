//! A stream's table schema: the union of its files' schemas (columns a file
//! lacks read as null). Files mark fully dictionary-encoded text columns as
//! dictionaries; where one file holds a column as a dictionary and another
//! as plain text (its dictionary overflowed, or it predates the marks), the
//! table has plain text and the dictionary files are cast on read.

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::datasource::listing::{ListingOptions, ListingTableUrl};
use datafusion::error::Result;
use futures::{StreamExt, TryStreamExt};
use std::collections::HashSet;
use std::sync::Arc;

/// Infers the table schema of the files under `url`.
pub async fn infer(
    state: &dyn Session,
    options: &ListingOptions,
    url: &ListingTableUrl,
) -> Result<SchemaRef> {
    // Mostly the files agree, and DataFusion merges them in one go.
    if let Ok(schema) = options.infer_schema(state, url).await {
        return Ok(schema);
    }
    let store = state.runtime_env().object_store(url)?;
    let mut files: Vec<_> = url
        .list_all_files(state, store.as_ref(), &options.file_extension)
        .await?
        .try_filter(|f| futures::future::ready(f.size > 0))
        .try_collect()
        .await?;
    // The order decides the order of columns: keep it stable.
    files.sort_by(|a, b| a.location.cmp(&b.location));
    let format = &options.format;
    let store = &store;
    let schemas: Vec<SchemaRef> = futures::stream::iter(files.iter())
        .map(|f| format.infer_schema(state, store, std::slice::from_ref(f)))
        // Boxed: https://github.com/rust-lang/rust/issues/64552 (as DataFusion does)
        .boxed()
        .buffered(16)
        .try_collect()
        .await?;
    Ok(Arc::new(merge(&schemas)?))
}

/// The union of `schemas`, with columns that are dictionaries in some and
/// not in others as their plain type.
fn merge(schemas: &[SchemaRef]) -> Result<Schema> {
    let mut plain: HashSet<&str> = HashSet::new();
    let mut dictionary: HashSet<&str> = HashSet::new();
    for s in schemas {
        for f in s.fields() {
            match f.data_type() {
                DataType::Dictionary(..) => dictionary.insert(f.name().as_str()),
                _ => plain.insert(f.name().as_str()),
            };
        }
    }
    let mixed: HashSet<&str> = plain.intersection(&dictionary).copied().collect();
    let unpacked: Vec<Schema> = schemas
        .iter()
        .map(|s| {
            let fields: Vec<Field> = s
                .fields()
                .iter()
                .map(|f| match f.data_type() {
                    DataType::Dictionary(..) if mixed.contains(f.name().as_str()) => {
                        f.as_ref().clone().with_data_type(DataType::Utf8View)
                    }
                    _ => f.as_ref().clone(),
                })
                .collect();
            Schema::new_with_metadata(fields, s.metadata().clone())
        })
        .collect();
    Ok(Schema::try_merge(unpacked)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionary_and_plain_text_merge_as_plain_text() {
        let dict = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
        let a = Arc::new(Schema::new(vec![
            Field::new("service", dict.clone(), true),
            Field::new("message", dict.clone(), true),
        ]));
        let b = Arc::new(Schema::new(vec![
            Field::new("service", dict.clone(), true),
            Field::new("message", DataType::Utf8View, true),
            Field::new("user", DataType::Utf8View, true),
        ]));
        let m = merge(&[a, b]).unwrap();
        assert_eq!(m.field_with_name("service").unwrap().data_type(), &dict);
        assert_eq!(
            m.field_with_name("message").unwrap().data_type(),
            &DataType::Utf8View
        );
        assert_eq!(m.fields().len(), 3);
    }
}
