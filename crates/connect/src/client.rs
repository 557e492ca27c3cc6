//! The twin's Modbus TCP client: timeouts, reconnection with backoff,
//! resynchronisation, and validation of every reply.

use crate::map::{Point, PointMap, Table, decode};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::time::{Instant, timeout};
use tokio_modbus::client::{Client, Context, tcp};
use tokio_modbus::{ExceptionCode, Request, Response, Slave};
use twinshield_shield_macros::diversify;

/// Connection settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The plant's Modbus TCP server.
    pub addr: SocketAddr,
    /// Longest wait for a connection or one reply.
    pub timeout: Duration,
    /// First wait before reconnecting after a failure.
    pub backoff_min: Duration,
    /// Longest wait between reconnection attempts.
    pub backoff_max: Duration,
}

#[diversify]
impl ClientConfig {
    /// Defaults for a plant on a local network: 1 s timeout, backoff from
    /// 100 ms doubling to 5 s.
    pub fn new(addr: SocketAddr) -> Self {
        ClientConfig {
            addr,
            timeout: Duration::from_secs(1),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
        }
    }
}

/// The error behind a [`ReadError`], shared so that a `ReadError` can be
/// cloned (it is reported to several places). Two compare equal when their
/// messages do.
#[derive(Debug)]
pub struct SharedCause<E>(Arc<E>);

#[diversify]
impl<E> SharedCause<E> {
    /// Wraps `error`.
    pub fn new(error: E) -> Self {
        SharedCause(Arc::new(error))
    }

    /// The error itself (an I/O error's `kind()`, say).
    pub fn get(&self) -> &E {
        &self.0
    }
}

#[diversify]
impl<E> Clone for SharedCause<E> {
    fn clone(&self) -> Self {
        SharedCause(Arc::clone(&self.0))
    }
}

#[diversify]
impl<E: std::fmt::Display> PartialEq for SharedCause<E> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.to_string() == other.0.to_string()
    }
}

#[diversify]
impl<E: std::fmt::Display> std::fmt::Display for SharedCause<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[diversify]
impl<E: std::error::Error + 'static> std::error::Error for SharedCause<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// How a reply did not match its request ([`ReadError::OutOfStep`]).
#[derive(Debug, Clone, PartialEq, Error)]
pub enum Mismatch {
    /// The Modbus layer's check failed (transaction id, unit, function code).
    #[error(transparent)]
    Protocol(SharedCause<tokio_modbus::ProtocolError>),
    /// The reply is of another kind than the request asked for.
    #[error("reply of another kind")]
    Kind,
}

/// Why a poll produced no sample. Each is a data-quality event for the sync
/// loop; none of them leaves a partial sample behind. Where the operating
/// system or the Modbus layer gave a reason, the message shows it and
/// [`std::error::Error::source`] returns it.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ReadError {
    /// Waiting out the reconnection backoff.
    #[error("not connected; next attempt in {0:?}")]
    Backoff(Duration),
    /// Connecting failed (refused, unreachable, timed out: `TimedOut`).
    #[error("cannot connect to the plant: {0}")]
    Connect(#[source] SharedCause<std::io::Error>),
    /// No reply within the timeout; the connection was dropped.
    #[error("no reply from the plant within {0:?}")]
    Timeout(Duration),
    /// The connection failed mid-request; it was dropped.
    #[error("plant connection lost: {0}")]
    Transport(#[source] SharedCause<std::io::Error>),
    /// A reply did not match its request (transaction id, unit or function):
    /// the stream is out of step, so the connection was dropped to resync.
    #[error("reply out of step with its request ({0}); resynchronising")]
    OutOfStep(#[source] Mismatch),
    /// The plant answered with a Modbus exception.
    #[error("plant refused to read {table} {address}..+{count}: exception {code:#04x} ({name})")]
    Exception {
        /// Table asked.
        table: &'static str,
        /// First address asked.
        address: u16,
        /// Items asked.
        count: u16,
        /// The exception code.
        code: u8,
        /// Its name.
        name: String,
    },
    /// The reply held fewer (or more) items than asked.
    #[error("reply to {table} {address}..+{expected} held {got} items")]
    WrongLength {
        /// Table asked.
        table: &'static str,
        /// First address asked.
        address: u16,
        /// Items asked.
        expected: u16,
        /// Items received.
        got: usize,
    },
    /// A decoded value lies outside the point's declared range.
    #[error("`{point}` reads {value}, outside its range [{low}, {high}]")]
    OutOfRange {
        /// The point's name.
        point: String,
        /// The decoded value.
        value: f64,
        /// Declared low end.
        low: f64,
        /// Declared high end.
        high: f64,
    },
}

/// One complete, validated sample: engineering values in the map's point order.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// Values, one per point.
    pub values: Vec<f64>,
    /// The map's timestamp point, decoded: when the plant took the
    /// values, in its own time base.
    pub time: Option<f64>,
}

/// A Modbus TCP client polling one plant.
pub struct ModbusClient {
    cfg: ClientConfig,
    map: PointMap,
    ctx: Option<Context>,
    backoff: Duration,
    retry_at: Option<Instant>,
    raw: Vec<Vec<u16>>,
    reconnects: u64,
}

#[diversify]
impl std::fmt::Debug for ModbusClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModbusClient")
            .field("addr", &self.cfg.addr)
            .field("connected", &self.ctx.is_some())
            .field("reconnects", &self.reconnects)
            .finish()
    }
}

