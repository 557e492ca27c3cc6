//! The client against our register server and against hostile peers that
//! speak raw bytes: exceptions, short replies, mismatched transaction ids,
//! silence and dropped connections all become typed errors, and the client
//! recovers once the plant behaves again. A corrupted byte anywhere in a
//! reply is refused with the error its position calls for, or, in a data
//! byte, read as exactly what the corrupted bytes say.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::timeout;
use twinshield_connect::{
    ClientConfig, ModbusClient, Point, PointMap, ReadError, RegisterBank, Table, serve,
};

fn level(name: &str, address: u16) -> Point {
    Point {
        name: name.into(),
        table: Table::Input,
        address,
        words: 1,
        scale: 0.01,
        offset: 0.0,
        signed: false,
        range: (0.0, 30.0),
    }
}

fn quadtank_map() -> PointMap {
    let mut points: Vec<Point> = (0..4).map(|i| level(&format!("y{}", i + 1), i)).collect();
    for i in 0..2u16 {
        points.push(Point {
            name: format!("v{}", i + 1),
            table: Table::Holding,
            address: i,
            words: 1,
            scale: 0.001,
            offset: 0.0,
            signed: false,
            range: (0.0, 10.0),
        });
    }
    points.push(Point {
        name: "pump".into(),
        table: Table::Coil,
        address: 0,
        words: 1,
        scale: 1.0,
        offset: 0.0,
        signed: false,
        range: (0.0, 1.0),
    });
    PointMap::new(1, points).expect("valid map")
}

fn bank() -> Arc<RwLock<RegisterBank>> {
    Arc::new(RwLock::new(RegisterBank {
        coils: vec![true],
        discrete: vec![],
        input: vec![1226, 1278, 163, 141],
        holding: vec![3000, 3100],
    }))
}

fn config(addr: SocketAddr) -> ClientConfig {
    let mut c = ClientConfig::new(addr);
    c.timeout = Duration::from_millis(300);
    c.backoff_min = Duration::from_millis(20);
    c.backoff_max = Duration::from_millis(100);
    c
}

async fn start_server(bank: Arc<RwLock<RegisterBank>>) -> (SocketAddr, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(serve(listener, bank, 1, async move {
        let _ = rx.await;
    }));
    (addr, tx)
}

