//! Probes of the process's surroundings: tracers, hooks, instrumentation,
//! and environment. They read `/proc` through raw system calls (rustix's
//! Linux backend), so an `LD_PRELOAD` hook on libc's `open` or `read`
//! cannot blind them.

use crate::protect;
use rustix::fs::{Mode, OFlags};
use twinshield_shield_macros::diversify;

use crate::finding::{Finding, FindingClass};
use crate::obf;

/// Reads a whole `/proc` file through raw system calls.
#[diversify]
pub(crate) fn read_proc(path: &str) -> Option<Vec<u8>> {
    let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).ok()?;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match rustix::io::read(&fd, &mut buf) {
            Ok(0) => return Some(out),
            Ok(n) => out.extend_from_slice(buf.get(..n)?),
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return None,
        }
    }
}

/// The threads of this process (`/proc/self/task`).
#[diversify]
fn threads() -> Vec<String> {
    let Ok(fd) = rustix::fs::open(
        &*obf!("/proc/self/task"),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return vec!["self".to_owned()];
    };
    let Ok(dir) = rustix::fs::Dir::read_from(&fd) else {
        return vec!["self".to_owned()];
    };
    dir.filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.bytes().all(|b| b.is_ascii_digit()) && !n.is_empty())
        .collect()
}

/// The `TracerPid:` of a status file, if nonzero.
#[protect]
fn tracer_of(status: &[u8]) -> Option<u32> {
    let text = String::from_utf8_lossy(status);
    let key = obf!("TracerPid:");
    let pid: u32 = text
        .lines()
        .find_map(|l| l.strip_prefix(&*key))?
        .trim()
        .parse()
        .ok()?;
    (pid != 0).then_some(pid)
}

/// A tracer attached to any thread of this process (debuggers, strace,
/// ltrace all trace through ptrace and show here).
#[must_use]
#[diversify]
pub fn tracer() -> Option<Finding> {
    tracer_other_than(None)
}

/// A thread traced by anything but `guardian` (which holds every thread's
/// tracer slot when it runs), or, with a guardian, a thread it no longer
/// holds; and a tracer attached to the guardian itself.
#[must_use]
#[diversify]
pub fn tracer_other_than(guardian: Option<u32>) -> Option<Finding> {
    for tid in threads() {
        let path = if tid == "self" {
            obf!("/proc/self/status").to_string()
        } else {
            format!("{}{tid}{}", &*obf!("/proc/self/task/"), &*obf!("/status"))
        };
        let tracer = read_proc(&path).as_deref().and_then(tracer_of);
        match (tracer, guardian) {
            (Some(pid), Some(g)) if pid == g => {}
            (Some(pid), _) => return Some(traced_by("thread", &tid, pid)),
            (None, Some(g)) => {
                return Some(Finding::new(
                    FindingClass::Debugger,
                    format!("thread {tid} is no longer held by the guardian (process {g})"),
                ));
            }
            (None, None) => {}
        }
    }
    let g = guardian?;
    let status = read_proc(&format!("{}{g}{}", &*obf!("/proc/"), &*obf!("/status")));
    match status.as_deref() {
        None => Some(Finding::new(
            FindingClass::Debugger,
            format!("the guardian (process {g}) is gone"),
        )),
        Some(s) => tracer_of(s).map(|pid| traced_by("the guardian", &g.to_string(), pid)),
    }
}

/// A debugger finding naming the tracer of `what` `id`.
#[diversify]
fn traced_by(what: &str, id: &str, pid: u32) -> Finding {
    let name = read_proc(&format!("{}{pid}{}", &*obf!("/proc/"), &*obf!("/comm")))
        .map(|c| String::from_utf8_lossy(&c).trim().to_owned())
        .unwrap_or_default();
    Finding::new(
        FindingClass::Debugger,
        format!("{what} {id} is traced by process {pid} ({name})"),
    )
}

/// The ids of this process's threads.
#[must_use]
#[diversify]
pub(crate) fn thread_ids() -> Vec<u32> {
    threads().iter().filter_map(|t| t.parse().ok()).collect()
}

/// Whether every thread of this process is traced by `pid`.
#[must_use]
#[diversify]
pub(crate) fn all_threads_traced_by(pid: u32) -> bool {
    threads().iter().all(|tid| {
        let path = format!("{}{tid}{}", &*obf!("/proc/self/task/"), &*obf!("/status"));
        read_proc(&path).as_deref().and_then(tracer_of) == Some(pid)
    })
}

