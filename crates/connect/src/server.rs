//! A Modbus TCP server over a shared register bank: the reference plant
//! serves its registers with it, and tests build hostile peers on it. It
//! answers reads only; writes are refused with "illegal function", since
//! nothing in twinshield writes to a plant.

use std::future::{self, Future};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use tokio::net::TcpListener;
use tokio_modbus::server::tcp::{Server, accept_tcp_connection};
use tokio_modbus::{ExceptionCode, Request, Response, SlaveRequest};
use twinshield_shield_macros::diversify;

/// The plant's current register values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RegisterBank {
    /// Coils, from address 0.
    pub coils: Vec<bool>,
    /// Discrete inputs, from address 0.
    pub discrete: Vec<bool>,
    /// Input registers, from address 0.
    pub input: Vec<u16>,
    /// Holding registers, from address 0.
    pub holding: Vec<u16>,
}

#[diversify]
impl RegisterBank {
    /// Reads `map` straight from this bank, with the same decoding and
    /// validation as a read over the network: for in-process hosts (the
    /// evaluation harness) that must see exactly what the twin would.
    pub fn read(&self, map: &crate::PointMap) -> Result<crate::Reading, crate::ReadError> {
        let raw: Vec<Vec<u16>> = map
            .spans()
            .iter()
            .map(|s| {
                let range = usize::from(s.start)..usize::from(s.start) + usize::from(s.count);
                match s.table {
                    crate::Table::Coil => self
                        .coils
                        .get(range)
                        .map(|b| b.iter().map(|&x| u16::from(x)).collect()),
                    crate::Table::Discrete => self
                        .discrete
                        .get(range)
                        .map(|b| b.iter().map(|&x| u16::from(x)).collect()),
                    crate::Table::Input => self.input.get(range).map(<[u16]>::to_vec),
                    crate::Table::Holding => self.holding.get(range).map(<[u16]>::to_vec),
                }
                .unwrap_or_default()
            })
            .collect();
        let values = crate::client::decode_points(map, &raw)?;
        let time = crate::client::decode_timestamp(map, &raw)?;
        Ok(crate::Reading { values, time })
    }
}

/// A register bank shared between the plant that writes it and the server
/// that reads it.
pub type SharedBank = Arc<RwLock<RegisterBank>>;

#[diversify]
fn slice<T: Clone>(items: &[T], addr: u16, count: u16, max: u16) -> Result<Vec<T>, ExceptionCode> {
    if count == 0 || count > max {
        return Err(ExceptionCode::IllegalDataValue);
    }
    let start = usize::from(addr);
    let end = start + usize::from(count);
    items
        .get(start..end)
        .map(<[T]>::to_vec)
        .ok_or(ExceptionCode::IllegalDataAddress)
}

struct BankService {
    bank: SharedBank,
    unit_id: u8,
}

#[diversify]
impl tokio_modbus::server::Service for BankService {
    type Request = SlaveRequest<'static>;
    type Response = Response;
    type Exception = ExceptionCode;
    type Future = future::Ready<Result<Response, ExceptionCode>>;

    fn call(&self, req: Self::Request) -> Self::Future {
        // Unit 0 and 255 are the TCP "whoever you are" addresses.
        if req.slave != self.unit_id && req.slave != 0 && req.slave != 255 {
            return future::ready(Err(ExceptionCode::GatewayTargetDevice));
        }
        let Ok(bank) = self.bank.read() else {
            return future::ready(Err(ExceptionCode::ServerDeviceFailure));
        };
        let r = match req.request {
            Request::ReadCoils(a, n) => slice(&bank.coils, a, n, 2000).map(Response::ReadCoils),
            Request::ReadDiscreteInputs(a, n) => {
                slice(&bank.discrete, a, n, 2000).map(Response::ReadDiscreteInputs)
            }
            Request::ReadInputRegisters(a, n) => {
                slice(&bank.input, a, n, 125).map(Response::ReadInputRegisters)
            }
            Request::ReadHoldingRegisters(a, n) => {
                slice(&bank.holding, a, n, 125).map(Response::ReadHoldingRegisters)
            }
            _ => Err(ExceptionCode::IllegalFunction),
        };
        future::ready(r)
    }
}

/// Serves `bank` as Modbus unit `unit_id` on `listener` until `shutdown`
/// completes. Each connection gets its own task.
#[diversify]
pub async fn serve(
    listener: TcpListener,
    bank: SharedBank,
    unit_id: u8,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> io::Result<()> {
    let server = Server::new(listener);
    let on_connected = move |stream, addr: SocketAddr| {
        let bank = bank.clone();
        async move {
            tracing::debug!(%addr, "plant client connected");
            accept_tcp_connection(stream, addr, move |_| {
                Ok(Some(BankService {
                    bank: bank.clone(),
                    unit_id,
                }))
            })
        }
    };
    let on_error = |e: io::Error| tracing::debug!(error = %e, "plant connection ended");
    server
        .serve_until(&on_connected, on_error, shutdown)
        .await
        .map(|_| ())
}
