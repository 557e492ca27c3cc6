//! The device's identifying components, read from the system. Raw values
//! stay in memory (zeroized on drop) and only ever enter a memory-hard key
//! derivation, several at once (see the device identity).
//!
//! Each component is classed by where it lives. A disk image carries the
//! disk-resident ones (machine-id, hostname, the root file system's UUID),
//! so they prove nothing about the machine; the hardware-resident ones
//! (firmware's DMI identifiers, the NICs' permanent addresses, the
//! processor's CPUID signature) stay with the hardware.

use std::fs;
use std::io::Read;
use std::path::Path;
use twinshield_shield::obf;
use twinshield_shield_macros::diversify;
use zeroize::Zeroizing;

/// Where a component lives, and so what copying a disk takes with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Residence {
    /// Read from the hardware or its firmware: not on a disk image.
    Hardware,
    /// Read from a file on the disk: a disk image carries it.
    Disk,
}

/// One identifying component of the device.
pub struct Component {
    /// What it is: one of [`LABELS`].
    pub label: &'static str,
    /// Where it lives.
    pub residence: Residence,
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
    "cpu-signature",
    "rootfs-uuid",
    "hostname",
];

/// Where the component called `label` lives; `None` for an unknown label.
#[must_use]
pub fn residence_of(label: &str) -> Option<Residence> {
    match label {
        "dmi-product-uuid" | "dmi-board-serial" | "mac-addresses" | "cpu-signature" => {
            Some(Residence::Hardware)
        }
        "machine-id" | "rootfs-uuid" | "hostname" => Some(Residence::Disk),
        _ => None,
    }
}

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
        ("mac-addresses", crate::hardware::permanent_macs),
        ("cpu-signature", crate::hardware::cpu_signature),
        ("rootfs-uuid", rootfs_uuid),
        ("hostname", hostname),
    ];
    readers
        .into_iter()
        .filter_map(|(label, read)| {
            read().map(|v| Component {
                label,
                residence: residence_of(label).unwrap_or(Residence::Disk),
                value: Zeroizing::new(v),
            })
        })
        .collect()
}
