//! SQL functions for logs, beside DataFusion's own (`regexp_like`,
//! `date_bin`, `date_trunc`, `approx_percentile_cont`, `strpos`...):
//!
//! - `json_get(text, 'a.b.0')`: the value at a dotted path of a JSON text (the
//!   archived `_raw` line, or any JSON column), as text; null when absent.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::logical_expr::{create_udf, ColumnarValue, Volatility};
use datafusion::prelude::SessionContext;
use std::sync::Arc;

/// Registers Weir's SQL functions.
pub fn register(ctx: &SessionContext) {
    ctx.register_udf(create_udf(
        "json_get",
        vec![DataType::Utf8, DataType::Utf8],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(json_get),
    ));
}

fn json_get(args: &[ColumnarValue]) -> datafusion::error::Result<ColumnarValue> {
    let [doc, path] = args else {
        return Err(DataFusionError::Plan(
            "json_get(text, 'dotted.path') takes two arguments".into(),
        ));
    };
    let ColumnarValue::Scalar(ScalarValue::Utf8(Some(path))) = path else {
        return Err(DataFusionError::Plan(
            "json_get: the path must be a text literal such as 'user.id'".into(),
        ));
    };
    let path: Vec<String> = path.split('.').map(str::to_string).collect();
    let (array, scalar) = match doc {
        ColumnarValue::Array(a) => (a.clone(), false),
        ColumnarValue::Scalar(s) => (s.to_array()?, true),
    };
    let texts = array.as_string_opt::<i32>().ok_or_else(|| {
        DataFusionError::Plan(format!("json_get needs text, not {}", array.data_type()))
    })?;
    let out: ArrayRef = Arc::new(weir_engine::functions::json_get(texts, &path));
    Ok(if scalar {
        ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?)
    } else {
        ColumnarValue::Array(out)
    })
}
