//! A minimal writer of the MaxMind DB format (version 2.0), so the GeoIP
//! tests build their own tiny databases instead of shipping a binary
//! fixture, and an operator can build a database of private ranges (office
//! networks, test labs) the same way.
//!
//! The format, in short (the MaxMind DB specification has the details):
//! - a binary search tree over the address bits, `node_count` nodes of two
//!   24-bit big-endian records (bit 0 → left, bit 1 → right). A record below
//!   `node_count` points to a node, equal to it means "no data", above it
//!   points into the data section at `record - node_count - 16`;
//! - 16 zero bytes, then the data section: self-describing values (a control
//!   byte with a 3-bit type and a 5-bit size, types ≥ 8 in an extra byte);
//! - `\xAB\xCD\xEFMaxMind.com`, then the metadata map.
//!
//! The tree is always IPv6 (`ip_version = 6`); IPv4 networks live at
//! `::a.b.c.d/(96 + prefix)`, where readers look them up.
//!
//! Values: strings, doubles, uint16/32/64, booleans, maps and arrays —
//! everything the City/Country schema needs. No pointers or deduplication:
//! fine for fixtures, not for the full Internet.

use std::net::IpAddr;

use ipnet::IpNet;

/// Record size in bits; 24 allows 16 M nodes and data bytes, ample here.
const RECORD_BITS: usize = 24;
const RECORD_MAX: usize = (1 << RECORD_BITS) - 1;
const DATA_SEPARATOR: [u8; 16] = [0; 16];
const METADATA_MARKER: &[u8] = b"\xAB\xCD\xEFMaxMind.com";
const TREE_DEPTH: u8 = 128;
/// Depth of `::0.0.0.0` in the IPv6 tree.
const IPV4_DEPTH: u8 = 96;

const TYPE_STRING: u8 = 2;
const TYPE_DOUBLE: u8 = 3;
const TYPE_UINT16: u8 = 5;
const TYPE_UINT32: u8 = 6;
const TYPE_MAP: u8 = 7;
const TYPE_UINT64: u8 = 9;
const TYPE_ARRAY: u8 = 11;
const TYPE_BOOL: u8 = 14;

#[derive(Debug, thiserror::Error)]
pub enum MmdbError {
    #[error("the database is too large for 24-bit records")]
    TooLarge,
    #[error("value too large to encode ({0} bytes or items)")]
    ValueTooLarge(usize),
}

/// A value of the data section.
#[derive(Debug, Clone, PartialEq)]
pub enum MmdbValue {
    String(String),
    Double(f64),
    U16(u16),
    U32(u32),
    U64(u64),
    Bool(bool),
    Map(Vec<(String, MmdbValue)>),
    Array(Vec<MmdbValue>),
}

