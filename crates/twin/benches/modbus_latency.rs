//! Over Modbus TCP on loopback: a register server updated at 1 kHz, the twin
//! polling it at 1 kHz through the real client, and the time from a sample
//! being published to the twin's alarm decision on it (sample-to-alarm
//! latency). A bias is injected half-way so an alarm is actually raised.
//!
//! Run with `cargo bench -p twinshield-twin --bench modbus_latency`
//! (release build). Prints polls per second and latency percentiles.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use twinshield_connect::{ClientConfig, ModbusClient, Point, PointMap, RegisterBank, Table, serve};
use twinshield_model::Model;
use twinshield_twin::{AlarmEvent, Twin, TwinSettings};

const RATE_HZ: f64 = 1000.0;
const SECONDS: f64 = 20.0;
const BIAS_AT: f64 = 12.0;
const SEQ_REGISTER: u16 = 10;

fn point(name: &str, table: Table, address: u16, scale: f64, hi: f64) -> Point {
    Point {
        name: name.into(),
        table,
        address,
        words: 1,
        scale,
        offset: 0.0,
        signed: false,
        range: (0.0, hi),
    }
}

/// Deterministic N(0,1) noise.
struct Noise(u64);
impl Noise {
    fn gauss(&mut self) -> f64 {
        let mut u = || {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64 + 1e-12
        };
        let (a, b) = (u(), u());
        (-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos()
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let model =
            Model::parse("quadtank.twin", include_str!("../../../models/quadtank.twin")).unwrap();
        let mut holding = vec![0u16; 11];
        holding[0] = 3000;
        holding[1] = 3000;
        let bank = Arc::new(RwLock::new(RegisterBank {
            coils: vec![true],
            discrete: vec![],
            input: vec![1226, 1278, 163, 141],
            holding,
        }));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, bank.clone(), 1, std::future::pending()));

        // The plant side: a new sample every millisecond, its publish time
        // kept by sequence number.
        let published: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; 65536]));
        let start = Instant::now();
        {
            let bank = bank.clone();
            let published = published.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / RATE_HZ));
                let mut noise = Noise(3);
                let mut seq: u16 = 0;
                loop {
                    tick.tick().await;
                    let t = start.elapsed().as_secs_f64();
                    let bias = if t >= BIAS_AT { 1.0 } else { 0.0 };
                    seq = seq.wrapping_add(1);
                    let levels = [12.263 + bias, 12.783, 1.634, 1.409];
                    {
                        let mut b = bank.write().unwrap();
                        for (r, h) in b.input.iter_mut().zip(levels) {
                            *r = ((h + 0.04 * noise.gauss()) * 100.0).round() as u16;
                        }
                        b.holding[usize::from(SEQ_REGISTER)] = seq;
                    }
                    published.lock().unwrap()[usize::from(seq)] = Some(Instant::now());
                }
            });
        }

        let mut points: Vec<Point> = (0..4)
            .map(|i| point(&format!("y{}", i + 1), Table::Input, i, 0.01, 25.0))
            .collect();
        points.push(point("v1", Table::Holding, 0, 0.001, 10.0));
        points.push(point("v2", Table::Holding, 1, 0.001, 10.0));
        points.push(point("seq", Table::Holding, SEQ_REGISTER, 1.0, 65535.0));
        let map = PointMap::new(1, points).unwrap();
        let mut client = ModbusClient::new(ClientConfig::new(addr), map);
        let settings = TwinSettings {
            sample_period: 1.0 / RATE_HZ,
            warmup: 5.0,
            bias_window: 10.0,
            ..TwinSettings::default()
        };
        let mut twin = Twin::new(&model, settings).unwrap();
        let mut poll = tokio::time::interval(Duration::from_secs_f64(1.0 / RATE_HZ));
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut latencies = Vec::new();
        let mut alarm_latency = None;
        let mut polls = 0u64;
        let mut errors = 0u64;
        let mut last_seq = None;
        let bias_seq_time = |published: &Arc<Mutex<Vec<Option<Instant>>>>, seq: u16| {
            published.lock().unwrap()[usize::from(seq)]
        };
        while start.elapsed().as_secs_f64() < SECONDS {
            poll.tick().await;
            polls += 1;
            let reading = match client.read().await {
                Ok(r) => r,
                Err(_) => {
                    errors += 1;
                    continue;
                }
            };
            let seq = reading.values[6] as u16;
            if last_seq == Some(seq) {
                continue; // the same sample as last time
            }
            last_seq = Some(seq);
            let (y, rest) = reading.values.split_at(4);
            let t = start.elapsed().as_secs_f64();
            let events = twin.update(t, &rest[..2], y).unwrap();
            let raised = events.iter().any(|e| matches!(e, AlarmEvent::Raised(_)));
            let done = Instant::now();
            if let Some(p) = bias_seq_time(&published, seq) {
                let latency = done.duration_since(p).as_secs_f64() * 1e3;
                latencies.push(latency);
                if raised && alarm_latency.is_none() && t >= BIAS_AT {
                    alarm_latency = Some((latency, t - BIAS_AT));
                }
            }
        }
        latencies.sort_by(f64::total_cmp);
        let samples = latencies.len();
        println!("modbus_latency: {SECONDS} s at {RATE_HZ} Hz over loopback Modbus TCP");
        println!("  polls {polls} ({:.0}/s), samples taken {samples} ({:.0}/s), read errors {errors}",
            polls as f64 / SECONDS, samples as f64 / SECONDS);
        println!(
            "  sample-to-decision latency: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            latencies.last().copied().unwrap_or(f64::NAN)
        );
        match alarm_latency {
            Some((l, after)) => println!(
                "  bias alarm: raised {after:.3} s after injection; that sample's publish-to-alarm latency {l:.3} ms"
            ),
            None => println!("  bias alarm: NOT raised"),
        }
    });
}
