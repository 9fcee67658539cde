//! Picking rows out of a record batch, as every operator and sink of the
//! engine does: [`filter_batch`] is Arrow's `filter_record_batch` except
//! that a column null in every row (a declared field the events lack, a
//! backtest's unread columns) is not filtered but made anew at the kept
//! length, since filtering a string column's offsets costs as much for
//! nulls as for values.

use crate::error::Result;
use arrow::array::{new_null_array, Array, ArrayRef, BooleanArray};
use arrow::compute::FilterBuilder;
use arrow::record_batch::RecordBatch;

/// `batch`'s rows where `mask` is true (null counts as false).
pub fn filter_batch(batch: &RecordBatch, mask: &BooleanArray) -> Result<RecordBatch> {
    let predicate = FilterBuilder::new(mask).optimize().build();
    let kept = predicate.count();
    let columns = batch
        .columns()
        .iter()
        .map(|c| {
            if c.null_count() == c.len() {
                Ok(new_null_array(c.data_type(), kept))
            } else {
                predicate.filter(c)
            }
        })
        .collect::<std::result::Result<Vec<ArrayRef>, _>>()?;
    Ok(RecordBatch::try_new_with_options(
        batch.schema(),
        columns,
        &arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(kept)),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    #[test]
    fn columns_null_in_every_row_come_out_null_at_the_kept_length() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, true),
            Field::new("host", DataType::Utf8, true),
            Field::new("msg", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3, 4])),
                new_null_array(&DataType::Utf8, 4),
                Arc::new(StringArray::from(vec![
                    Some("a"),
                    None,
                    Some("c"),
                    Some("d"),
                ])),
            ],
        )
        .unwrap();
        let mask = BooleanArray::from(vec![Some(true), Some(false), None, Some(true)]);
        let out = filter_batch(&batch, &mask).unwrap();
        assert_eq!(out.num_rows(), 2);
        assert_eq!(
            out.column(0)
                .as_primitive::<arrow::datatypes::Int64Type>()
                .values(),
            &[1, 4]
        );
        let host = out.column(1).as_string::<i32>();
        assert_eq!((host.len(), host.null_count()), (2, 2));
        let msg = out.column(2).as_string::<i32>();
        assert_eq!((msg.value(0), msg.value(1)), ("a", "d"));
        assert_eq!(
            out,
            arrow::compute::filter_record_batch(&batch, &mask).unwrap()
        );
    }
}
