//! GeoIP: `context.geo` from the raw client address, looked up before the
//! address is anonymized.
//!
//! `context.geo = {"country": ISO 3166-1 code, "region": ISO 3166-2
//! subdivision code (or its English name when the database has no code),
//! "city": English name}`, each only when the database knows it; with the
//! source's `geo_coordinates = true` also `latitude` / `longitude` rounded
//! to one decimal (about 10 km). Anonymized events get the country only.
//!
//! The database (any MaxMind DB in the City or Country schema: GeoLite2,
//! GeoIP2, DB-IP Lite) is read into memory and swapped atomically when the
//! file changes: a thread compares the file's mtime, size and inode every
//! `privacy.geoip_reload_interval_ms`, so replacing the file (ideally by an
//! atomic rename) takes effect without a restart. Lookups take no lock.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crate::json::{Map, Number, Value};
use arc_swap::ArcSwap;
use maxminddb::Reader;
use serde::Deserialize;

use crate::metrics;

/// Decimals of the coordinates the gateway writes (one: about 10 km); the
/// scrubber rounds client-sent coordinates to the same by default.
pub const COORDINATE_DECIMALS: u32 = 1;
/// How far coordinates are rounded: 10 → one decimal.
const COORDINATE_SCALE: f64 = 10.0;
const _: () = assert!(COORDINATE_SCALE as u32 == 10u32.pow(COORDINATE_DECIMALS));

#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a MaxMind DB: {source}")]
    Format {
        path: String,
        source: maxminddb::MaxMindDbError,
    },
}

/// What a file looked like when it was loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl FileStamp {
    fn of(path: &Path) -> std::io::Result<FileStamp> {
        let md = std::fs::metadata(path)?;
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&md);
        #[cfg(not(unix))]
        let inode = 0;
        Ok(FileStamp {
            modified: md.modified().ok(),
            len: md.len(),
            inode,
        })
    }
}

/// The loaded database, reloadable.
pub struct GeoIp {
    path: PathBuf,
    reader: ArcSwap<Reader<Vec<u8>>>,
    stamp: Mutex<Option<FileStamp>>,
}

impl std::fmt::Debug for GeoIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoIp").field("path", &self.path).finish()
    }
}

/// The fields read from a City or Country record; strings borrow from the
/// database.
#[derive(Deserialize)]
struct Record<'a> {
    #[serde(borrow, default)]
    country: Option<Country<'a>>,
    #[serde(borrow, default)]
    registered_country: Option<Country<'a>>,
    #[serde(borrow, default)]
    subdivisions: Option<Vec<Place<'a>>>,
    #[serde(borrow, default)]
    city: Option<Place<'a>>,
    #[serde(default)]
    location: Option<Location>,
}

#[derive(Deserialize)]
struct Country<'a> {
    #[serde(borrow, default)]
    iso_code: Option<&'a str>,
}

#[derive(Deserialize)]
struct Place<'a> {
    #[serde(borrow, default)]
    iso_code: Option<&'a str>,
    #[serde(borrow, default)]
    names: Option<Names<'a>>,
}

#[derive(Deserialize)]
struct Names<'a> {
    #[serde(borrow, default)]
    en: Option<&'a str>,
}

#[derive(Deserialize)]
struct Location {
    #[serde(default)]
    latitude: Option<f64>,
    #[serde(default)]
    longitude: Option<f64>,
}

/// How much of the location an event may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// Country only (anonymized events).
    Country,
    /// Country, region, city.
    City,
    /// Country, region, city, rounded coordinates.
    CityAndCoordinates,
}

