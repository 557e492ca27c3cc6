//! Shared helpers for the end-to-end tests: find (and if needed build) the
//! real `twinshield` binary once, run it, and capture what it prints.
#![forbid(unsafe_code)]
// Test support: a failure here is the calling test failing, so panicking
// with a clear message is the right response.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

pub mod https;

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The workspace root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A command for `program` that runs with core dumps off (`ulimit -c 0`,
/// then `exec`, so the pid is the program's own): for debuggers, tracers
/// and children that may crash, whose dumps would otherwise land in the
/// working directory (a 155 MB `core` once reached the repository).
pub fn without_core_dumps(program: impl AsRef<OsStr>) -> Command {
    let mut c = Command::new("sh");
    c.args(["-c", "ulimit -c 0 && exec \"$0\" \"$@\""])
        .arg(program.as_ref());
    c
}

/// Path of the `twinshield` binary under test, stripped and hardened as a
/// release is: `$TWINSHIELD_BIN` when set (an already hardened binary),
/// otherwise a stripped, hardened copy of [`twinshield_unhardened`]
/// (`twinshield-hardened` beside it, its symbols in `twinshield-hardened.sym`,
/// made once per build: reused while newer than the build).
pub fn twinshield() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("TWINSHIELD_BIN") {
            return PathBuf::from(p);
        }
        let built = twinshield_unhardened();
        let hardened = built.with_file_name("twinshield-hardened");
        let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        if modified(&hardened).is_some_and(|h| modified(built).is_some_and(|b| h >= b)) {
            return hardened;
        }
        let tmp = built.with_file_name(format!("twinshield-hardened.{}", std::process::id()));
        let tmp_symbols = tmp.with_extension(format!("sym.{}", std::process::id()));
        strip(built, &tmp, &tmp_symbols);
        let out = Command::new(built)
            .arg("harden")
            .arg(&tmp)
            .args(["--seed", "1", "--allow-development-secret"])
            .output()
            .unwrap_or_else(|e| panic!("cannot run harden: {e}"));
        assert!(out.status.success(), "harden failed: {out:?}");
        std::fs::rename(&tmp_symbols, hardened.with_extension("sym"))
            .unwrap_or_else(|e| panic!("cannot rename: {e}"));
        std::fs::rename(&tmp, &hardened).unwrap_or_else(|e| panic!("cannot rename: {e}"));
        hardened
    })
}

/// What a release ships: `built` without symbols or debug information at
/// `stripped`, its symbols and debug information at `symbols` (the
/// vendor's, for crash analysis and for the attacks that need addresses).
pub fn strip(built: &Path, stripped: &Path, symbols: &Path) {
    for (args, what) in [
        (
            vec!["--only-keep-debug".into(), built.into(), symbols.into()],
            "keep the symbols",
        ),
        (
            vec!["--strip-all".into(), built.into(), stripped.into()],
            "strip",
        ),
    ] {
        let args: Vec<std::ffi::OsString> = args;
        let out = Command::new("objcopy")
            .args(&args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run objcopy to {what}: {e}"));
        assert!(out.status.success(), "objcopy could not {what}: {out:?}");
    }
}

/// The `twinshield` binary of the current profile as cargo built it (never
/// hardened), built once per test process.
pub fn twinshield_unhardened() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // Test executables live in target/<profile>/deps/.
        let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .unwrap_or_else(|| panic!("unexpected test path {}", exe.display()))
            .to_path_buf();
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        build.current_dir(root()).args([
            "build",
            "--quiet",
            "-p",
            "twinshield",
            "--bin",
            "twinshield",
        ]);
        if release {
            build.arg("--release");
        }
        let status = build
            .status()
            .unwrap_or_else(|e| panic!("cannot run cargo build: {e}"));
        assert!(status.success(), "building twinshield failed");
        profile_dir.join("twinshield")
    })
}

