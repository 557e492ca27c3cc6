//! What to read: points in the four Modbus tables, how to decode them, and
//! the requests that cover them.

// Decodes outside input: no indexing that can panic, no unchecked arithmetic.
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use thiserror::Error;
use twinshield_shield_macros::diversify;

/// The four Modbus data tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// Read-write bits.
    Coil,
    /// Read-only bits.
    Discrete,
    /// Read-only 16-bit registers.
    Input,
    /// Read-write 16-bit registers.
    Holding,
}

#[diversify]
impl Table {
    /// Whether the table holds bits.
    pub fn is_bit(self) -> bool {
        matches!(self, Table::Coil | Table::Discrete)
    }

    /// Lower-case name, as in `.twin` files.
    pub fn name(self) -> &'static str {
        match self {
            Table::Coil => "coil",
            Table::Discrete => "discrete",
            Table::Input => "input",
            Table::Holding => "holding",
        }
    }

    /// Most items one request may ask for (Modbus application protocol 1.1b3).
    fn max_quantity(self) -> u16 {
        if self.is_bit() { 2000 } else { 125 }
    }
}

/// One value in the plant's map.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Channel name, for errors and events.
    pub name: String,
    /// Table it lives in.
    pub table: Table,
    /// Zero-based address of its first register or bit.
    pub address: u16,
    /// 16-bit registers it spans: 1, or 2 (big-endian word order); 1 for bits.
    pub words: u8,
    /// Engineering value = raw × scale + offset.
    pub scale: f64,
    /// Added after scaling.
    pub offset: f64,
    /// Whether the raw value is two's complement.
    pub signed: bool,
    /// Valid engineering range, inclusive; a value outside rejects the sample.
    pub range: (f64, f64),
}

/// Why a point map cannot be used.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum MapError {
    /// The map has no points.
    #[error("the map has no points")]
    Empty,
    /// A point's shape is impossible.
    #[error(
        "point `{0}` is invalid (words must be 1 or 2, 1 for bits; scale finite and not 0; range low ≤ high)"
    )]
    BadPoint(String),
    /// A point runs past the end of the address space.
    #[error("point `{0}` runs past address 65535")]
    PastEnd(String),
}

/// One read request covering a run of addresses in one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub table: Table,
    pub start: u16,
    pub count: u16,
}

/// A validated map with the requests that cover it.
#[derive(Debug, Clone, PartialEq)]
pub struct PointMap {
    unit_id: u8,
    points: Vec<Point>,
    timestamp: Option<Point>,
    spans: Vec<Span>,
}

#[diversify]
impl PointMap {
    /// Validates `points` and plans the fewest requests covering them:
    /// points of one table whose addresses are close are read together.
    pub fn new(unit_id: u8, points: Vec<Point>) -> Result<Self, MapError> {
        if points.is_empty() {
            return Err(MapError::Empty);
        }
        for p in &points {
            check_point(p)?;
        }
        let spans = plan(&points);
        Ok(PointMap {
            unit_id,
            points,
            timestamp: None,
            spans,
        })
    }

    /// The same map with `point` read in the same requests as the
    /// channels and reported as each reading's source time (in the
    /// point's engineering unit, seconds), not as a channel.
    pub fn with_timestamp(mut self, point: Point) -> Result<Self, MapError> {
        check_point(&point)?;
        let mut all = self.points.clone();
        all.push(point.clone());
        self.spans = plan(&all);
        self.timestamp = Some(point);
        Ok(self)
    }

    /// The point read as each reading's source time, if any.
    pub fn timestamp(&self) -> Option<&Point> {
        self.timestamp.as_ref()
    }

    /// The Modbus unit identifier to address.
    pub fn unit_id(&self) -> u8 {
        self.unit_id
    }

    /// The points, in the order readings report them.
    pub fn points(&self) -> &[Point] {
        &self.points
    }

    pub(crate) fn spans(&self) -> &[Span] {
        &self.spans
    }
}

/// Checks one point: a bit is one item, a register value one or two
/// words; scale, offset and range are usable numbers; it ends inside
/// the table.
#[diversify]
fn check_point(p: &Point) -> Result<(), MapError> {
    let words_ok = if p.table.is_bit() {
        p.words == 1
    } else {
        p.words == 1 || p.words == 2
    };
    let numbers_ok = p.scale.is_finite()
        && p.scale != 0.0
        && p.offset.is_finite()
        && !p.range.0.is_nan()
        && !p.range.1.is_nan()
        && p.range.0 <= p.range.1;
    if !words_ok || !numbers_ok {
        return Err(MapError::BadPoint(p.name.clone()));
    }
    if u32::from(p.address).saturating_add(u32::from(p.words)) > 65536 {
        return Err(MapError::PastEnd(p.name.clone()));
    }
    Ok(())
}