#[diversify]
fn exception_name(code: ExceptionCode) -> (u8, String) {
    (u8::from(code), format!("{code:?}"))
}

#[diversify]
impl ModbusClient {
    /// A client for `map` at `cfg.addr`; it connects on the first read.
    pub fn new(cfg: ClientConfig, map: PointMap) -> Self {
        let raw = map.spans().iter().map(|_| Vec::new()).collect();
        ModbusClient {
            backoff: cfg.backoff_min,
            cfg,
            map,
            ctx: None,
            retry_at: None,
            raw,
            reconnects: 0,
        }
    }

    /// The map being read.
    pub fn map(&self) -> &PointMap {
        &self.map
    }

    /// The plant's address.
    pub fn address(&self) -> std::net::SocketAddr {
        self.cfg.addr
    }

    /// Whether a connection is open.
    pub fn is_connected(&self) -> bool {
        self.ctx.is_some()
    }

    /// Connections opened after the first one.
    pub fn reconnects(&self) -> u64 {
        self.reconnects
    }

    fn fail(&mut self) {
        self.ctx = None;
        self.retry_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(self.cfg.backoff_max);
    }

    async fn ensure_connected(&mut self) -> Result<(), ReadError> {
        if self.ctx.is_some() {
            return Ok(());
        }
        if let Some(at) = self.retry_at {
            let now = Instant::now();
            if now < at {
                return Err(ReadError::Backoff(at - now));
            }
        }
        let slave = Slave(self.map.unit_id());
        match timeout(self.cfg.timeout, tcp::connect_slave(self.cfg.addr, slave)).await {
            Ok(Ok(ctx)) => {
                if self.retry_at.is_some() {
                    self.reconnects += 1;
                }
                tracing::debug!(addr = %self.cfg.addr, "connected to plant");
                self.ctx = Some(ctx);
                Ok(())
            }
            Ok(Err(e)) => {
                self.fail();
                Err(ReadError::Connect(SharedCause::new(e)))
            }
            Err(_) => {
                self.fail();
                Err(ReadError::Connect(SharedCause::new(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("timed out after {:?}", self.cfg.timeout),
                ))))
            }
        }
    }

    /// Polls every point once. On success the connection's backoff resets;
    /// on a transport problem the connection is dropped and the next call
    /// reconnects after the backoff.
    pub async fn read(&mut self) -> Result<Reading, ReadError> {
        self.ensure_connected().await?;
        for i in 0..self.map.spans().len() {
            let Some(&span) = self.map.spans().get(i) else {
                break;
            };
            let request = match span.table {
                Table::Coil => Request::ReadCoils(span.start, span.count),
                Table::Discrete => Request::ReadDiscreteInputs(span.start, span.count),
                Table::Input => Request::ReadInputRegisters(span.start, span.count),
                Table::Holding => Request::ReadHoldingRegisters(span.start, span.count),
            };
            let Some(ctx) = self.ctx.as_mut() else {
                return Err(ReadError::Transport(SharedCause::new(std::io::Error::new(
                    std::io::ErrorKind::NotConnected,
                    "connection closed",
                ))));
            };
            let reply = match timeout(self.cfg.timeout, ctx.call(request)).await {
                Err(_) => {
                    self.fail();
                    return Err(ReadError::Timeout(self.cfg.timeout));
                }
                Ok(Err(tokio_modbus::Error::Protocol(e))) => {
                    self.fail();
                    return Err(ReadError::OutOfStep(Mismatch::Protocol(SharedCause::new(
                        e,
                    ))));
                }
                Ok(Err(tokio_modbus::Error::Transport(e))) => {
                    self.fail();
                    return Err(ReadError::Transport(SharedCause::new(e)));
                }
                Ok(Ok(Err(code))) => {
                    let (code, name) = exception_name(code);
                    return Err(ReadError::Exception {
                        table: span.table.name(),
                        address: span.start,
                        count: span.count,
                        code,
                        name,
                    });
                }
                Ok(Ok(Ok(response))) => response,
            };
            let items: Vec<u16> = match response_items(span.table, reply) {
                Some(items) => items,
                None => {
                    self.fail();
                    return Err(ReadError::OutOfStep(Mismatch::Kind));
                }
            };
            // Bit replies are padded to whole bytes: keep the bits asked for,
            // but never accept fewer.
            let got = items.len();
            let exact = if span.table.is_bit() {
                got >= usize::from(span.count) && got < usize::from(span.count) + 8
            } else {
                got == usize::from(span.count)
            };
            if !exact {
                return Err(ReadError::WrongLength {
                    table: span.table.name(),
                    address: span.start,
                    expected: span.count,
                    got,
                });
            }
            if let Some(slot) = self.raw.get_mut(i) {
                *slot = items;
            }
        }
        let values = decode_points(&self.map, &self.raw)?;
        let time = decode_timestamp(&self.map, &self.raw)?;
        self.backoff = self.cfg.backoff_min;
        self.retry_at = None;
        Ok(Reading { values, time })
    }
}

