//! Modbus replies as the connector handles them: an arbitrary point map
//! over an arbitrary register image (what a hostile or broken plant can
//! serve). Planning, decoding and validation never panic, and a reading
//! that is accepted has every value inside its declared range.
#![no_main]

use libfuzzer_sys::fuzz_target;
use twinshield_connect::{Point, PointMap, RegisterBank, Table};

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 8) + 1;
    let Some((spec, image)) = rest.split_at_checked(n * 4) else {
        return;
    };
    let points: Vec<Point> = spec
        .chunks_exact(4)
        .enumerate()
        .map(|(i, c)| Point {
            name: format!("p{i}"),
            table: match c[0] % 4 {
                0 => Table::Coil,
                1 => Table::Discrete,
                2 => Table::Input,
                _ => Table::Holding,
            },
            address: u16::from(c[1] % 64),
            words: if c[2] & 1 == 0 { 1 } else { 2 },
            scale: [0.01, 0.001, 1.0, -0.5, 1e300][usize::from(c[2] >> 1) % 5],
            offset: f64::from(i8::from_le_bytes([c[3]])),
            signed: c[3] & 0x80 != 0,
            range: (-1000.0, 1000.0),
        })
        .collect();
    let Ok(map) = PointMap::new(1, points) else {
        return;
    };
    let words: Vec<u16> = image
        .chunks_exact(2)
        .map(|w| u16::from_be_bytes([w[0], w[1]]))
        .collect();
    let half = words.len() / 2;
    let bank = RegisterBank {
        coils: image.iter().map(|b| b & 1 == 1).collect(),
        discrete: image.iter().map(|b| b & 2 == 2).collect(),
        input: words[..half].to_vec(),
        holding: words[half..].to_vec(),
    };
    if let Ok(reading) = bank.read(&map) {
        assert_eq!(reading.values.len(), map.points().len());
        for (v, p) in reading.values.iter().zip(map.points()) {
            assert!(*v >= p.range.0 && *v <= p.range.1, "{v} outside {:?}", p.range);
        }
    }
});
