//! The client against our register server and against hostile peers that
//! speak raw bytes: exceptions, short replies, mismatched transaction ids,
//! silence and dropped connections all become typed errors, and the client
//! recovers once the plant behaves again.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
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
/// (or nothing, to stay silent). Connections beyond the first get `good`.
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

#[tokio::test]
async fn garbage_replies_never_panic() {
    let addr = raw_peer(|req, conn| {
        let mut r = input_reply(req, &[1, 2, 3, 4], 0);
        // Corrupt a different byte on every connection.
        let i = conn % r.len();
        r[i] ^= 0xa5;
        Some(r)
    })
    .await;
    let mut c = ModbusClient::new(config(addr), levels_map());
    for _ in 0..20 {
        let _ = c.read().await;
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn refused_connections_back_off() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mut c = ModbusClient::new(config(addr), levels_map());
    assert!(matches!(c.read().await, Err(ReadError::Connect(_))));
    assert!(matches!(c.read().await, Err(ReadError::Backoff(_))));
}