/// What one run of the binary did.
#[derive(Debug)]
pub struct Run {
    /// Exit code (`None` if killed by a signal).
    pub code: Option<i32>,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// Runs `twinshield` with `args` in `dir`, with no standard input.
pub fn run_in(dir: &Path, args: &[&str]) -> Run {
    Command::new(twinshield())
        .current_dir(dir)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run twinshield: {e}"))
        .into()
}

/// Runs `twinshield` with `args` from the workspace root.
pub fn run(args: &[&str]) -> Run {
    run_in(root(), args)
}

/// A fresh scratch directory under the target directory, removed on drop.
pub struct Scratch(PathBuf);

impl Scratch {
    /// Creates `target/e2e-scratch/<name>-<pid>`.
    pub fn new(name: &str) -> Self {
        let dir = root()
            .join("target")
            .join("e2e-scratch")
            .join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        Scratch(dir)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `twinshield ARGS` (a shell-quoted string) in `dir` as if on another
/// machine: new mount, UTS and network namespaces, another machine-id (and
/// DMI product UUID where the machine has one), another hostname, and no
/// physical network interface. Needs root and util-linux `unshare`.
pub fn on_another_machine(dir: &Path, args: &str) -> Run {
    let fake_id = dir.join("fake-machine-id");
    std::fs::write(&fake_id, "0123456789abcdef0123456789abcdef\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let fake_uuid = dir.join("fake-uuid");
    std::fs::write(&fake_uuid, "4c4c4544-0000-1111-2222-333344445555\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let dmi = "/sys/class/dmi/id/product_uuid";
    let script = format!(
        "set -e; mount --bind '{id}' /etc/machine-id; \
         mount -t sysfs sysfs /sys; \
         if [ -e {dmi} ]; then mount --bind '{uuid}' {dmi}; fi; \
         hostname another-machine; exec '{bin}' {args}",
        id = fake_id.display(),
        uuid = fake_uuid.display(),
        bin = twinshield().display(),
    );
    Command::new("unshare")
        .args(["--mount", "--uts", "--net", "sh", "-c", &script])
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("unshare must be available (util-linux) and run as root: {e}"))
        .into()
}

/// A reference plant (`twinshield plant quadtank`) serving Modbus TCP on a
/// free loopback port; killed on drop.
pub struct Plant {
    child: std::process::Child,
    /// `HOST:PORT` it listens on.
    pub listen: String,
    /// `modbus://HOST:PORT`, as `run --plant` takes it.
    pub url: String,
    /// The first line it printed.
    pub banner: String,
}

impl Drop for Plant {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a plant with `extra` arguments after `--listen`, and waits until
/// it serves (its banner line).
pub fn plant(extra: &[&str]) -> Plant {
    use std::io::BufRead;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = Command::new(twinshield())
        .args(["plant", "quadtank", "--listen", &listen])
        .args(extra)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start the plant: {e}"));
    let mut banner = String::new();
    if let Some(err) = child.stderr.take() {
        let _ = std::io::BufReader::new(err).read_line(&mut banner);
    }
    Plant {
        child,
        url: format!("modbus://{listen}"),
        listen,
        banner,
    }
}

/// Whether `needle` occurs anywhere in `hay` (a byte-level `strings | grep`).
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The arguments of `run` for `bundle` against `plant` for `seconds`, with
/// the trust key and state directory of a [`Setup`].
pub fn run_args<'a>(bundle: &'a str, plant: &'a str, seconds: &'a str) -> [&'a str; 10] {
    [
        "run",
        bundle,
        "--trust",
        "vendor.pub",
        "--plant",
        plant,
        "--state",
        "state",
        "--seconds",
        seconds,
    ]
}

/// The model the sealing tests seal.
pub const MODEL: &str = "models/quadtank.twin";
/// The secret sealed with it.
pub const SECRET: &str = "hunter2-backend-credential-6f1c";

/// A publisher (`vendor`), a device identity (`state`, `device.fp`) and a
/// bundle sealed for it (`q.bundle`, release 5, with a secret), in a
/// scratch directory: what the sealing and shield tests start from.
pub struct Setup {
    /// The scratch directory everything lives in.
    pub dir: Scratch,
}

impl Setup {
    /// Creates the identity, the publisher key and `q.bundle` in a new
    /// scratch directory named after `name`.
    pub fn new(name: &str) -> Self {
        let dir = Scratch::new(name);
        let s = Setup { dir };
        s.ok(&["fingerprint", "--state", "state", "--out", "device.fp"]);
        s.ok(&["keys", "new", "--out", "vendor"]);
        fs::write(s.path("secret.txt"), SECRET).unwrap();
        s.seal("q.bundle", "vendor.key", "device.fp", 5);
        s
    }

    /// A path inside the scratch directory.
    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// Runs the binary under test in the scratch directory.
    pub fn run(&self, args: &[&str]) -> Run {
        run_in(self.dir.path(), args)
    }

    /// Runs it and asserts success.
    pub fn ok(&self, args: &[&str]) -> Run {
        let r = self.run(args);
        assert_eq!(r.code, Some(0), "{args:?}: {r:?}");
        r
    }

    /// Seals the model into `out` with `key` for the device `fp`.
    pub fn seal(&self, out: &str, key: &str, fp: &str, release: u64) {
        self.seal_with(out, key, fp, release, &[]);
    }

    /// Seals as [`Setup::seal`] does, with `extra` arguments.
    pub fn seal_with(&self, out: &str, key: &str, fp: &str, release: u64, extra: &[&str]) {
        let model = root().join(MODEL);
        let release = release.to_string();
        let mut args = vec![
            "seal",
            model.to_str().unwrap(),
            "--device",
            fp,
            "--sign",
            key,
            "--out",
            out,
            "--release",
            &release,
            "--secret",
            "historian=@secret.txt",
        ];
        args.extend_from_slice(extra);
        self.ok(&args);
    }

    /// `run` of `bundle` against a plant that is not there, for 1 s: it
    /// fails at the plant (exit 0, with data-quality events) only once the
    /// bundle opened; every bundle problem exits 1 before that.
    pub fn run_bundle(&self, bundle: &str) -> Run {
        self.run(&run_args(bundle, "modbus://127.0.0.1:9", "0.5"))
    }
}

/// What a running twin did after root wrote into its memory.
pub struct AfterWrite {
    /// Its exit status code.
    pub code: Option<i32>,
    /// Its standard error.
    pub stderr: String,
    /// Seconds from the write to its exit.
    pub seconds: f64,
}

/// Runs the demo (in `dir`) under the hardened binary, and once it runs
/// writes `bytes` through `/proc/PID/mem` at the address `at(pid)` gives
/// (the kernel lets root write read-only mappings), then waits at most
/// 10 s for it to stop.
pub fn demo_after_memory_write(
    dir: &Path,
    at: impl FnOnce(u32) -> u64,
    bytes: &[u8],
) -> AfterWrite {
    use std::io::{Read, Seek, SeekFrom, Write};
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let mut child = without_core_dumps(twinshield())
        .current_dir(dir)
        .args([
            "demo",
            "--seconds",
            "120",
            "--speed",
            "1",
            "--attack",
            "none",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start the demo: {e}"));
    // `sh -c ... exec`: the child's pid is the twin's once exec has run.
    std::thread::sleep(Duration::from_secs(3));
    let running = child.try_wait().ok().flatten().is_none();
    assert!(running, "the demo runs");
    let pid = child.id();
    let mut mem = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/proc/{pid}/mem"))
        .unwrap_or_else(|e| panic!("cannot open the twin's memory: {e}"));
    mem.seek(SeekFrom::Start(at(pid)))
        .unwrap_or_else(|e| panic!("seek: {e}"));
    mem.write_all(bytes)
        .unwrap_or_else(|e| panic!("write: {e}"));
    let written = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap_or_else(|e| panic!("wait: {e}")) {
            break s;
        }
        assert!(written.elapsed() < Duration::from_secs(10), "still running");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    AfterWrite {
        code: status.code(),
        stderr,
        seconds: written.elapsed().as_secs_f64(),
    }
}

/// Every readable mapping of process `pid` (only the writable ones when
/// `writable_only`), as (start address, bytes), read through
/// `/proc/PID/mem` as root reads a process it cannot attach to (no ptrace:
/// the guardian holds the tracer slot); `None` when the memory file cannot
/// be opened. The kernel's own pages (`[vvar]`, `[vdso]`, `[vsyscall]`) and
/// mappings that refuse the read are skipped.
pub fn memory_regions(pid: u32, writable_only: bool) -> Option<Vec<(u64, Vec<u8>)>> {
    use std::os::unix::fs::FileExt;
    let maps = fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    let mem = fs::File::open(format!("/proc/{pid}/mem")).ok()?;
    let wanted = if writable_only { "rw" } else { "r" };
    Some(
        maps.lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                let kernel = f.get(5).is_some_and(|n| n.starts_with("[v"));
                if !f.get(1)?.starts_with(wanted) || kernel {
                    return None;
                }
                let (start, end) = f[0].split_once('-')?;
                let start = u64::from_str_radix(start, 16).ok()?;
                let end = u64::from_str_radix(end, 16).ok()?;
                let mut bytes = vec![0u8; usize::try_from(end - start).ok()?];
                mem.read_exact_at(&mut bytes, start).ok()?;
                Some((start, bytes))
            })
            .collect(),
    )
}

/// Every readable mapping of process `pid`, one after another (see
/// [`memory_regions`]).
pub fn process_memory(pid: u32) -> Option<Vec<u8>> {
    Some(
        memory_regions(pid, false)?
            .into_iter()
            .flat_map(|(_, bytes)| bytes)
            .collect(),
    )
}

/// Every function the vendor's symbol file (`twinshield-hardened.sym`
/// beside [`twinshield`]) names, with the file offset of its entry in
/// `binary` (the stripped, hardened file): what an attacker holding the
/// symbols patches. Aliases (one address, several names) appear once, under
/// their first name.
pub fn vendor_functions(binary: &[u8]) -> Vec<(String, usize)> {
    let out = Command::new("nm")
        .arg(twinshield().with_extension("sym"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run nm (Debian package binutils): {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    let segments = twinshield_shield::elf::load_segments(binary)
        .unwrap_or_else(|e| panic!("not an ELF file: {e}"));
    let mut seen = std::collections::HashSet::new();
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (addr, kind, name) = (f.next()?, f.next()?, f.next()?);
            if !matches!(kind, "t" | "T") {
                return None;
            }
            let vaddr = u64::from_str_radix(addr, 16).ok()?;
            let s = segments
                .iter()
                .find(|s| s.executable && s.vaddr <= vaddr && vaddr < s.vaddr + s.filesz)?;
            let offset = (vaddr - s.vaddr + s.offset) as usize;
            seen.insert(offset).then(|| (name.to_owned(), offset))
        })
        .collect()
}

/// A shared object at `out`, compiled from the C `source` with the
/// system's compiler (`cc`, Debian package gcc): the implants of the hook
/// tests.
pub fn shared_object(source: &str, out: &Path) -> PathBuf {
    let built = Command::new("cc")
        .args(["-shared", "-fPIC", "-x", "c", "-o"])
        .arg(out)
        .arg("-")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut cc| {
            use std::io::Write;
            cc.stdin.take().map(|mut i| i.write_all(source.as_bytes()));
            cc.wait_with_output()
        })
        .unwrap_or_else(|e| panic!("a C compiler (cc) is needed: {e}"));
    assert!(
        built.status.success(),
        "cc failed (root is needed to write into system directories): {built:?}"
    );
    out.to_path_buf()
}

/// The address at which the running process `pid` maps file offset `at`
/// of its executable, from `/proc/PID/maps`.
pub fn mapped_address(pid: u32, at: u64) -> u64 {
    let exe = fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    let maps = fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    maps.lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (range, offset, path) = (f.first()?, f.get(2)?, f.get(5)?);
            let (start, end) = range.split_once('-')?;
            let (start, end) = (
                u64::from_str_radix(start, 16).ok()?,
                u64::from_str_radix(end, 16).ok()?,
            );
            let offset = u64::from_str_radix(offset, 16).ok()?;
            (Path::new(path) == exe && offset <= at && at < offset + (end - start))
                .then_some(start + (at - offset))
        })
        .unwrap_or_else(|| panic!("file offset {at:#x} is not mapped"))
}

/// The address at which process `pid` maps its executable's virtual
/// address 0 (the load bias of a position-independent executable: where
/// file offset 0 is mapped).
pub fn load_bias(pid: u32) -> u64 {
    mapped_address(pid, 0)
}