/// Reads until a sample arrives or the deadline passes, returning the errors seen.
async fn read_until_ok(c: &mut ModbusClient, tries: usize) -> (Option<Vec<f64>>, Vec<ReadError>) {
    let mut errors = Vec::new();
    for _ in 0..tries {
        match c.read().await {
            Ok(r) => return (Some(r.values), errors),
            Err(e) => errors.push(e),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (None, errors)
}

#[tokio::test]
async fn reads_and_scales_every_point() {
    let (addr, _stop) = start_server(bank()).await;
    let mut c = ModbusClient::new(config(addr), quadtank_map());
    let r = c.read().await.expect("sample");
    let want = [12.26, 12.78, 1.63, 1.41, 3.0, 3.1, 1.0];
    for (v, w) in r.values.iter().zip(want) {
        assert!((v - w).abs() < 1e-9, "{:?}", r.values);
    }
}

/// A timestamp point is read in the same request as the channels and
/// comes back as the reading's time, not as a channel value.
#[tokio::test]
async fn a_timestamp_point_arrives_with_its_sample() {
    let bank = bank();
    if let Ok(mut b) = bank.write() {
        // Plant time 123456.7 s in 0.1 s counts, high word first.
        let counts: u32 = 1_234_567;
        b.input
            .extend([(counts >> 16) as u16, (counts & 0xffff) as u16]);
    }
    let (addr, _stop) = start_server(bank).await;
    let clock = Point {
        name: "clock".into(),
        table: Table::Input,
        address: 4,
        words: 2,
        scale: 0.1,
        offset: 0.0,
        signed: false,
        range: (0.0, 1e9),
    };
    let map = quadtank_map().with_timestamp(clock).unwrap();
    assert_eq!(map.points().len(), 7, "the timestamp is no channel");
    let mut c = ModbusClient::new(config(addr), map);
    let r = c.read().await.expect("sample");
    assert_eq!(r.values.len(), 7);
    assert!((r.time.unwrap() - 123_456.7).abs() < 1e-6, "{:?}", r.time);
    // Without a timestamp point a reading carries no time.
    let mut plain = ModbusClient::new(config(addr), quadtank_map());
    assert_eq!(plain.read().await.expect("sample").time, None);
}

#[tokio::test]
async fn exception_codes_become_typed_errors() {
    let (addr, _stop) = start_server(bank()).await;
    let map = PointMap::new(1, vec![level("far", 100)]).unwrap();
    let mut c = ModbusClient::new(config(addr), map);
    match c.read().await {
        Err(ReadError::Exception { code, address, .. }) => {
            assert_eq!(code, 0x02, "illegal data address");
            assert_eq!(address, 100);
        }
        other => panic!("expected an exception, got {other:?}"),
    }
    // The connection survives an exception.
    assert!(c.is_connected());
}

#[tokio::test]
async fn values_outside_their_range_reject_the_sample() {
    let b = bank();
    b.write().unwrap().input[2] = 5000; // 50 cm, above the 30 cm range
    let (addr, _stop) = start_server(b).await;
    let mut c = ModbusClient::new(config(addr), quadtank_map());
    match c.read().await {
        Err(ReadError::OutOfRange { point, value, .. }) => {
            assert_eq!(point, "y3");
            assert!((value - 50.0).abs() < 1e-9);
        }
        other => panic!("expected out of range, got {other:?}"),
    }
}

#[tokio::test]
async fn reconnects_after_the_plant_goes_away_and_comes_back() {
    let b = bank();
    let (addr, stop) = start_server(b.clone()).await;
    let mut c = ModbusClient::new(config(addr), quadtank_map());
    c.read().await.expect("first sample");
    // The plant goes away: shutting the server down closes its sockets.
    stop.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (none, errors) = read_until_ok(&mut c, 5).await;
    assert!(none.is_none());
    assert!(!errors.is_empty());
    // It comes back on the same port.
    let listener = TcpListener::bind(addr).await.unwrap();
    let (_tx, rx) = oneshot::channel::<()>();
    tokio::spawn(serve(listener, b, 1, async move {
        let _ = rx.await;
    }));
    let (values, _) = read_until_ok(&mut c, 100).await;
    assert!(values.is_some(), "no sample after the plant came back");
    assert!(c.reconnects() >= 1);
}

/// A raw peer: for each request frame read, `respond` returns bytes to send
/// (or nothing, to stay silent); it is also told the connection's index (0
/// for the first).
async fn raw_peer<F>(respond: F) -> SocketAddr
where
    F: Fn(&[u8], usize) -> Option<Vec<u8>> + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let respond = Arc::new(respond);
    tokio::spawn(async move {
        for conn in 0..20usize {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let respond = respond.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 260];
                loop {
                    let Ok(n) = s.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    if let Some(reply) = respond(&buf[..n], conn)
                        && s.write_all(&reply).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// A well-formed reply to a read-input-registers request for `count` values.
fn input_reply(req: &[u8], values: &[u16], tid_delta: u16) -> Vec<u8> {
    let tid = u16::from_be_bytes([req[0], req[1]]).wrapping_add(tid_delta);
    let byte_count = (values.len() * 2) as u8;
    let len = 3 + u16::from(byte_count);
    let mut out = tid.to_be_bytes().to_vec();
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&[req[6], 0x04, byte_count]);
    for v in values {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out
}

fn levels_map() -> PointMap {
    PointMap::new(
        1,
        (0..4).map(|i| level(&format!("y{}", i + 1), i)).collect(),
    )
    .unwrap()
}

#[tokio::test]
async fn short_replies_are_refused() {
    let addr = raw_peer(|req, _| Some(input_reply(req, &[1226, 1278], 0))).await;
    let mut c = ModbusClient::new(config(addr), levels_map());
    match c.read().await {
        Err(ReadError::WrongLength { expected, got, .. }) => assert_eq!((expected, got), (4, 2)),
        other => panic!("expected a short-reply error, got {other:?}"),
    }
}

#[tokio::test]
async fn transaction_id_mismatch_resynchronises() {
    // The first connection answers with a stale transaction id; later ones are fine.
    let addr = raw_peer(|req, conn| {
        let delta = if conn == 0 { 7 } else { 0 };
        Some(input_reply(req, &[1226, 1278, 163, 141], delta))
    })
    .await;
    let mut c = ModbusClient::new(config(addr), levels_map());
    let (values, errors) = read_until_ok(&mut c, 50).await;
    assert!(
        matches!(errors.first(), Some(ReadError::OutOfStep(_))),
        "{errors:?}"
    );
    assert_eq!(values.expect("resynchronised")[0], 12.26);
}

#[tokio::test]
async fn a_silent_plant_times_out() {
    let addr = raw_peer(|_, _| None).await;
    let mut c = ModbusClient::new(config(addr), levels_map());
    assert_eq!(
        c.read().await,
        Err(ReadError::Timeout(Duration::from_millis(300)))
    );
    assert!(!c.is_connected());
    assert!(matches!(c.read().await, Err(ReadError::Backoff(_))));
}

// Corrupted replies. A peer that answers like a correct plant, except that
// it XORs one byte of one reply with a mask; for every byte of every reply
// frame one reading receives, and for several masks, the test predicts from
// the frame layout what the client must do, and checks that it did, with a
// fresh client per case (so no read is swallowed by the backoff) and the
// peer's log of the requests it answered.
//
// A Modbus TCP reply to a read is, byte by byte:
//   0-1 transaction id   2-3 protocol id (0)   4-5 length (bytes that follow)
//   6 unit id   7 function code   8 byte count   9.. data
// with registers big-endian, two bytes each, and bits packed from bit 0 of
// the first data byte.

/// The map the corruption cases read: one request per table, and every
/// decoding path (bits, unsigned, signed with an offset, two registers).
fn corruption_points() -> Vec<Point> {
    let mut points = vec![Point {
        name: "pump".into(),
        table: Table::Coil,
        address: 0,
        words: 1,
        scale: 1.0,
        offset: 0.0,
        signed: false,
        range: (0.0, 1.0),
    }];
    points.extend((0..4).map(|i| level(&format!("y{}", i + 1), i)));
    points.push(Point {
        name: "v1".into(),
        table: Table::Holding,
        address: 0,
        words: 1,
        scale: 0.001,
        offset: 0.0,
        signed: false,
        range: (0.0, 10.0),
    });
    // Kelvin from tenths of a degree Celsius, -50 °C to 150 °C.
    points.push(Point {
        name: "temp".into(),
        table: Table::Holding,
        address: 1,
        words: 1,
        scale: 0.1,
        offset: 273.15,
        signed: true,
        range: (223.15, 423.15),
    });
    points.push(Point {
        name: "count".into(),
        table: Table::Holding,
        address: 2,
        words: 2,
        scale: 1.0,
        offset: 0.0,
        signed: false,
        range: (0.0, 1e6),
    });
    points
}

/// What the corruption peer holds: pump on; levels 12.26, 12.78, 1.63 and
/// 1.41; v1 3.0; temp 21.5 °C (294.65 K); count 100,000.
const COILS: [bool; 1] = [true];
const INPUT: [u16; 4] = [1226, 1278, 163, 141];
const HOLDING: [u16; 4] = [3000, 215, 0x0001, 0x86a0];

/// The requests one reading of [`corruption_points`] makes, in order, as
/// (function code, first address, count): each table's points are adjacent,
/// so one request per table, in the tables' order (coils, discrete inputs,
/// input registers, holding registers). The clean case checks that the
/// client asks exactly this.
const REQUESTS: [(u8, u16, u16); 3] = [(0x01, 0, 1), (0x04, 0, 4), (0x03, 0, 4)];

/// Masks a corrupted byte is XORed with: many bits, one low bit, the top bit
/// (which turns a function code into its exception code).
const MASKS: [u8; 3] = [0xa5, 0x02, 0x80];

/// The client's reply timeout in these cases. The cases run concurrently,
/// so the ones that time out cost this once, not once each.
const CASE_TIMEOUT: Duration = Duration::from_secs(1);

/// How long the peer waits for a connection or a request before giving up.
const PEER_WAIT: Duration = Duration::from_secs(5);

/// One byte of one reply XORed with a mask.
#[derive(Debug, Clone, Copy)]
struct Corruption {
    /// Which reply of the connection (0: the first).
    reply: usize,
    /// Byte position in that reply's frame.
    at: usize,
    /// XORed into the byte (never 0).
    mask: u8,
}

/// A correct plant's reply frame to the read `(function, start, count)`.
fn reply_frame(transaction: u16, unit: u8, (function, start, count): (u8, u16, u16)) -> Vec<u8> {
    let (start, count) = (usize::from(start), usize::from(count));
    let data: Vec<u8> = match function {
        0x01 => {
            let mut packed = vec![0u8; count.div_ceil(8)];
            for (i, &bit) in COILS[start..start + count].iter().enumerate() {
                packed[i / 8] |= u8::from(bit) << (i % 8);
            }
            packed
        }
        0x04 => INPUT[start..start + count]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect(),
        0x03 => HOLDING[start..start + count]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect(),
        other => panic!("the corruption peer does not serve function {other:#04x}"),
    };
    let mut frame = transaction.to_be_bytes().to_vec();
    frame.extend_from_slice(&[0, 0]);
    frame.extend_from_slice(&u16::try_from(3 + data.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(&[unit, function, u8::try_from(data.len()).unwrap()]);
    frame.extend_from_slice(&data);
    frame
}

/// A peer that accepts one connection and answers its read requests like a
/// correct plant, with `corruption` applied. Its task returns the requests
/// it answered, in order, once the client hangs up (or after `PEER_WAIT` of
/// silence, or one request more than a reading makes).
async fn corrupting_peer(
    corruption: Option<Corruption>,
) -> (SocketAddr, JoinHandle<Vec<(u8, u16, u16)>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = tokio::spawn(async move {
        let mut answered = Vec::new();
        let Ok(Ok((mut s, _))) = timeout(PEER_WAIT, listener.accept()).await else {
            return answered;
        };
        while answered.len() <= REQUESTS.len() {
            // A read request: 7 header bytes, function, address, count.
            let mut req = [0u8; 12];
            let Ok(Ok(_)) = timeout(PEER_WAIT, s.read_exact(&mut req)).await else {
                break; // the client hung up
            };
            assert_eq!(req[2..7], [0, 0, 0, 6, 1], "request header {req:02x?}");
            let request = (
                req[7],
                u16::from_be_bytes([req[8], req[9]]),
                u16::from_be_bytes([req[10], req[11]]),
            );
            let mut reply = reply_frame(u16::from_be_bytes([req[0], req[1]]), req[6], request);
            if let Some(c) = corruption
                && c.reply == answered.len()
            {
                reply[c.at] ^= c.mask;
            }
            answered.push(request);
            if s.write_all(&reply).await.is_err() {
                break;
            }
        }
        answered
    });
    (addr, peer)
}

/// A read's outcome, as far as a corrupted byte decides it (the strings in
/// transport and out-of-step errors come from the decoder and are not
/// predicted).
#[derive(Debug, Clone)]
enum Outcome {
    Sample(Vec<f64>),
    OutOfRange {
        point: String,
        value: f64,
        range: (f64, f64),
    },
    Exception {
        table: &'static str,
        address: u16,
        count: u16,
        code: u8,
    },
    OutOfStep,
    Transport,
    Timeout,
    /// Anything else: never expected (the error is read by the failure
    /// message's `Debug`, which dead-code analysis does not count).
    #[allow(dead_code)]
    Other(ReadError),
}

impl Outcome {
    fn observed(r: Result<twinshield_connect::Reading, ReadError>) -> Self {
        match r {
            Ok(r) => Outcome::Sample(r.values),
            Err(ReadError::OutOfRange {
                point,
                value,
                low,
                high,
            }) => Outcome::OutOfRange {
                point,
                value,
                range: (low, high),
            },
            Err(ReadError::Exception {
                table,
                address,
                count,
                code,
                ..
            }) => Outcome::Exception {
                table,
                address,
                count,
                code,
            },
            Err(ReadError::OutOfStep(_)) => Outcome::OutOfStep,
            Err(ReadError::Transport(_)) => Outcome::Transport,
            Err(ReadError::Timeout(t)) if t == CASE_TIMEOUT => Outcome::Timeout,
            Err(e) => Outcome::Other(e),
        }
    }

    /// Whether `observed` is this outcome. Values compare to 1e-9: the
    /// client computes raw × scale + offset with one rounding (`mul_add`),
    /// the oracle with two, and the smallest change a byte can make here is
    /// one raw unit × 0.001.
    fn matches(&self, observed: &Outcome) -> bool {
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9;
        match (self, observed) {
            (Outcome::Sample(a), Outcome::Sample(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(&x, &y)| close(x, y))
            }
            (
                Outcome::OutOfRange {
                    point: p,
                    value: v,
                    range: r,
                },
                Outcome::OutOfRange {
                    point: q,
                    value: w,
                    range: s,
                },
            ) => p == q && close(*v, *w) && r == s,
            (
                Outcome::Exception {
                    table: t,
                    address: a,
                    count: n,
                    code: c,
                },
                Outcome::Exception {
                    table: u,
                    address: b,
                    count: m,
                    code: d,
                },
            ) => (t, a, n, c) == (u, b, m, d),
            (Outcome::OutOfStep, Outcome::OutOfStep)
            | (Outcome::Transport, Outcome::Transport)
            | (Outcome::Timeout, Outcome::Timeout) => true,
            _ => false,
        }
    }

    /// Whether the client keeps the connection: it drops it whenever the
    /// stream may be out of step, and only then.
    fn keeps_connection(&self) -> bool {
        matches!(
            self,
            Outcome::Sample(_) | Outcome::OutOfRange { .. } | Outcome::Exception { .. }
        )
    }

    /// Which kind of outcome, for the coverage check.
    fn kind(&self) -> &'static str {
        match self {
            Outcome::Sample(_) => "sample",
            Outcome::OutOfRange { .. } => "out of range",
            Outcome::Exception { .. } => "exception",
            Outcome::OutOfStep => "out of step",
            Outcome::Transport => "transport",
            Outcome::Timeout => "timeout",
            Outcome::Other(_) => "other",
        }
    }
}

/// What the points read from `frames` (the replies to [`REQUESTS`], in
/// order, all well-formed): the values, or the first point in map order
/// whose value is outside its range.
fn decoded(points: &[Point], frames: &[Vec<u8>]) -> Outcome {
    let mut values = Vec::new();
    for p in points {
        let function = match p.table {
            Table::Coil => 0x01,
            Table::Discrete => 0x02,
            Table::Input => 0x04,
            Table::Holding => 0x03,
        };
        let i = REQUESTS.iter().position(|r| r.0 == function).unwrap();
        let data = &frames[i][9..];
        let at = usize::from(p.address - REQUESTS[i].1);
        let word = |k: usize| u16::from_be_bytes([data[2 * k], data[2 * k + 1]]);
        let raw = match (p.table.is_bit(), p.words, p.signed) {
            (true, _, _) => f64::from((data[at / 8] >> (at % 8)) & 1),
            (false, 1, false) => f64::from(word(at)),
            (false, 1, true) => f64::from(word(at) as i16),
            (false, 2, false) => f64::from((u32::from(word(at)) << 16) | u32::from(word(at + 1))),
            (false, 2, true) => {
                f64::from(((u32::from(word(at)) << 16) | u32::from(word(at + 1))) as i32)
            }
            _ => unreachable!("the map holds 1- and 2-register points only"),
        };
        let value = raw * p.scale + p.offset;
        if !(p.range.0..=p.range.1).contains(&value) {
            return Outcome::OutOfRange {
                point: p.name.clone(),
                value,
                range: p.range,
            };
        }
        values.push(value);
    }
    Outcome::Sample(values)
}

/// The oracle: what a read must give when the peer applies `corruption`,
/// worked out from the frame layout alone.
fn expected(points: &[Point], corruption: Option<Corruption>) -> Outcome {
    let mut frames: Vec<Vec<u8>> = REQUESTS
        .iter()
        .zip(0u16..)
        .map(|(&r, tid)| reply_frame(tid, 1, r))
        .collect();
    let Some(c) = corruption else {
        return decoded(points, &frames);
    };
    let good = frames[c.reply].clone();
    let mut bad = good.clone();
    bad[c.at] ^= c.mask;
    let (function, address, count) = REQUESTS[c.reply];
    match c.at {
        // Another transaction's reply, or another unit's.
        0 | 1 | 6 => Outcome::OutOfStep,
        // Not a Modbus TCP frame.
        2 | 3 => Outcome::Transport,
        // The length announces more bytes than were sent: the client waits
        // for them. Fewer (or none): the PDU is cut short of its byte count.
        4 | 5 => {
            let announced = usize::from(u16::from_be_bytes([bad[4], bad[5]]));
            if announced > good.len() - 6 {
                Outcome::Timeout
            } else {
                Outcome::Transport
            }
        }
        7 => {
            let (f, body) = (bad[7], &bad[8..]);
            if f == function | 0x80 {
                // A well-formed exception reply to this very request, whose
                // exception code is the byte count.
                Outcome::Exception {
                    table: ["coil", "input", "holding"][c.reply],
                    address,
                    count,
                    code: body[0],
                }
            } else if f >= 0x80 {
                // An exception reply for a function not asked.
                Outcome::OutOfStep
            } else {
                // A reply of another function: out of step if the bytes are
                // well-formed for that function, undecodable if not.
                let n = usize::from(body[0]);
                let well_formed = match f {
                    0x01 | 0x02 => body.len() == 1 + n,
                    0x03 | 0x04 => n % 2 == 0 && body.len() == 1 + n,
                    // Address and value; a coil's value is 0xff00 or 0.
                    0x05 => body.len() == 4 && matches!(body[2..], [0xff, 0] | [0, 0]),
                    0x06 | 0x0f | 0x10 => body.len() == 4,
                    _ => panic!("function {f:#04x}: no reply layout modelled; extend the oracle"),
                };
                if well_formed {
                    Outcome::OutOfStep
                } else {
                    Outcome::Transport
                }
            }
        }
        // The byte count no longer matches the data the length frames.
        8 => Outcome::Transport,
        // A data byte: a well-formed reply that says something else.
        _ => {
            frames[c.reply] = bad;
            decoded(points, &frames)
        }
    }
}

/// One read by a fresh client from a peer applying `corruption`: what it
/// gave, whether the client stayed connected, and what the peer answered.
async fn corrupted_read(
    corruption: Option<Corruption>,
) -> (Option<Corruption>, Outcome, bool, Vec<(u8, u16, u16)>) {
    let (addr, peer) = corrupting_peer(corruption).await;
    let mut cfg = ClientConfig::new(addr);
    cfg.timeout = CASE_TIMEOUT;
    let map = PointMap::new(1, corruption_points()).unwrap();
    let mut client = ModbusClient::new(cfg, map);
    let outcome = Outcome::observed(client.read().await);
    let connected = client.is_connected();
    drop(client); // hangs up, which ends the peer
    let answered = peer.await.expect("corruption peer");
    (corruption, outcome, connected, answered)
}

#[tokio::test]
async fn every_corrupted_reply_byte_is_refused_or_read_as_it_says() {
    let points = corruption_points();
    let mut cases = vec![None];
    for (reply, &request) in REQUESTS.iter().enumerate() {
        for at in 0..reply_frame(0, 1, request).len() {
            for mask in MASKS {
                cases.push(Some(Corruption { reply, at, mask }));
            }
        }
    }
    // 10 + 17 + 17 bytes, three masks each, and the clean case.
    assert_eq!(cases.len(), 44 * 3 + 1);

    let mut reads = JoinSet::new();
    for &c in &cases {
        reads.spawn(corrupted_read(c));
    }
    let results = timeout(Duration::from_secs(30), reads.join_all())
        .await
        .expect("every case ends");
    assert_eq!(results.len(), cases.len());

    // The oracle reads the clean frames as the peer's values.
    let clean = Outcome::Sample(vec![1.0, 12.26, 12.78, 1.63, 1.41, 3.0, 294.65, 100_000.0]);
    let clean_expected = expected(&points, None);
    assert!(clean.matches(&clean_expected), "{clean_expected:?}");

    let mut failures = Vec::new();
    let mut kinds = std::collections::BTreeSet::new();
    let mut changed_samples = 0;
    for (c, observed, connected, answered) in results {
        let want = expected(&points, c);
        if matches!(want, Outcome::Sample(_)) && !clean.matches(&want) {
            changed_samples += 1;
        }
        kinds.insert(want.kind());
        // A refusal for one reply ends the reading there; a sample, or a
        // value out of range, is decided once every reply is in.
        let asked = match (&want, c) {
            (Outcome::Sample(_) | Outcome::OutOfRange { .. }, _) | (_, None) => REQUESTS.len(),
            (_, Some(c)) => c.reply + 1,
        };
        if !want.matches(&observed) {
            failures.push(format!("{c:?}: expected {want:?}, got {observed:?}"));
        }
        if connected != want.keeps_connection() {
            failures.push(format!(
                "{c:?} ({want:?}): connected afterwards: {connected}"
            ));
        }
        if answered != REQUESTS[..asked] {
            failures.push(format!(
                "{c:?} ({want:?}): the peer answered {answered:?}, expected {:?}",
                &REQUESTS[..asked]
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures over {} cases:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    // The cases reach every kind of outcome, and some corruptions make
    // well-formed replies that read differently.
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        [
            "exception",
            "out of range",
            "out of step",
            "sample",
            "timeout",
            "transport"
        ]
    );
    assert!(changed_samples >= 5, "{changed_samples} changed samples");
}

#[tokio::test]
async fn refused_connections_back_off() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mut c = ModbusClient::new(config(addr), levels_map());
    let e = c.read().await.unwrap_err();
    // The operating system's reason is kept, typed, behind the message.
    let ReadError::Connect(cause) = &e else {
        panic!("not a connect error: {e:?}");
    };
    assert_eq!(cause.get().kind(), std::io::ErrorKind::ConnectionRefused);
    assert_eq!(
        e.to_string(),
        format!("cannot connect to the plant: {}", cause.get())
    );
    assert_eq!(e.clone(), e);
    assert!(matches!(c.read().await, Err(ReadError::Backoff(_))));
}
