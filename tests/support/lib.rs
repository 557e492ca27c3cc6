//! Shared helpers for the end-to-end tests: find (and if needed build) the
//! real `twinshield` binary once, run it, and capture what it prints.
#![forbid(unsafe_code)]
// Test support: a failure here is the calling test failing, so panicking
// with a clear message is the right response.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The workspace root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Path of the `twinshield` binary under test: `$TWINSHIELD_BIN` when set
/// (CI points it at the hardened release build), otherwise the binary of the
/// current profile, built once per test process.
pub fn twinshield() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("TWINSHIELD_BIN") {
            return PathBuf::from(p);
        }
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