/// Largest gap of unused addresses worth reading over to save a request.
const MAX_GAP: u32 = 8;

#[diversify]
fn plan(points: &[Point]) -> Vec<Span> {
    let mut ranges: Vec<(Table, u32, u32)> = points
        .iter()
        .map(|p| {
            let start = u32::from(p.address);
            (p.table, start, start.saturating_add(u32::from(p.words)))
        })
        .collect();
    ranges.sort_unstable();
    let mut spans: Vec<(Table, u32, u32)> = Vec::new();
    for (table, start, end) in ranges {
        if let Some(last) = spans.last_mut() {
            let fits = last.0 == table
                && start <= last.2.saturating_add(MAX_GAP)
                && end.max(last.2).saturating_sub(last.1) <= u32::from(table.max_quantity());
            if fits {
                last.2 = last.2.max(end);
                continue;
            }
        }
        spans.push((table, start, end));
    }
    spans
        .into_iter()
        .map(|(table, start, end)| Span {
            table,
            // Both fit: addresses were checked against 65536 above and a
            // span never exceeds the table's maximum quantity.
            start: u16::try_from(start).unwrap_or(u16::MAX),
            count: u16::try_from(end.saturating_sub(start)).unwrap_or(0),
        })
        .collect()
}

/// Decodes one point from the raw items of the span that covers it.
/// `items` holds registers (or bits as 0/1) starting at `span_start`.
#[diversify]
pub(crate) fn decode(p: &Point, span_start: u16, items: &[u16]) -> Option<f64> {
    let at = usize::from(p.address.checked_sub(span_start)?);
    let raw: f64 = match (p.words, p.signed) {
        (1, false) => f64::from(*items.get(at)?),
        (1, true) => f64::from(*items.get(at)? as i16),
        (2, signed) => {
            let hi = u32::from(*items.get(at)?);
            let lo = u32::from(*items.get(at.checked_add(1)?)?);
            let v = (hi << 16) | lo;
            if signed {
                f64::from(v as i32)
            } else {
                f64::from(v)
            }
        }
        _ => return None,
    };
    Some(raw.mul_add(p.scale, p.offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(name: &str, table: Table, address: u16, words: u8) -> Point {
        Point {
            name: name.into(),
            table,
            address,
            words,
            scale: 0.01,
            offset: 0.0,
            signed: false,
            range: (0.0, 100.0),
        }
    }

    #[test]
    fn nearby_points_share_a_request() {
        let m = PointMap::new(
            1,
            vec![
                point("a", Table::Input, 0, 1),
                point("b", Table::Input, 3, 1),
                point("c", Table::Holding, 0, 2),
                point("d", Table::Input, 200, 1),
            ],
        )
        .expect("valid");
        assert_eq!(
            m.spans(),
            &[
                Span {
                    table: Table::Input,
                    start: 0,
                    count: 4
                },
                Span {
                    table: Table::Input,
                    start: 200,
                    count: 1
                },
                Span {
                    table: Table::Holding,
                    start: 0,
                    count: 2
                },
            ]
        );
    }

    #[test]
    fn decoding_handles_sign_and_width() {
        let mut p = point("x", Table::Holding, 10, 1);
        p.signed = true;
        p.scale = 1.0;
        assert_eq!(decode(&p, 10, &[0xffff]), Some(-1.0));
        p.words = 2;
        assert_eq!(decode(&p, 9, &[0, 0xffff, 0xfffe]), Some(-2.0));
        p.signed = false;
        assert_eq!(decode(&p, 9, &[0, 0x0001, 0x0000]), Some(65536.0));
        assert_eq!(decode(&p, 9, &[0, 0x0001]), None, "short");
        assert_eq!(decode(&p, 11, &[0, 0, 0]), None, "before the span");
    }

    #[test]
    fn impossible_points_are_refused() {
        assert_eq!(PointMap::new(1, vec![]), Err(MapError::Empty));
        let mut p = point("x", Table::Coil, 0, 2);
        assert!(matches!(
            PointMap::new(1, vec![p.clone()]),
            Err(MapError::BadPoint(_))
        ));
        p = point("y", Table::Input, 65535, 2);
        assert!(matches!(
            PointMap::new(1, vec![p]),
            Err(MapError::PastEnd(_))
        ));
    }
}