impl GeoIp {
    /// Loads the database; fails when the file is missing or not a MaxMind DB.
    pub fn open(path: &Path) -> Result<GeoIp, GeoError> {
        let stamp = FileStamp::of(path).map_err(|source| GeoError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let reader = load(path)?;
        Ok(GeoIp {
            path: path.to_path_buf(),
            reader: ArcSwap::from_pointee(reader),
            stamp: Mutex::new(Some(stamp)),
        })
    }

    /// The database type and build time, for logs.
    pub fn describe(&self) -> String {
        let r = self.reader.load();
        let md = r.metadata();
        format!(
            "{} built {} ({} nodes)",
            md.database_type, md.build_epoch, md.node_count
        )
    }

    /// Looks `ip` up and returns the `context.geo` object, or `None` when
    /// the database has nothing for the address.
    pub fn lookup(&self, ip: IpAddr, detail: Detail) -> Option<Map<'static>> {
        let reader = self.reader.load();
        let ip = ip.to_canonical();
        let found = reader.lookup(ip).ok()?;
        let rec: Record<'_> = found.decode().ok()??;
        let country = rec
            .country
            .as_ref()
            .and_then(|c| c.iso_code)
            .or_else(|| rec.registered_country.as_ref().and_then(|c| c.iso_code));
        let mut geo = Map::new();
        if let Some(c) = country {
            geo.insert("country", Value::from(c.to_string()));
        }
        if detail != Detail::Country {
            let region = rec
                .subdivisions
                .as_ref()
                .and_then(|s| s.first())
                .and_then(|s| s.iso_code.or_else(|| s.names.as_ref().and_then(|n| n.en)));
            if let Some(r) = region {
                geo.insert("region", Value::from(r.to_string()));
            }
            if let Some(city) = rec.city.as_ref().and_then(|c| c.names.as_ref()?.en) {
                geo.insert("city", Value::from(city.to_string()));
            }
            if detail == Detail::CityAndCoordinates {
                if let Some(loc) = &rec.location {
                    for (k, v) in [("latitude", loc.latitude), ("longitude", loc.longitude)] {
                        if let Some(n) = v.map(round_coordinate).and_then(Number::from_f64) {
                            geo.insert(k, Value::Number(n));
                        }
                    }
                }
            }
        }
        (!geo.is_empty()).then_some(geo)
    }

    /// Reloads the file when it changed since the last load. A file that is
    /// gone or broken leaves the loaded database in use.
    pub fn reload_if_changed(&self) -> Result<bool, GeoError> {
        let stamp = FileStamp::of(&self.path).map_err(|source| GeoError::Io {
            path: self.path.display().to_string(),
            source,
        })?;
        let mut last = self.stamp.lock().unwrap_or_else(|p| p.into_inner());
        if *last == Some(stamp) {
            return Ok(false);
        }
        // Remember the stamp even when loading fails: a broken file is
        // reported once, not every interval, until it changes again.
        *last = Some(stamp);
        drop(last);
        let reader = load(&self.path)?;
        self.reader.store(std::sync::Arc::new(reader));
        Ok(true)
    }

    /// Polls the file every `interval` until `stop` says so (the thread
    /// wakes at once then).
    pub fn spawn_reloader(
        geo: std::sync::Arc<GeoIp>,
        interval: Duration,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        let stop = crate::shutdown::Stop::from_watch(stop);
        std::thread::Builder::new()
            .name("geoip-reload".into())
            .spawn(move || {
                while !stop.wait_timeout(interval) {
                    match geo.reload_if_changed() {
                        Ok(false) => {}
                        Ok(true) => {
                            metrics::geoip_reload(true);
                            tracing::info!(database = %geo.describe(), "GeoIP database reloaded");
                        }
                        Err(e) => {
                            metrics::geoip_reload(false);
                            tracing::warn!(error = %e, "GeoIP database not reloaded; the loaded one stays in use");
                        }
                    }
                }
            })
    }
}

fn load(path: &Path) -> Result<Reader<Vec<u8>>, GeoError> {
    let bytes = std::fs::read(path).map_err(|source| GeoError::Io {
        path: path.display().to_string(),
        source,
    })?;
    Reader::from_source(bytes).map_err(|source| GeoError::Format {
        path: path.display().to_string(),
        source,
    })
}

