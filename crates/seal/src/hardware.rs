//! Components read from the hardware itself rather than from a file: the
//! processor's own identification (CPUID) and the permanent addresses the
//! network drivers report over netlink. A bind mount or a `/proc` overlay
//! changes what a file says; it does not change what these return.

use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketType};
use std::time::Duration;
use twinshield_shield_macros::diversify;

/// The processor's signature: vendor, family/model/stepping, and brand
/// string, straight from the CPUID instruction (not `/proc/cpuinfo`, which
/// a bind mount replaces). The APIC id is left out: it differs per core.
#[cfg(target_arch = "x86_64")]
#[diversify]
pub(crate) fn cpu_signature() -> Option<Vec<u8>> {
    use core::arch::x86_64::__cpuid;
    let vendor = __cpuid(0);
    let mut out = Vec::with_capacity(64);
    for word in [vendor.ebx, vendor.edx, vendor.ecx] {
        out.extend_from_slice(&word.to_le_bytes());
    }
    out.extend_from_slice(&__cpuid(1).eax.to_le_bytes());
    if __cpuid(0x8000_0000).eax >= 0x8000_0004 {
        for leaf in 0x8000_0002..=0x8000_0004u32 {
            let r = __cpuid(leaf);
            for word in [r.eax, r.ebx, r.ecx, r.edx] {
                out.extend_from_slice(&word.to_le_bytes());
            }
        }
    }
    Some(out)
}

/// Other architectures have no CPUID: the component is absent there.
#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn cpu_signature() -> Option<Vec<u8>> {
    None
}

const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_DUMP: u16 = 0x300;
const IFLA_PERM_ADDRESS: u16 = 54;
const ARPHRD_ETHER: u16 = 1;
const NLMSG_HEADER: usize = 16;
const IFINFOMSG: usize = 16;
/// A dump of a few hundred interfaces fits; more messages than this and the
/// reader stops rather than loop on a misbehaving socket.
const MAX_RECEIVES: usize = 256;

/// Permanent hardware addresses of the machine's Ethernet devices, sorted
/// and comma-joined: what each driver read from its device (netlink's
/// `IFLA_PERM_ADDRESS`), which only physical NICs have. A virtual interface,
/// or an address set with `ip link set address`, does not count.
#[diversify]
pub(crate) fn permanent_macs() -> Option<Vec<u8>> {
    let mut macs = link_dump().ok()?;
    if macs.is_empty() {
        return None;
    }
    macs.sort();
    macs.dedup();
    let text: Vec<String> = macs.iter().map(|m| mac_text(m)).collect();
    Some(text.join(",").into_bytes())
}

#[diversify]
fn mac_text(mac: &[u8]) -> String {
    let parts: Vec<String> = mac.iter().map(|b| format!("{b:02x}")).collect();
    parts.join(":")
}

/// Asks the kernel for every link and collects their permanent addresses.
#[diversify]
fn link_dump() -> std::io::Result<Vec<Vec<u8>>> {
    let fd = rustix::net::socket(AddressFamily::NETLINK, SocketType::RAW, None)?;
    rustix::net::sockopt::set_socket_timeout(
        &fd,
        rustix::net::sockopt::Timeout::Recv,
        Some(Duration::from_secs(2)),
    )?;
    rustix::net::send(&fd, &dump_request(), SendFlags::empty())?;
    let mut buf = vec![0u8; 32 * 1024];
    let mut macs = Vec::new();
    for _ in 0..MAX_RECEIVES {
        let (n, _) = rustix::net::recv(&fd, &mut buf[..], RecvFlags::empty())?;
        let Some(received) = buf.get(..n) else { break };
        if parse_messages(received, &mut macs)? {
            return Ok(macs);
        }
    }
    Err(std::io::Error::other("netlink link dump did not end"))
}

