//! `geoip FIELD using "db.mmdb" [as PREFIX]`: adds `PREFIX_country` (ISO 3166
//! code), `PREFIX_city` (English name), `PREFIX_latitude` and
//! `PREFIX_longitude` from a MaxMind-format database (GeoLite2/GeoIP2 City or
//! Country, DB-IP, or one built with any MMDB writer).
//!
//! Addresses that do not parse or are not in the database get nulls; the row is
//! kept.

use super::transform::{ColumnSource, Project};
use super::Operator;
use crate::error::{EngineError, Result};
use crate::expr::text;
use crate::schema::to_arrow;
use arrow::array::{ArrayRef, Float64Builder, RecordBatch, StringBuilder};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use weir_dsl::checker::GEOIP_FIELDS;
use weir_dsl::Schema;

/// An open MaxMind-format database, held in memory.
pub struct GeoDb {
    reader: maxminddb::Reader<Vec<u8>>,
}

impl std::fmt::Debug for GeoDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoDb")
            .field("type", &self.reader.metadata.database_type)
            .finish()
    }
}

/// What Weir reads of a record: the GeoIP2 City layout (Country databases have
/// no city or location; those fields stay null).
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
pub struct GeoRecord {
    #[serde(default)]
    pub country: Option<Country>,
    #[serde(default)]
    pub city: Option<City>,
    #[serde(default)]
    pub location: Option<Location>,
}

#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
pub struct Country {
    #[serde(default)]
    pub iso_code: Option<String>,
}

#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
pub struct City {
    #[serde(default)]
    pub names: BTreeMap<String, String>,
}

#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
pub struct Location {
    #[serde(default)]
    pub latitude: Option<f64>,
    #[serde(default)]
    pub longitude: Option<f64>,
}

impl GeoDb {
    /// Opens and validates a database file.
    pub fn open(path: &Path) -> std::result::Result<GeoDb, String> {
        let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
        GeoDb::from_bytes(bytes)
    }

    pub fn from_bytes(bytes: Vec<u8>) -> std::result::Result<GeoDb, String> {
        let reader = maxminddb::Reader::from_source(bytes)
            .map_err(|e| format!("not a MaxMind DB file: {e}"))?;
        Ok(GeoDb { reader })
    }

    /// The record for an address; `None` when the database has none.
    pub fn lookup(&self, ip: IpAddr) -> Option<GeoRecord> {
        let found = self.reader.lookup(ip).ok()?;
        found.decode::<GeoRecord>().ok().flatten()
    }
}

/// The geoip stage.
pub struct Geoip {
    field: usize,
    db: Arc<GeoDb>,
    project: Project,
}

impl Geoip {
    /// `| geoip FIELD [using "DB"] [as PREFIX]`.
    pub fn from_stage(
        field: &str,
        database: &(String, weir_dsl::Span),
        prefix: Option<&str>,
        s: &mut super::StageContext,
    ) -> Result<Geoip> {
        let db = s.tables.geoip(&database.0, database.1)?;
        Geoip::new(s.input, s.output, field, prefix.unwrap_or("geo"), db)
    }

    /// `out` is the checker's output schema: the input plus the four
    /// `PREFIX_*` fields.
    pub fn new(
        input: &Schema,
        out: &Schema,
        field: &str,
        prefix: &str,
        db: Arc<GeoDb>,
    ) -> Result<Geoip> {
        let field_idx = input
            .index_of(field)
            .ok_or_else(|| EngineError::Internal(format!("no field `{field}`")))?;
        let added: Vec<String> = GEOIP_FIELDS
            .iter()
            .map(|(suffix, _)| format!("{prefix}_{suffix}"))
            .collect();
        let mut columns = Vec::with_capacity(out.fields.len());
        for f in &out.fields {
            if let Some(i) = added.iter().position(|a| a == &f.name) {
                columns.push(ColumnSource::Parsed(i));
            } else {
                let idx = input.index_of(&f.name).ok_or_else(|| {
                    EngineError::Internal(format!("no input column `{}`", f.name))
                })?;
                columns.push(ColumnSource::Input(idx));
            }
        }
        Ok(Geoip {
            field: field_idx,
            db,
            project: Project::of("geoip", to_arrow(out), columns),
        })
    }
}

impl Operator for Geoip {
    fn name(&self) -> &'static str {
        "geoip"
    }

    fn process(&mut self, batch: RecordBatch) -> Result<Vec<RecordBatch>> {
        let ips = text(batch.column(self.field))?;
        let n = batch.num_rows();
        let mut country = StringBuilder::with_capacity(n, n * 2);
        let mut city = StringBuilder::with_capacity(n, n * 8);
        let mut lat = Float64Builder::with_capacity(n);
        let mut lon = Float64Builder::with_capacity(n);
        // Log batches repeat client addresses a lot: look each one up once.
        let mut seen: HashMap<&str, Option<GeoRecord>> = HashMap::new();
        for v in ips.iter() {
            let rec = v.and_then(|s| {
                seen.entry(s)
                    .or_insert_with(|| s.trim().parse().ok().and_then(|ip| self.db.lookup(ip)))
                    .as_ref()
            });
            country.append_option(rec.and_then(|r| r.country.as_ref()?.iso_code.as_deref()));
            city.append_option(rec.and_then(|r| r.city.as_ref()?.names.get("en")));
            lat.append_option(rec.and_then(|r| r.location.as_ref()?.latitude));
            lon.append_option(rec.and_then(|r| r.location.as_ref()?.longitude));
        }
        let added: [ArrayRef; 4] = [
            Arc::new(country.finish()),
            Arc::new(city.finish()),
            Arc::new(lat.finish()),
            Arc::new(lon.finish()),
        ];
        Ok(vec![self.project.assemble(&batch, &added)?])
    }
}
