//! Row-wise enrichment that keeps the row count: `set`, `rename`, `drop`, and
//! `parse FIELD as json|logfmt|regex`.

use super::Operator;
use crate::error::{EngineError, Result};
use crate::expr::{text, PhysicalExpr};
use crate::schema::to_arrow;
use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::datatypes::SchemaRef;
use arrow_json::reader::ReaderBuilder;
use regex::Regex;
use serde_json::{Map, Value as Json};
use weir_dsl::ast::Format;
use weir_dsl::Schema;
use weir_formats::{captures_to_map, parse_logfmt};

/// How each output column is made from the input batch.
pub enum ColumnSource {
    /// Input column at this index.
    Input(usize),
    /// A computed expression.
    Computed(PhysicalExpr),
    /// Column `i` of what the stage itself computed (parsed or looked-up fields).
    Parsed(usize),
}

/// Rebuilds a batch column by column: the shape of `set`, `rename` and `drop`.
pub struct Project {
    pub name: &'static str,
    pub schema: SchemaRef,
    pub columns: Vec<ColumnSource>,
    /// `set timestamp = E`: the output column that must hold a time, and
    /// the reason a row without one goes to the dead letters.
    pub needs_time: Option<(usize, String)>,
    rejects: Vec<(RecordBatch, String)>,
}

impl Project {
    /// `| set a = E, b = F`: one projection per assignment, each seeing the
    /// fields set before it in the same stage.
    pub fn set_from_stage(
        assigns: &[weir_dsl::ast::Assignment],
        s: &mut super::StageContext,
    ) -> Result<super::Chain> {
        let mut cur = s.input.clone();
        let mut ops: Vec<Box<dyn Operator>> = Vec::with_capacity(assigns.len());
        for a in assigns {
            let e = crate::expr::compile(
                &a.value,
                &cur,
                &mut crate::expr::CompileContext {
                    tables: &mut *s.tables,
                },
            )?;
            let mut next = cur.clone();
            let ty = match e.ty() {
                weir_dsl::Type::Null => weir_dsl::Type::String,
                t => t,
            };
            next.push(&a.name.name, ty);
            let mut op = Project::new("set", &cur, &next, &[], vec![(a.name.name.clone(), e)])?;
            // An event whose new time is null cannot be windowed: it goes
            // to the dead letters, not silently into the late count.
            if a.name.name == weir_dsl::types::TIMESTAMP {
                op.needs_time = next.index_of(&a.name.name).map(|i| {
                    (
                        i,
                        format!(
                            "pipeline `{}`: `set timestamp = …` gave no time for this event",
                            s.pipeline
                        ),
                    )
                });
            }
            ops.push(Box::new(op));
            cur = next;
        }
        Ok(super::Chain(ops))
    }

    /// `| rename a as b, ...` (`renames`) and `| drop a, b` (none): the
    /// output schema says which fields stay and under which names.
    pub fn from_stage(
        name: &'static str,
        renames: &[(weir_dsl::ast::Ident, weir_dsl::ast::Ident)],
        s: &super::StageContext,
    ) -> Result<Project> {
        let renames: Vec<(String, String)> = renames
            .iter()
            .map(|(a, b)| (a.name.clone(), b.name.clone()))
            .collect();
        Project::new(name, s.input, s.output, &renames, vec![])
    }

    /// Output schema `out`; each output field comes from the input column of the
    /// same name (after `renames`) or from `computed`.
    pub fn new(
        name: &'static str,
        input: &Schema,
        out: &Schema,
        renames: &[(String, String)],
        mut computed: Vec<(String, PhysicalExpr)>,
    ) -> Result<Project> {
        let mut columns = Vec::with_capacity(out.fields.len());
        for f in &out.fields {
            if let Some(pos) = computed.iter().rposition(|(n, _)| n == &f.name) {
                let (_, e) = computed.remove(pos);
                columns.push(ColumnSource::Computed(e));
                continue;
            }
            let original = renames
                .iter()
                .rev()
                .find(|(_, to)| to == &f.name)
                .map(|(from, _)| from.as_str())
                .unwrap_or(f.name.as_str());
            let idx = input.index_of(original).ok_or_else(|| {
                EngineError::Internal(format!("no input column for `{}`", f.name))
            })?;
            columns.push(ColumnSource::Input(idx));
        }
        Ok(Project::of(name, to_arrow(out), columns))
    }