/// Library directories whose shared objects are the system's own.
const SYSTEM_LIBRARY_DIRS: [&str; 4] = ["/lib/", "/lib64/", "/usr/lib/", "/usr/lib64/"];

/// What `/proc/self/maps` shows of hooks: shared objects mapped from
/// outside the system's library directories (a preloaded or injected
/// library), and memory that is writable and executable at once.
#[must_use]
#[diversify]
pub fn maps() -> Vec<Finding> {
    let Some(maps) = read_proc(&obf!("/proc/self/maps")) else {
        return Vec::new();
    };
    maps_findings(&String::from_utf8_lossy(&maps))
}

#[protect]
fn maps_findings(maps: &str) -> Vec<Finding> {
    let (tool, preload) = (obf!("valgrind"), obf!("vgpreload"));
    let mut out = Vec::new();
    let mut seen = Vec::new();
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        let path = fields.nth(3).unwrap_or("");
        if perms.contains('w') && perms.contains('x') {
            out.push(Finding::new(
                FindingClass::Hook,
                format!("writable and executable memory at {range} {path}"),
            ));
        }
        let name = path.rsplit('/').next().unwrap_or("");
        let shared_object = name.contains(".so");
        let system = SYSTEM_LIBRARY_DIRS.iter().any(|d| path.starts_with(d));
        if shared_object && !system && !seen.contains(&path) {
            seen.push(path);
            out.push(Finding::new(
                FindingClass::Hook,
                format!("unexpected shared object mapped: {path}"),
            ));
        }
        if path.contains(&*tool) || name.starts_with(&*preload) {
            out.push(Finding::new(
                FindingClass::Hook,
                format!("{} is underneath ({path})", &*tool),
            ));
        }
    }
    out
}

/// Hooks announced to the loader: `LD_PRELOAD` and `LD_AUDIT` (its own
/// ways to run foreign code in this process), looked for in libc's
/// environment and in the initial environment as the kernel passed it
/// (`/proc/self/environ`: an implant's constructor that unsets the
/// variable edits the first, not the second), and `/etc/ld.so.preload`.
/// A variable found in both is one finding.
#[must_use]
#[diversify]
pub fn environment_hooks() -> Vec<Finding> {
    let initial = read_proc(&obf!("/proc/self/environ")).unwrap_or_default();
    let mut out = Vec::new();
    for var in [obf!("LD_PRELOAD"), obf!("LD_AUDIT")] {
        let prefix = format!("{}=", &*var);
        let passed = initial
            .split(|&b| b == 0)
            .filter_map(|e| e.strip_prefix(prefix.as_bytes()))
            .find(|v| !v.is_empty())
            .map(|v| String::from_utf8_lossy(v).into_owned());
        let now = std::env::var_os(&*var)
            .filter(|v| !v.is_empty())
            .map(|v| v.to_string_lossy().into_owned());
        let text = match (now, passed) {
            (Some(v), _) => format!("{prefix}{v}"),
            (None, Some(v)) => format!("{prefix}{v} (removed from the environment after start)"),
            (None, None) => continue,
        };
        out.push(Finding::new(FindingClass::Hook, text));
    }
    out.extend(system_preload());
    out
}

/// What `/etc/ld.so.preload` makes the loader map into every process.
#[diversify]
fn system_preload() -> Option<Finding> {
    let file = obf!("/etc/ld.so.preload");
    let text = read_proc(&file)?;
    let text = String::from_utf8_lossy(&text);
    let listed: Vec<&str> = text
        .lines()
        .flat_map(|l| l.split('#').next().unwrap_or("").split_whitespace())
        .collect();
    (!listed.is_empty()).then(|| {
        Finding::new(
            FindingClass::Hook,
            format!("{} lists {}", &*file, listed.join(" ")),
        )
    })
}

/// An emulator or instrumentation framework running this program: valgrind
/// runs its tool binary (so `/proc/self/exe` names the tool), qemu-user
/// leaves its own name as the process's command name.
#[must_use]
#[diversify]
pub fn emulation() -> Option<Finding> {
    let exe = rustix::fs::readlink(&*obf!("/proc/self/exe"), Vec::new())
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let comm = read_proc(&obf!("/proc/self/comm"))
        .map(|c| String::from_utf8_lossy(&c).trim().to_owned())
        .unwrap_or_default();
    let exe_name = exe.rsplit('/').next().unwrap_or("");
    let (tool, amd64, arm64, emulator) = (
        obf!("valgrind"),
        obf!("-amd64-linux"),
        obf!("-arm64-linux"),
        obf!("qemu-"),
    );
    if exe.contains(&*tool) || exe_name.contains(&*amd64) || exe_name.contains(&*arm64) {
        return Some(Finding::new(
            FindingClass::Hook,
            format!("{} is underneath (executable {exe})", &*tool),
        ));
    }
    if comm.starts_with(&*emulator) || exe_name.starts_with(&*emulator) {
        return Some(Finding::new(
            FindingClass::Hook,
            format!("{}user is underneath ({comm}, {exe})", &*emulator),
        ));
    }
    None
}