impl MmdbValue {
    /// A map from `(key, value)` pairs.
    pub fn map<const N: usize>(pairs: [(&str, MmdbValue); N]) -> MmdbValue {
        MmdbValue::Map(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    }

    pub fn str(s: &str) -> MmdbValue {
        MmdbValue::String(s.to_string())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rec {
    Empty,
    Node(usize),
    Data(usize),
}

/// Builds a database in memory; [`MmdbWriter::to_bytes`] serializes it.
#[derive(Debug, Clone)]
pub struct MmdbWriter {
    database_type: String,
    description: String,
    build_epoch: u64,
    nodes: Vec<[Rec; 2]>,
    values: Vec<MmdbValue>,
}

impl MmdbWriter {
    /// `database_type` is what readers report, e.g. `GeoLite2-City`.
    pub fn new(database_type: &str, description: &str) -> MmdbWriter {
        MmdbWriter {
            database_type: database_type.to_string(),
            description: description.to_string(),
            build_epoch: 0,
            nodes: vec![[Rec::Empty; 2]],
            values: Vec::new(),
        }
    }

    /// The build time written to the metadata (Unix seconds).
    pub fn build_epoch(mut self, secs: u64) -> MmdbWriter {
        self.build_epoch = secs;
        self
    }

    /// Maps every address of `net` to `value`. A later, more specific
    /// network inside an earlier one overrides it for its own addresses.
    pub fn insert(&mut self, net: IpNet, value: MmdbValue) {
        let (bits, depth) = match net {
            IpNet::V4(n) => (
                u128::from(n.network().to_ipv6_compatible()),
                IPV4_DEPTH + n.prefix_len(),
            ),
            IpNet::V6(n) => (u128::from(n.network()), n.prefix_len()),
        };
        self.values.push(value);
        let data = Rec::Data(self.values.len() - 1);
        if depth == 0 {
            // The whole address space: both halves of the root.
            self.nodes[0] = [data, data];
            return;
        }
        let mut node = 0usize;
        for i in 0..depth - 1 {
            let bit = bit_at(bits, i);
            node = match self.nodes[node][bit] {
                Rec::Node(n) => n,
                other => {
                    // Empty, or a wider network's data to split: both
                    // children inherit it.
                    self.nodes.push([other, other]);
                    let n = self.nodes.len() - 1;
                    self.nodes[node][bit] = Rec::Node(n);
                    n
                }
            };
        }
        let last = bit_at(bits, depth - 1);
        self.nodes[node][last] = data;
    }

    /// The database file's bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, MmdbError> {
        let node_count = self.nodes.len();
        let mut data = Vec::new();
        let mut offsets = Vec::with_capacity(self.values.len());
        for v in &self.values {
            offsets.push(data.len());
            encode(v, &mut data)?;
        }
        let record = |r: Rec| -> Result<usize, MmdbError> {
            let v = match r {
                Rec::Empty => node_count,
                Rec::Node(n) => n,
                Rec::Data(i) => node_count + DATA_SEPARATOR.len() + offsets[i],
            };
            if v > RECORD_MAX {
                return Err(MmdbError::TooLarge);
            }
            Ok(v)
        };
        let mut out = Vec::with_capacity(node_count * 6 + data.len() + 256);
        for [left, right] in &self.nodes {
            out.extend_from_slice(&(record(*left)? as u32).to_be_bytes()[1..]);
            out.extend_from_slice(&(record(*right)? as u32).to_be_bytes()[1..]);
        }
        out.extend_from_slice(&DATA_SEPARATOR);
        out.extend_from_slice(&data);
        out.extend_from_slice(METADATA_MARKER);
        let metadata = MmdbValue::map([
            ("binary_format_major_version", MmdbValue::U16(2)),
            ("binary_format_minor_version", MmdbValue::U16(0)),
            ("build_epoch", MmdbValue::U64(self.build_epoch)),
            ("database_type", MmdbValue::str(&self.database_type)),
            (
                "description",
                MmdbValue::map([("en", MmdbValue::str(&self.description))]),
            ),
            ("ip_version", MmdbValue::U16(6)),
            ("languages", MmdbValue::Array(vec![MmdbValue::str("en")])),
            (
                "node_count",
                MmdbValue::U32(u32::try_from(node_count).map_err(|_| MmdbError::TooLarge)?),
            ),
            ("record_size", MmdbValue::U16(RECORD_BITS as u16)),
        ]);
        encode(&metadata, &mut out)?;
        Ok(out)
    }
}

fn bit_at(bits: u128, i: u8) -> usize {
    ((bits >> (TREE_DEPTH - 1 - i)) & 1) as usize
}

/// Control byte(s) of a value of `type_num` and `size`.
fn control(type_num: u8, size: usize, out: &mut Vec<u8>) -> Result<(), MmdbError> {
    let (size_bits, extra): (u8, Vec<u8>) = match size {
        0..=28 => (size as u8, vec![]),
        29..=284 => (29, vec![(size - 29) as u8]),
        285..=65_820 => (30, ((size - 285) as u16).to_be_bytes().to_vec()),
        65_821..=16_843_036 => (31, ((size - 65_821) as u32).to_be_bytes()[1..].to_vec()),
        _ => return Err(MmdbError::ValueTooLarge(size)),
    };
    if type_num <= TYPE_MAP {
        out.push((type_num << 5) | size_bits);
    } else {
        out.push(size_bits);
        out.push(type_num - TYPE_MAP);
    }
    out.extend_from_slice(&extra);
    Ok(())
}

/// Big-endian unsigned integer without leading zero bytes.
fn encode_uint(type_num: u8, v: u64, out: &mut Vec<u8>) -> Result<(), MmdbError> {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count();
    control(type_num, bytes.len() - skip, out)?;
    out.extend_from_slice(&bytes[skip..]);
    Ok(())
}

fn encode(v: &MmdbValue, out: &mut Vec<u8>) -> Result<(), MmdbError> {
    match v {
        MmdbValue::String(s) => {
            control(TYPE_STRING, s.len(), out)?;
            out.extend_from_slice(s.as_bytes());
        }
        MmdbValue::Double(d) => {
            control(TYPE_DOUBLE, 8, out)?;
            out.extend_from_slice(&d.to_be_bytes());
        }
        MmdbValue::U16(n) => encode_uint(TYPE_UINT16, u64::from(*n), out)?,
        MmdbValue::U32(n) => encode_uint(TYPE_UINT32, u64::from(*n), out)?,
        MmdbValue::U64(n) => encode_uint(TYPE_UINT64, *n, out)?,
        MmdbValue::Bool(b) => control(TYPE_BOOL, usize::from(*b), out)?,
        MmdbValue::Map(pairs) => {
            control(TYPE_MAP, pairs.len(), out)?;
            for (k, v) in pairs {
                control(TYPE_STRING, k.len(), out)?;
                out.extend_from_slice(k.as_bytes());
                encode(v, out)?;
            }
        }
        MmdbValue::Array(items) => {
            control(TYPE_ARRAY, items.len(), out)?;
            for v in items {
                encode(v, out)?;
            }
        }
    }
    Ok(())
}

/// A record in the GeoIP2/GeoLite2 City schema (the fields the gateway
/// reads, plus names and a time zone as real databases have them).
pub fn city_record(
    country_iso: &str,
    subdivision_iso: &str,
    subdivision_name: &str,
    city: &str,
    latitude: f64,
    longitude: f64,
) -> MmdbValue {
    let names = |en: &str| MmdbValue::map([("en", MmdbValue::str(en))]);
    MmdbValue::map([
        ("city", MmdbValue::map([("names", names(city))])),
        (
            "country",
            MmdbValue::map([
                ("iso_code", MmdbValue::str(country_iso)),
                ("names", names(country_iso)),
            ]),
        ),
        (
            "location",
            MmdbValue::map([
                ("accuracy_radius", MmdbValue::U16(50)),
                ("latitude", MmdbValue::Double(latitude)),
                ("longitude", MmdbValue::Double(longitude)),
                ("time_zone", MmdbValue::str("Etc/UTC")),
            ]),
        ),
        (
            "subdivisions",
            MmdbValue::Array(vec![MmdbValue::map([
                ("iso_code", MmdbValue::str(subdivision_iso)),
                ("names", names(subdivision_name)),
            ])]),
        ),
    ])
}

/// The test fixture: `81.2.69.0/24` → GB / ENG / London,
/// `2001:db8::/32` → DE / BE / Berlin.
pub fn fixture() -> MmdbWriter {
    let mut w = MmdbWriter::new("trackgate-Test-City", "trackgate test fixture");
    w.insert(
        net("81.2.69.0/24"),
        city_record("GB", "ENG", "England", "London", 51.5142, -0.0931),
    );
    w.insert(
        net("2001:db8::/32"),
        city_record("DE", "BE", "Berlin", "Berlin", 52.5244, 13.4105),
    );
    w
}

/// The fixture after a "database update": `81.2.69.0/24` → FR / IDF / Paris.
pub fn fixture_updated() -> MmdbWriter {
    let mut w = MmdbWriter::new("trackgate-Test-City", "trackgate test fixture, updated");
    w.insert(
        net("81.2.69.0/24"),
        city_record("FR", "IDF", "Île-de-France", "Paris", 48.8566, 2.3522),
    );
    w.insert(
        net("2001:db8::/32"),
        city_record("DE", "BE", "Berlin", "Berlin", 52.5244, 13.4105),
    );
    w
}

fn net(s: &str) -> IpNet {
    // Only called with the literals above.
    s.parse()
        .unwrap_or_else(|_| IpNet::from(IpAddr::from([0u8; 4])))
}

#[cfg(test)]
mod tests {
    use super::*;
    use maxminddb::{geoip2, Reader};

    fn reader(w: &MmdbWriter) -> Reader<Vec<u8>> {
        let r = Reader::from_source(w.to_bytes().unwrap()).unwrap();
        r.verify().unwrap();
        r
    }

    #[test]
    fn fixture_reads_back_with_the_maxmind_reader() {
        let r = reader(&fixture());
        assert_eq!(r.metadata().database_type, "trackgate-Test-City");
        assert_eq!(r.metadata().ip_version, 6);
        let look = |ip: &str| {
            let res = r.lookup(ip.parse().unwrap()).unwrap();
            res.decode::<geoip2::City>().unwrap().map(|c| {
                (
                    c.country.iso_code.map(str::to_string),
                    c.subdivisions[0].iso_code.map(str::to_string),
                    c.city.names.english.map(str::to_string),
                    c.location.latitude,
                )
            })
        };
        assert_eq!(
            look("81.2.69.160"),
            Some((
                Some("GB".into()),
                Some("ENG".into()),
                Some("London".into()),
                Some(51.5142)
            ))
        );
        assert_eq!(look("81.2.69.0").unwrap().2.as_deref(), Some("London"));
        assert_eq!(look("81.2.70.1"), None);
        assert_eq!(look("2001:db8:1:2::3").unwrap().0.as_deref(), Some("DE"));
        assert_eq!(look("2001:db9::1"), None);
        // IPv4-mapped IPv6 addresses are not aliased in this minimal tree.
        assert_eq!(look("127.0.0.1"), None);
    }

    #[test]
    fn nested_network_overrides_its_part_of_a_wider_one() {
        let mut w = MmdbWriter::new("t", "t");
        w.insert("10.0.0.0/8".parse().unwrap(), MmdbValue::str("wide"));
        w.insert("10.1.0.0/16".parse().unwrap(), MmdbValue::str("narrow"));
        let r = reader(&w);
        let get = |ip: &str| {
            r.lookup(ip.parse().unwrap())
                .unwrap()
                .decode::<String>()
                .unwrap()
        };
        assert_eq!(get("10.2.3.4").as_deref(), Some("wide"));
        assert_eq!(get("10.1.3.4").as_deref(), Some("narrow"));
        assert_eq!(get("11.0.0.1"), None);
    }

    #[test]
    fn long_strings_and_large_maps_use_extended_sizes() {
        let long = "x".repeat(70_000);
        let mid = "y".repeat(300);
        let mut w = MmdbWriter::new("t", "t");
        w.insert(
            "192.0.2.0/24".parse().unwrap(),
            MmdbValue::Array(vec![
                MmdbValue::str(&long),
                MmdbValue::str(&mid),
                MmdbValue::str(&"z".repeat(40)),
                MmdbValue::Bool(true),
                MmdbValue::U64(u64::MAX),
            ]),
        );
        let r = reader(&w);
        #[derive(serde::Deserialize)]
        struct T(String, String, String, bool, u64);
        let t: T = r
            .lookup("192.0.2.1".parse().unwrap())
            .unwrap()
            .decode()
            .unwrap()
            .unwrap();
        assert_eq!((t.0.len(), t.1.len(), t.2.len()), (70_000, 300, 40));
        assert!(t.3);
        assert_eq!(t.4, u64::MAX);
    }
}
