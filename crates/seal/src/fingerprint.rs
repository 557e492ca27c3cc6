//! The device's identifying components, read from the system. Raw values
//! stay in memory (zeroized on drop) and are only ever used hashed with a
//! domain-separated, per-device salt.

use std::fs;
use std::io::Read;
use std::path::Path;
use twinshield_shield::obf;
use twinshield_shield_macros::diversify;
use zeroize::Zeroizing;

/// One identifying component of the device.
pub struct Component {
    /// What it is: one of [`LABELS`].
    pub label: &'static str,
    /// Its raw value (never written anywhere).
    pub value: Zeroizing<Vec<u8>>,
}

#[diversify]
impl std::fmt::Debug for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Raw identifiers are not printed.
        write!(f, "Component({})", self.label)
    }
}

/// Every component the fingerprint looks for, in a fixed order.
pub const LABELS: [&str; 7] = [
    "machine-id",
    "dmi-product-uuid",
    "dmi-board-serial",
    "mac-addresses",
    "cpu-model",
    "rootfs-uuid",
    "hostname",
];

#[diversify]
fn read_trimmed(path: &str) -> Option<Vec<u8>> {
    let text = fs::read_to_string(path).ok()?;
    let t = text.trim();
    // Placeholders some firmware reports instead of a real value.
    let placeholder = t.is_empty()
        || t.chars()
            .all(|c| c == '0' || c == '-' || c == 'f' || c == 'F')
        || t.eq_ignore_ascii_case("to be filled by o.e.m.")
        || t.eq_ignore_ascii_case("default string")
        || t.eq_ignore_ascii_case("not specified");
    (!placeholder).then(|| t.as_bytes().to_vec())
}

/// MAC addresses of physical network interfaces (those backed by a device),
/// sorted, so the order interfaces appear in does not matter.
#[diversify]
fn mac_addresses() -> Option<Vec<u8>> {
    let mut macs = Vec::new();
    for entry in fs::read_dir(&*obf!("/sys/class/net")).ok()? {
        let Ok(entry) = entry else { continue };
        let dir = entry.path();
        if !dir.join("device").exists() {
            continue; // virtual: loopback, bridges, tunnels, veth
        }
        if let Some(mac) = read_trimmed(&dir.join("address").to_string_lossy()) {
            macs.push(mac);
        }
    }
    if macs.is_empty() {
        return None;
    }
    macs.sort();
    Some(macs.join(&b','))
}

#[diversify]
fn cpu_model() -> Option<Vec<u8>> {
    let info = fs::read_to_string(&*obf!("/proc/cpuinfo")).ok()?;
    info.lines()
        .find(|l| {
            l.starts_with("model name") || l.starts_with("Hardware") || l.starts_with("cpu model")
        })
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().as_bytes().to_vec())
        .filter(|v| !v.is_empty())
}

/// The root file system's UUID: from /dev/disk/by-uuid when udev provides
/// it, otherwise from an ext2/3/4 superblock of the root device.
#[diversify]
fn rootfs_uuid() -> Option<Vec<u8>> {
    let mountinfo = fs::read_to_string(&*obf!("/proc/self/mountinfo")).ok()?;
    let device = mountinfo.lines().find_map(|l| {
        let fields: Vec<&str> = l.split_whitespace().collect();
        let mount_point = fields.get(4)?;
        if *mount_point != "/" {
            return None;
        }
        let sep = fields.iter().position(|f| *f == "-")?;
        fields.get(sep + 2).map(|s| (*s).to_owned())
    })?;
    if let Ok(entries) = fs::read_dir(&*obf!("/dev/disk/by-uuid")) {
        let target = fs::canonicalize(&device).ok()?;
        for e in entries.flatten() {
            if fs::canonicalize(e.path()).ok().as_ref() == Some(&target) {
                return Some(e.file_name().to_string_lossy().as_bytes().to_vec());
            }
        }
    }
    ext_superblock_uuid(Path::new(&device))
}

#[diversify]
fn ext_superblock_uuid(device: &Path) -> Option<Vec<u8>> {
    let mut f = fs::File::open(device).ok()?;
    let mut sb = [0u8; 2048];
    f.read_exact(&mut sb).ok()?;
    // ext2/3/4: superblock at 1024, magic 0xEF53 at +0x38, UUID at +0x68.
    let magic = u16::from_le_bytes([*sb.get(1024 + 0x38)?, *sb.get(1024 + 0x39)?]);
    if magic != 0xef53 {
        return None;
    }
    let uuid = sb.get(1024 + 0x68..1024 + 0x78)?;
    (uuid.iter().any(|&b| b != 0)).then(|| uuid.to_vec())
}

#[diversify]
fn hostname() -> Option<Vec<u8>> {
    read_trimmed(&obf!("/proc/sys/kernel/hostname"))
}

/// Reads one component's raw value, if this machine has it.
type ComponentReader = fn() -> Option<Vec<u8>>;

/// Reads every component that this machine provides (unreadable or
/// placeholder values are left out).
#[diversify]
pub fn collect() -> Vec<Component> {
    let readers: [(&'static str, ComponentReader); 7] = [
        ("machine-id", || read_trimmed(&obf!("/etc/machine-id"))),
        ("dmi-product-uuid", || {
            read_trimmed(&obf!("/sys/class/dmi/id/product_uuid"))
        }),
        ("dmi-board-serial", || {
            read_trimmed(&obf!("/sys/class/dmi/id/board_serial"))
        }),
        ("mac-addresses", mac_addresses),
        ("cpu-model", cpu_model),
        ("rootfs-uuid", rootfs_uuid),
        ("hostname", hostname),
    ];
    readers
        .into_iter()
        .filter_map(|(label, read)| {
            read().map(|v| Component {
                label,
                value: Zeroizing::new(v),
            })
        })
        .collect()
}