/// An `RTM_GETLINK` dump request for every address family.
fn dump_request() -> Vec<u8> {
    let len = u32::try_from(NLMSG_HEADER + IFINFOMSG).unwrap_or(32);
    let mut m = Vec::with_capacity(NLMSG_HEADER + IFINFOMSG);
    m.extend_from_slice(&len.to_ne_bytes());
    m.extend_from_slice(&RTM_GETLINK.to_ne_bytes());
    m.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    m.extend_from_slice(&1u32.to_ne_bytes()); // sequence number
    m.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel
    m.resize(NLMSG_HEADER + IFINFOMSG, 0);
    m
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

/// Parses one receive's netlink messages, adding each Ethernet link's
/// permanent address. Returns whether the dump is complete.
#[diversify]
fn parse_messages(mut b: &[u8], macs: &mut Vec<Vec<u8>>) -> std::io::Result<bool> {
    let short = || std::io::Error::other("truncated netlink message");
    while !b.is_empty() {
        let len = u32_at(b, 0).ok_or_else(short)? as usize;
        let kind = u16_at(b, 4).ok_or_else(short)?;
        let msg = b
            .get(..len)
            .filter(|_| len >= NLMSG_HEADER)
            .ok_or_else(short)?;
        match kind {
            NLMSG_DONE => return Ok(true),
            NLMSG_ERROR => return Err(std::io::Error::other("netlink refused the link dump")),
            RTM_NEWLINK => {
                if let Some(mac) = permanent_address(msg) {
                    macs.push(mac);
                }
            }
            _ => {}
        }
        b = b.get(align4(len)..).unwrap_or(&[]);
    }
    Ok(false)
}

fn align4(n: usize) -> usize {
    n.saturating_add(3) & !3
}

/// The `IFLA_PERM_ADDRESS` of an `RTM_NEWLINK` message for an Ethernet
/// device, if it has a non-zero one.
#[diversify]
fn permanent_address(msg: &[u8]) -> Option<Vec<u8>> {
    if u16_at(msg, NLMSG_HEADER + 2)? != ARPHRD_ETHER {
        return None;
    }
    let mut attrs = msg.get(NLMSG_HEADER + IFINFOMSG..)?;
    while attrs.len() >= 4 {
        let len = usize::from(u16_at(attrs, 0)?);
        let kind = u16_at(attrs, 2)? & 0x3fff;
        let value = attrs.get(4..len)?;
        if kind == IFLA_PERM_ADDRESS && value.iter().any(|&x| x != 0) {
            return Some(value.to_vec());
        }
        attrs = attrs.get(align4(len.max(4))..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&u16::try_from(4 + value.len()).unwrap().to_ne_bytes());
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(value);
        a.resize(align4(a.len()), 0);
        a
    }

    fn link(device_type: u16, attrs: &[u8]) -> Vec<u8> {
        let mut m = vec![0u8; NLMSG_HEADER + IFINFOMSG];
        m.extend_from_slice(attrs);
        let len = u32::try_from(m.len()).unwrap();
        m[..4].copy_from_slice(&len.to_ne_bytes());
        m[4..6].copy_from_slice(&RTM_NEWLINK.to_ne_bytes());
        m[NLMSG_HEADER + 2..NLMSG_HEADER + 4].copy_from_slice(&device_type.to_ne_bytes());
        m
    }

    #[test]
    fn only_ethernet_links_with_a_permanent_address_count() {
        let mac = [0x02, 0xfc, 0, 0, 0, 1];
        let mut dump = link(ARPHRD_ETHER, &[attr(3, b"eth0\0"), attr(54, &mac)].concat());
        dump.extend(link(ARPHRD_ETHER, &attr(1, &[9; 6]))); // no permanent address
        dump.extend(link(772, &attr(54, &[7; 6]))); // loopback type
        dump.extend(link(ARPHRD_ETHER, &attr(54, &[0; 6]))); // all zero
        let mut macs = Vec::new();
        assert!(!parse_messages(&dump, &mut macs).unwrap());
        assert_eq!(macs, vec![mac.to_vec()]);
        let mut done = vec![0u8; NLMSG_HEADER];
        done[..4].copy_from_slice(&16u32.to_ne_bytes());
        done[4..6].copy_from_slice(&NLMSG_DONE.to_ne_bytes());
        assert!(parse_messages(&done, &mut macs).unwrap());
    }

    #[test]
    fn truncated_or_malformed_messages_are_errors_not_panics() {
        let mut macs = Vec::new();
        assert!(parse_messages(&[1, 0, 0], &mut macs).is_err());
        let mut bad = link(ARPHRD_ETHER, &attr(54, &[1; 6]));
        bad[..4].copy_from_slice(&999u32.to_ne_bytes());
        assert!(parse_messages(&bad, &mut macs).is_err());
        // An attribute claiming more bytes than the message has is skipped.
        let mut m = link(ARPHRD_ETHER, &[]);
        m.extend_from_slice(&200u16.to_ne_bytes());
        m.extend_from_slice(&54u16.to_ne_bytes());
        assert_eq!(permanent_address(&m), None);
        assert!(macs.is_empty());
    }

    #[test]
    fn cpu_signature_is_stable() {
        assert_eq!(cpu_signature(), cpu_signature());
    }
}