fn round_coordinate(x: f64) -> f64 {
    (x * COORDINATE_SCALE).round() / COORDINATE_SCALE
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::json;
    use crate::privacy::mmdb;

    fn write(dir: &Path, name: &str, w: &mmdb::MmdbWriter) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, w.to_bytes().unwrap()).unwrap();
        p
    }

    #[test]
    fn lookup_at_each_detail_level() {
        let dir = tempfile::tempdir().unwrap();
        let geo = GeoIp::open(&write(dir.path(), "db.mmdb", &mmdb::fixture())).unwrap();
        let ip: IpAddr = "81.2.69.160".parse().unwrap();
        assert_eq!(
            Value::Object(geo.lookup(ip, Detail::City).unwrap()),
            json!({"country":"GB","region":"ENG","city":"London"})
        );
        assert_eq!(
            Value::Object(geo.lookup(ip, Detail::Country).unwrap()),
            json!({"country":"GB"})
        );
        assert_eq!(
            Value::Object(geo.lookup(ip, Detail::CityAndCoordinates).unwrap()),
            json!({"country":"GB","region":"ENG","city":"London","latitude":51.5,"longitude":-0.1})
        );
        let v6: IpAddr = "2001:db8::17".parse().unwrap();
        assert_eq!(geo.lookup(v6, Detail::City).unwrap()["city"], "Berlin");
        let mapped: IpAddr = "::ffff:81.2.69.1".parse().unwrap();
        assert_eq!(
            geo.lookup(mapped, Detail::Country).unwrap()["country"],
            "GB"
        );
        assert!(geo
            .lookup("127.0.0.1".parse().unwrap(), Detail::City)
            .is_none());
    }

    #[test]
    fn region_falls_back_to_the_name_and_country_to_the_registered_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = mmdb::MmdbWriter::new("DBIP-City-Lite", "t");
        use mmdb::MmdbValue as V;
        w.insert(
            "198.51.100.0/24".parse().unwrap(),
            V::map([
                ("registered_country", V::map([("iso_code", V::str("NL"))])),
                (
                    "subdivisions",
                    V::Array(vec![V::map([(
                        "names",
                        V::map([("en", V::str("North Holland"))]),
                    )])]),
                ),
            ]),
        );
        let geo = GeoIp::open(&write(dir.path(), "db.mmdb", &w)).unwrap();
        assert_eq!(
            Value::Object(
                geo.lookup("198.51.100.1".parse().unwrap(), Detail::City)
                    .unwrap()
            ),
            json!({"country":"NL","region":"North Holland"})
        );
    }

    #[test]
    fn open_fails_on_missing_and_non_mmdb_files() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            GeoIp::open(&dir.path().join("none.mmdb")),
            Err(GeoError::Io { .. })
        ));
        let junk = dir.path().join("junk.mmdb");
        std::fs::write(&junk, b"not a database").unwrap();
        assert!(matches!(GeoIp::open(&junk), Err(GeoError::Format { .. })));
    }

    #[test]
    fn reload_swaps_on_change_and_keeps_the_old_database_on_a_bad_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "db.mmdb", &mmdb::fixture());
        let geo = GeoIp::open(&path).unwrap();
        let ip: IpAddr = "81.2.69.160".parse().unwrap();
        assert!(!geo.reload_if_changed().unwrap());
        // Atomic replacement: write aside, rename over.
        let tmp = write(dir.path(), "db.mmdb.tmp", &mmdb::fixture_updated());
        std::fs::rename(&tmp, &path).unwrap();
        assert!(geo.reload_if_changed().unwrap());
        assert_eq!(geo.lookup(ip, Detail::Country).unwrap()["country"], "FR");
        // A broken replacement is refused; the loaded database stays.
        let tmp = dir.path().join("bad.tmp");
        std::fs::write(&tmp, b"garbage").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        assert!(geo.reload_if_changed().is_err());
        assert_eq!(geo.lookup(ip, Detail::Country).unwrap()["country"], "FR");
        // A removed file too.
        std::fs::remove_file(&path).unwrap();
        assert!(geo.reload_if_changed().is_err());
        assert_eq!(geo.lookup(ip, Detail::Country).unwrap()["country"], "FR");
    }
}