/// Running as root: reported, never refused.
#[must_use]
#[diversify]
pub fn root() -> Option<Finding> {
    rustix::process::geteuid().is_root().then(|| {
        Finding::new(
            FindingClass::Environment,
            "running as root: a compromise of the twin is a compromise of the machine \
             (run it as its own user: packaging/twinshield.service)",
        )
    })
}

/// Makes the process non-dumpable (no core dumps, no ptrace attach by
/// processes without CAP_SYS_PTRACE, `/proc/self/mem` closed to others),
/// sets the core size limit to zero, and locks memory (keys never reach
/// swap) where the system allows it: when the lock limit is unlimited (or
/// the process may exceed it), every page as it is touched, now and later;
/// otherwise nothing, since locking only what exists now would leave the
/// keys allocated later unlocked anyway. What fails is reported.
#[must_use]
#[diversify]
pub fn dump_proof() -> Vec<Finding> {
    use rustix::process::{DumpableBehavior, Resource, Rlimit};
    let mut out = Vec::new();
    if let Err(e) = rustix::process::set_dumpable_behavior(DumpableBehavior::NotDumpable) {
        out.push(Finding::new(
            FindingClass::Environment,
            format!("cannot make the process non-dumpable: {e}"),
        ));
    }
    let zero = Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    if let Err(e) = rustix::process::setrlimit(Resource::Core, zero) {
        out.push(Finding::new(
            FindingClass::Environment,
            format!("cannot turn core dumps off: {e}"),
        ));
    }
    let limit = rustix::process::getrlimit(Resource::Memlock).current;
    if limit.is_none() || rustix::process::geteuid().is_root() {
        use rustix::mm::MlockAllFlags;
        let flags = MlockAllFlags::CURRENT | MlockAllFlags::FUTURE | MlockAllFlags::ONFAULT;
        if let Err(e) = rustix::mm::mlockall(flags) {
            out.push(Finding::new(
                FindingClass::Environment,
                format!("cannot lock memory: {e}"),
            ));
        }
    } else {
        out.push(Finding::new(
            FindingClass::Environment,
            format!(
                "memory not locked: the lock limit is {} bytes (keys could reach swap)",
                limit.unwrap_or(0)
            ),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_the_tracer_of_a_status_file() {
        assert_eq!(tracer_of(b"Name:\tx\nTracerPid:\t0\n"), None);
        assert_eq!(tracer_of(b"Name:\tx\nTracerPid:\t4242\n"), Some(4242));
    }

    #[test]
    fn this_test_is_not_traced() {
        assert_eq!(tracer(), None);
        assert!(!threads().is_empty());
    }

    #[test]
    fn maps_findings_see_foreign_objects_and_wx_memory() {
        let maps = "\
55d0-55e0 r-xp 00000000 08:01 1 /usr/bin/twinshield
7f00-7f10 r-xp 00000000 08:01 2 /usr/lib/x86_64-linux-gnu/libc.so.6
7f10-7f20 r-xp 00000000 08:01 3 /tmp/hook.so
7f20-7f30 rwxp 00000000 00:00 0
7f30-7f40 r-xp 00000000 08:01 4 /usr/libexec/valgrind/vgpreload_core-amd64-linux.so
";
        let f = maps_findings(maps);
        let text: Vec<String> = f.iter().map(ToString::to_string).collect();
        assert!(text.iter().any(|t| t.contains("/tmp/hook.so")), "{text:?}");
        assert!(
            text.iter().any(|t| t.contains("writable and executable")),
            "{text:?}"
        );
        assert!(text.iter().any(|t| t.contains("valgrind")), "{text:?}");
        assert!(!text.iter().any(|t| t.contains("libc.so.6")), "{text:?}");
    }
}

/// One file-backed executable mapping: device, inode, path.
type CodeFile = (String, u64, String);

/// The files this process's code may come from, identified by device and
/// inode as the loader mapped them at start-up: the binary itself and the
/// libraries of its dependency closure (`DT_NEEDED`, followed through the
/// mapped libraries). Anything else executable in the process is foreign
/// code, whatever its name or directory.
#[derive(Debug, Clone, Default)]
pub struct ExpectedCode {
    files: Vec<(String, u64)>,
}

/// The file-backed executable mappings of `/proc/self/maps`.
#[diversify]
fn code_files() -> Vec<CodeFile> {
    let maps = read_proc(&obf!("/proc/self/maps")).unwrap_or_default();
    let mut out: Vec<CodeFile> = Vec::new();
    for line in String::from_utf8_lossy(&maps).lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(perms), Some(dev), Some(inode)) = (f.get(1), f.get(3), f.get(4)) else {
            continue;
        };
        // A path may hold spaces (and a replaced binary ends in " (deleted)").
        let path = f.get(5..).unwrap_or_default().join(" ");
        let inode = inode.parse::<u64>().unwrap_or(0);
        let file = ((*dev).to_owned(), inode, path);
        if perms.contains('x') && inode != 0 && !out.contains(&file) {
            out.push(file);
        }
    }
    out
}

/// The libraries the ELF file at `path` names to the loader.
#[diversify]
fn needed_by(path: &str) -> Vec<String> {
    use std::os::unix::fs::FileExt;
    let Ok(file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let mut read = |at: u64, len: usize| {
        let mut buf = vec![0u8; len];
        file.read_exact_at(&mut buf, at).ok().map(|()| buf)
    };
    crate::elf::needed_libraries(&mut read).unwrap_or_default()
}

/// A `/proc/PID/maps` device field, `major:minor` in hex.
#[diversify]
fn parse_dev(dev: &str) -> Option<(u32, u32)> {
    let (major, minor) = dev.split_once(':')?;
    Some((
        u32::from_str_radix(major, 16).ok()?,
        u32::from_str_radix(minor, 16).ok()?,
    ))
}

#[diversify]
fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

#[diversify]
impl ExpectedCode {
    /// What is mapped now, less what the binary's dependency closure does
    /// not explain: the expected code, and a hook finding per foreign file.
    #[must_use]
    pub fn at_start() -> (Self, Vec<Finding>) {
        let mapped = code_files();
        let exe = obf!("/proc/self/exe");
        let mut names = needed_by(&exe);
        // The binary by what it is, not by its path.
        let me = rustix::fs::stat(&*exe).ok().map(|st| {
            let dev = (rustix::fs::major(st.st_dev), rustix::fs::minor(st.st_dev));
            (dev, st.st_ino)
        });
        let mut expected: Vec<&CodeFile> = mapped
            .iter()
            .filter(|f| me.is_some_and(|(dev, ino)| parse_dev(&f.0) == Some(dev) && f.1 == ino))
            .collect();
        loop {
            let more: Vec<&CodeFile> = mapped
                .iter()
                .filter(|f| !expected.contains(f) && names.iter().any(|n| n == basename(&f.2)))
                .filter(|f| SYSTEM_LIBRARY_DIRS.iter().any(|d| f.2.starts_with(d)))
                .collect();
            if more.is_empty() {
                break;
            }
            for f in more {
                names.extend(needed_by(&f.2));
                expected.push(f);
            }
        }
        let code = ExpectedCode {
            files: expected.iter().map(|f| (f.0.clone(), f.1)).collect(),
        };
        let found = code.foreign(&mapped, "mapped before main");
        (code, found)
    }

    /// A hook finding per executable mapping that is neither the binary
    /// nor a library of its closure (glibc's own name-service and resolver
    /// modules, which it loads on demand from the system directories, are
    /// expected too).
    #[must_use]
    pub fn foreign_now(&self) -> Vec<Finding> {
        if self.files.is_empty() {
            return Vec::new();
        }
        self.foreign(&code_files(), "mapped at run time")
    }

    fn foreign(&self, mapped: &[CodeFile], when: &str) -> Vec<Finding> {
        let (nss, resolv) = (obf!("libnss_"), obf!("libresolv"));
        mapped
            .iter()
            .filter(|f| !self.files.iter().any(|(d, i)| *d == f.0 && *i == f.1))
            .filter(|f| {
                let glibc_module = basename(&f.2).starts_with(&*nss) || basename(&f.2).starts_with(&*resolv);
                !(glibc_module && SYSTEM_LIBRARY_DIRS.iter().any(|d| f.2.starts_with(d)))
            })
            .map(|f| {
                Finding::new(
                    FindingClass::Hook,
                    format!("foreign code {when}: {} (device {}, inode {}), neither this binary nor a library it needs", f.2, f.0, f.1),
                )
            })
            .collect()
    }
}