/// Decodes and validates every point of `map` from the raw items of its
/// spans (`raw[i]` holds span `i`'s registers, or bits as 0/1).
#[diversify]
pub(crate) fn decode_points(map: &PointMap, raw: &[Vec<u16>]) -> Result<Vec<f64>, ReadError> {
    // Sized once: this runs for every sample.
    let mut values = Vec::with_capacity(map.points().len());
    for p in map.points() {
        values.push(decode_checked(map, raw, p)?);
    }
    Ok(values)
}

/// Decodes and validates `map`'s timestamp point, if it has one.
#[diversify]
pub(crate) fn decode_timestamp(map: &PointMap, raw: &[Vec<u16>]) -> Result<Option<f64>, ReadError> {
    map.timestamp()
        .map(|p| decode_checked(map, raw, p))
        .transpose()
}

/// One point from the span that covers it, inside its declared range.
/// Inline, so it carries no guard of its own: it runs for every point of
/// every sample, and its callers' guards cover it.
#[inline]
fn decode_checked(map: &PointMap, raw: &[Vec<u16>], p: &Point) -> Result<f64, ReadError> {
    let covering = map.spans().iter().zip(raw).find(|(s, _)| {
        s.table == p.table
            && s.start <= p.address
            && u32::from(p.address) + u32::from(p.words) <= u32::from(s.start) + u32::from(s.count)
    });
    let value = covering
        .and_then(|(s, items)| decode(p, s.start, items))
        .unwrap_or(f64::NAN);
    if !(value >= p.range.0 && value <= p.range.1) {
        return Err(ReadError::OutOfRange {
            point: p.name.clone(),
            value,
            low: p.range.0,
            high: p.range.1,
        });
    }
    Ok(value)
}

#[diversify]
fn response_items(table: Table, r: Response) -> Option<Vec<u16>> {
    let bits = |b: Vec<bool>| b.into_iter().map(u16::from).collect();
    match (table, r) {
        (Table::Coil, Response::ReadCoils(b)) => Some(bits(b)),
        (Table::Discrete, Response::ReadDiscreteInputs(b)) => Some(bits(b)),
        (Table::Input, Response::ReadInputRegisters(w)) => Some(w),
        (Table::Holding, Response::ReadHoldingRegisters(w)) => Some(w),
        _ => None,
    }
}
