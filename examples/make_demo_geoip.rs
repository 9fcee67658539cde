//! Builds `rules/examples/demo-geo.mmdb`, the small, made-up GeoIP database the
//! demo and the tests use (real deployments point `geoip` at GeoLite2-City.mmdb
//! or a commercial GeoIP2 database instead).
//!
//! Every IPv4 /8 from 1.0.0.0 to 223.0.0.0 maps to one of a dozen cities, in
//! turn, in the GeoIP2 City layout (`country.iso_code`, `city.names.en`,
//! `location.latitude/longitude`). The data is fictitious by design.
//!
//! ```text
//! cargo run --example make_demo_geoip [OUT.mmdb]
//! ```
// Benchmark and example code, not a runtime path: a panic stops the run with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ipnet::IpNet;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Serialize)]
struct Record {
    country: Country,
    city: City,
    location: Location,
}

#[derive(Serialize)]
struct Country {
    iso_code: String,
}

#[derive(Serialize)]
struct City {
    names: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct Location {
    latitude: f64,
    longitude: f64,
}

/// (ISO country, city, latitude, longitude); the /8 `n` maps to entry
/// `(n - 1) % 12`.
const CITIES: [(&str, &str, f64, f64); 12] = [
    ("US", "New York", 40.71, -74.01),
    ("DE", "Berlin", 52.52, 13.40),
    ("JP", "Tokyo", 35.68, 139.69),
    ("BR", "Sao Paulo", -23.55, -46.63),
    ("GB", "London", 51.51, -0.13),
    ("IN", "Mumbai", 19.08, 72.88),
    ("FR", "Paris", 48.86, 2.35),
    ("AU", "Sydney", -33.87, 151.21),
    ("CA", "Toronto", 43.65, -79.38),
    ("ZA", "Cape Town", -33.92, 18.42),
    ("SG", "Singapore", 1.35, 103.82),
    ("MX", "Mexico City", 19.43, -99.13),
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "rules/examples/demo-geo.mmdb".to_string());
    let mut writer = mmdb_writer::Writer::new("Weir-Demo-City");
    for first in 1u8..=223 {
        let (iso, city, lat, lon) = CITIES[(first as usize - 1) % CITIES.len()];
        let record = Record {
            country: Country {
                iso_code: iso.to_string(),
            },
            city: City {
                names: [("en".to_string(), city.to_string())].into(),
            },
            location: Location {
                latitude: lat,
                longitude: lon,
            },
        };
        writer.insert(format!("{first}.0.0.0/8").parse::<IpNet>()?, &record)?;
    }
    let bytes = writer.to_bytes()?;
    std::fs::write(&out, &bytes)?;
    eprintln!("wrote {out} ({} bytes)", bytes.len());
    Ok(())
}
