//! Interoperability with a Modbus implementation nobody here wrote: a
//! pymodbus server (tests/peers/pymodbus_quadtank.py) serving the quadtank
//! register map. The connector reads it, feeds the twin, survives the server
//! dropping every connection, and turns its exception replies into typed
//! errors. Needs `python3` with `pymodbus` (CI installs it).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use twinshield_connect::{ClientConfig, ModbusClient, Point, PointMap, ReadError, Table};
use twinshield_model::Model;
use twinshield_twin::{Twin, TwinSettings};

struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the pymodbus peer and waits until it listens.
fn peer(mode: &str, seconds: u32) -> (Peer, SocketAddr) {
    let port = free_port();
    let script = twinshield_e2e::root().join("tests/peers/pymodbus_quadtank.py");
    let mut child = Command::new("python3")
        .arg(script)
        .args([
            "--port",
            &port.to_string(),
            "--mode",
            mode,
            "--seconds",
            &seconds.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 must be installed");
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    assert_eq!(
        line.trim(),
        "ready",
        "pymodbus peer did not start (is pymodbus installed?)"
    );
    (Peer(child), SocketAddr::from(([127, 0, 0, 1], port)))
}

fn point(name: &str, table: Table, address: u16, scale: f64, range: (f64, f64)) -> Point {
    Point {
        name: name.into(),
        table,
        address,
        words: 1,
        scale,
        offset: 0.0,
        signed: false,
        range,
    }
}

/// The quadtank map as models/quadtank.twin binds it: outputs y1..y4, then
/// inputs v1, v2.
fn quadtank_map() -> PointMap {
    let mut points: Vec<Point> = (0..4)
        .map(|i| point(&format!("y{}", i + 1), Table::Input, i, 0.01, (0.0, 25.0)))
        .collect();
    points.push(point("v1", Table::Holding, 0, 0.001, (0.0, 10.0)));
    points.push(point("v2", Table::Holding, 1, 0.001, (0.0, 10.0)));
    PointMap::new(1, points).unwrap()
}

fn config(addr: SocketAddr) -> ClientConfig {
    let mut c = ClientConfig::new(addr);
    c.timeout = Duration::from_millis(500);
    c.backoff_min = Duration::from_millis(50);
    c.backoff_max = Duration::from_millis(400);
    c
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn the_twin_reads_a_pymodbus_plant() {
    let (_peer, addr) = peer("normal", 20);
    let model = Model::parse("quadtank.twin", include_str!("../models/quadtank.twin")).unwrap();
    let mut twin = Twin::new(&model, TwinSettings::default()).unwrap();
    runtime().block_on(async {
        let mut client = ModbusClient::new(config(addr), quadtank_map());
        for k in 0..50 {
            let r = client.read().await.expect("pymodbus serves every point");
            let (y, u) = r.values.split_at(4);
            assert!((y[0] - 12.26).abs() < 0.06, "{y:?}");
            assert!(
                (u[0] - 3.0).abs() < 1e-9 && (u[1] - 3.0).abs() < 1e-9,
                "{u:?}"
            );
            twin.update(f64::from(k) * 0.1, u, y)
                .expect("twin takes the sample");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    assert_eq!(twin.samples(), 50);
    let est = twin.estimate();
    assert!((est[0] - 12.26).abs() < 0.2, "estimate {est:?}");
}

#[test]
fn the_connector_rides_out_a_server_that_drops_connections() {
    let (_peer, addr) = peer("flaky", 15);
    runtime().block_on(async {
        let mut client = ModbusClient::new(config(addr), quadtank_map());
        let (mut ok, mut failed) = (0, 0);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::time::Instant::now() < deadline {
            match client.read().await {
                Ok(r) => {
                    assert_eq!(r.values.len(), 6);
                    ok += 1;
                }
                Err(e) => {
                    assert!(
                        matches!(
                            e,
                            ReadError::Transport(_)
                                | ReadError::Timeout(_)
                                | ReadError::Connect(_)
                                | ReadError::Backoff(_)
                        ),
                        "unexpected error {e:?}"
                    );
                    failed += 1;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(failed > 0, "the server never dropped us");
        assert!(ok > 100, "too few samples across the drops: {ok}");
        assert!(
            client.reconnects() >= 2,
            "reconnected {} times",
            client.reconnects()
        );
    });
}

#[test]
fn exception_replies_become_typed_errors() {
    let (_peer, addr) = peer("exception", 10);
    runtime().block_on(async {
        let mut client = ModbusClient::new(config(addr), quadtank_map());
        match client.read().await {
            Err(ReadError::Exception { code, table, .. }) => {
                assert_eq!(code, 0x02, "illegal data address");
                assert_eq!(table, "input");
            }
            other => panic!("expected an exception, got {other:?}"),
        }
        assert!(
            client.is_connected(),
            "an exception does not drop the connection"
        );
    });
}