    /// A projection to `schema` made of `columns`.
    pub fn of(name: &'static str, schema: SchemaRef, columns: Vec<ColumnSource>) -> Project {
        Project {
            name,
            schema,
            columns,
            needs_time: None,
            rejects: Vec::new(),
        }
    }
}

impl Operator for Project {
    fn name(&self) -> &'static str {
        self.name
    }

    fn process(&mut self, batch: RecordBatch) -> Result<Vec<RecordBatch>> {
        let n = batch.num_rows();
        let mut cols: Vec<ArrayRef> = Vec::with_capacity(self.columns.len());
        for (c, field) in self.columns.iter().zip(self.schema.fields()) {
            let col = match c {
                ColumnSource::Input(i) => batch.column(*i).clone(),
                ColumnSource::Computed(e) => e.eval(&batch)?.into_array(n)?,
                ColumnSource::Parsed(_) => {
                    return Err(EngineError::Internal("parsed column in set".into()))
                }
            };
            cols.push(conform(col, field.data_type())?);
        }
        let out = RecordBatch::try_new(self.schema.clone(), cols)?;
        if let Some((i, why)) = &self.needs_time {
            let times = out.column(*i);
            if times.null_count() > 0 {
                let has = arrow::compute::is_not_null(times)?;
                let lacks = arrow::compute::not(&has)?;
                self.rejects
                    .push((crate::rows::filter_batch(&batch, &lacks)?, why.clone()));
                return Ok(vec![crate::rows::filter_batch(&out, &has)?]);
            }
        }
        Ok(vec![out])
    }

    fn take_rejects(&mut self) -> Vec<(RecordBatch, String)> {
        std::mem::take(&mut self.rejects)
    }
}

impl Project {
    /// Builds the output batch from the input batch and the columns a stage
    /// computed itself (`ColumnSource::Parsed(i)` is `added[i]`).
    pub fn assemble(&self, batch: &RecordBatch, added: &[ArrayRef]) -> Result<RecordBatch> {
        let n = batch.num_rows();
        let mut cols = Vec::with_capacity(self.columns.len());
        for c in &self.columns {
            cols.push(match c {
                ColumnSource::Input(i) => batch.column(*i).clone(),
                ColumnSource::Parsed(i) => added
                    .get(*i)
                    .cloned()
                    .ok_or_else(|| EngineError::Internal(format!("no computed column {i}")))?,
                ColumnSource::Computed(e) => e.eval(batch)?.into_array(n)?,
            });
        }
        Ok(RecordBatch::try_new(self.schema.clone(), cols)?)
    }
}

/// Casts a column to the schema's type when they differ (e.g. a null literal).
fn conform(col: ArrayRef, ty: &arrow::datatypes::DataType) -> Result<ArrayRef> {
    if col.data_type() == ty {
        Ok(col)
    } else {
        Ok(arrow::compute::cast(&col, ty)?)
    }
}

/// `parse FIELD as FORMAT fields {..}`: extracts typed fields from a text field.
/// Rows whose text does not parse get nulls in the new fields (the row is kept).
pub struct Parse {
    field: usize,
    format: Format,
    regex: Option<Regex>,
    parsed_schema: SchemaRef,
    project: Project,
}

impl Parse {
    /// `| parse FIELD as FORMAT ...`, with the fields the checker found it
    /// produces.
    pub fn from_stage(field: &str, s: &super::StageContext) -> Result<Parse> {
        let weir_dsl::plan::StagePlan::Parse(p) = s.plan else {
            return Err(s.wrong_plan("parse"));
        };
        Parse::new(s.input, s.output, field, &p.format, &p.fields)
    }

    /// `parsed` names the fields the parse produces (capture names, or the
    /// declared fields).
    pub fn new(
        input: &Schema,
        out: &Schema,
        field: &str,
        format: &Format,
        parsed_names: &[String],
    ) -> Result<Parse> {
        let field_idx = input
            .index_of(field)
            .ok_or_else(|| EngineError::Internal(format!("no field `{field}`")))?;
        // Fields the parse adds or overwrites, in output order.
        let mut parsed = Schema::default();
        let mut columns = Vec::new();
        for f in &out.fields {
            if parsed_names.contains(&f.name) {
                columns.push(ColumnSource::Parsed(parsed.fields.len()));
                parsed.push(&f.name, f.ty);
            } else {
                let idx = input.index_of(&f.name).ok_or_else(|| {
                    EngineError::Internal(format!("no input column `{}`", f.name))
                })?;
                columns.push(ColumnSource::Input(idx));
            }
        }
        let regex = match format {
            Format::Regex(p) => Some(Regex::new(p)?),
            _ => None,
        };
        Ok(Parse {
            field: field_idx,
            format: format.clone(),
            regex,
            parsed_schema: to_arrow(&parsed),
            project: Project::of("parse", to_arrow(out), columns),
        })
    }

    fn parse_one(&self, s: &str) -> Map<String, Json> {
        match &self.format {
            Format::Json => match serde_json::from_str::<Json>(s) {
                Ok(Json::Object(m)) => m,
                _ => Map::new(),
            },
            Format::Logfmt => parse_logfmt(s),
            Format::Regex(_) => match self.regex.as_ref().and_then(|r| r.captures(s)) {
                Some(c) => captures_to_map(self.regex.as_ref(), &c),
                None => Map::new(),
            },
            Format::Plain => Map::new(),
        }
    }
}

impl Operator for Parse {
    fn name(&self) -> &'static str {
        "parse"
    }

    fn process(&mut self, batch: RecordBatch) -> Result<Vec<RecordBatch>> {
        let col = batch.column(self.field);
        let strings = text(col)?;
        let mut rows = Vec::with_capacity(batch.num_rows());
        for v in strings.iter() {
            let mut m = v.map(|s| self.parse_one(s)).unwrap_or_default();
            // Values that do not fit their declared type become null rather than
            // failing the row.
            m.retain(|k, _| self.parsed_schema.index_of(k).is_ok());
            rows.push(m);
        }
        let mut decoder = ReaderBuilder::new(self.parsed_schema.clone())
            .with_coerce_primitive(true)
            .build_decoder()?;
        let mut parsed_cols: Vec<ArrayRef> = Vec::new();
        if decoder.serialize(&rows).is_ok() {
            if let Some(b) = decoder.flush()? {
                parsed_cols = b.columns().to_vec();
            }
        }
        if parsed_cols.len() != self.parsed_schema.fields().len() {
            // Some value did not fit: decode row by row, nulling what fails.
            parsed_cols = self.decode_rows_leniently(&rows)?;
        }
        Ok(vec![self.project.assemble(&batch, &parsed_cols)?])
    }
}

impl Parse {
    fn decode_rows_leniently(&self, rows: &[Map<String, Json>]) -> Result<Vec<ArrayRef>> {
        let mut decoder = ReaderBuilder::new(self.parsed_schema.clone())
            .with_coerce_primitive(true)
            .build_decoder()?;
        for row in rows {
            let mut probe = ReaderBuilder::new(self.parsed_schema.clone())
                .with_coerce_primitive(true)
                .build_decoder()?;
            let ok = probe.serialize(std::slice::from_ref(row)).is_ok() && probe.flush().is_ok();
            if ok {
                decoder.serialize(std::slice::from_ref(row))?;
            } else {
                decoder.serialize(&[Map::new()])?;
            }
        }
        Ok(decoder
            .flush()?
            .map(|b| b.columns().to_vec())
            .unwrap_or_default())
    }
}
