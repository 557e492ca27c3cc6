//! Issue 17, item 6: debuggers kept out, not sampled. The guardian holds
//! the twin's tracer slot for its whole life, so another tracer's attach
//! fails instead of succeeding between two probes. Attacked through the
//! real, stripped, hardened binary: raw attaches at random moments, gdb
//! after `/proc` status files were bind-mounted with `TracerPid: 0`, the
//! guardian killed.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::fs;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use twinshield_e2e::{Scratch, twinshield, without_core_dumps};

/// A demo that runs about `wall_seconds`, with its stdout captured.
fn demo(dir: &Scratch, wall_seconds: u32) -> Child {
    let plant_seconds = (wall_seconds * 10).to_string();
    let child = without_core_dumps(twinshield())
        .current_dir(dir.path())
        .args(["demo", "--seconds", &plant_seconds, "--speed", "10"])
        .args(["--attack", "none", "--insecure-http"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // `sh -c ... exec`: once exec ran and the shield started, the pid is
    // the twin's and its guardian is its child.
    std::thread::sleep(Duration::from_secs(2));
    child
}

fn field(status: &str, name: &str) -> Option<String> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .map(|v| v.trim().to_owned())
}

fn threads(pid: u32) -> Vec<u32> {
    fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().parse().unwrap())
        .collect()
}

fn tracer_of(path: &str) -> Option<u32> {
    field(&fs::read_to_string(path).ok()?, "TracerPid:")?
        .parse()
        .ok()
}

/// The twin's guardian: its child process, holding the twin's threads.
fn guardian(pid: u32) -> u32 {
    let children = fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap();
    let g: u32 = children.split_whitespace().next().unwrap().parse().unwrap();
    assert_eq!(
        tracer_of(&format!("/proc/{pid}/status")),
        Some(g),
        "the twin's tracer is its guardian"
    );
    g
}

/// Waits for the demo to end; its exit code and summary line.
fn finish(mut child: Child) -> (Option<i32>, String, String) {
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "still running");
        std::thread::sleep(Duration::from_millis(50));
    };
    let (mut out, mut err) = (String::new(), String::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let summary = out.lines().last().unwrap_or_default().to_owned();
    (status.code(), summary, err)
}

/// Waits for the demo to end: exit 0, and no finding in its summary but
/// the root notice.
fn assert_clean_end(child: Child) {
    let (code, summary, err) = finish(child);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        findings(&summary)
            .iter()
            .all(|f| f.starts_with("environment: running as root")),
        "{summary}"
    );
}

/// The summary's shield findings.
fn findings(summary: &str) -> Vec<String> {
    let v: serde_json::Value =
        serde_json::from_str(summary).unwrap_or_else(|e| panic!("{e}: {summary}"));
    v["shield"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_owned())
        .collect()
}

/// Every thread of the twin (those it had at start and those it made
/// since) is traced by the guardian, and nothing traces the guardian.
#[test]
fn the_guardian_holds_every_thread_and_is_itself_untraced() {
    let dir = Scratch::new("slot-held");
    let child = demo(&dir, 4);
    let pid = child.id();
    let g = guardian(pid);
    let tids = threads(pid);
    assert!(tids.len() > 2, "the demo runs several threads: {tids:?}");
    for tid in tids {
        assert_eq!(
            tracer_of(&format!("/proc/{pid}/task/{tid}/status")),
            Some(g)
        );
    }
    assert_eq!(tracer_of(&format!("/proc/{g}/status")), Some(0));
    assert_clean_end(child);
}

/// A raw `PTRACE_ATTACH` or `PTRACE_SEIZE` (what a debugger's first step
/// is, and what a quick attach-read-detach between two probes needs) on a
/// random thread at a random moment, 40 times: the kernel refuses every one
/// (the slot is held), and the twin runs on to a clean summary.
#[test]
fn forty_raw_attaches_at_random_moments_are_all_refused() {
    let dir = Scratch::new("slot-raw");
    let child = demo(&dir, 12);
    let pid = child.id();
    let script = r#"
import ctypes, errno, os, random, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
libc.ptrace.restype = ctypes.c_long
pid, rng = int(sys.argv[1]), random.Random(int(sys.argv[2]))
for i in range(40):
    time.sleep(rng.uniform(0.0, 0.2))
    tid = int(rng.choice(os.listdir(f"/proc/{pid}/task")))
    request = 16 if i % 2 == 0 else 0x4206  # PTRACE_ATTACH, PTRACE_SEIZE
    r = libc.ptrace(request, tid, None, None)
    e = ctypes.get_errno()
    if r == 0:
        if request == 16:
            os.waitpid(tid, 0x40000000)
        word = libc.ptrace(2, tid, ctypes.c_void_p(0x400000), None)  # PEEKDATA
        libc.ptrace(17, tid, None, None)  # DETACH
        print(f"attached {tid} {word:#x}")
    else:
        print(f"refused {tid} {errno.errorcode.get(e, e)}")
"#;
    let out = Command::new("python3")
        .args(["-c", script, &pid.to_string(), "17"])
        .output()
        .expect("python3 is needed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 40, "{text}");
    let refused = lines.iter().filter(|l| l.ends_with(" EPERM")).count();
    assert_clean_end(child);
    assert_eq!(refused, 40, "attaches not refused:\n{text}");
}

/// gdb after every `/proc/PID/status` of the twin was bind-mounted (in a
/// private mount namespace, as root can) with an edited copy saying
/// `TracerPid: 0`: what hid gdb from a sampling probe changes nothing now,
/// since gdb cannot attach at all.
#[test]
fn gdb_after_bind_mounting_edited_status_files_cannot_attach() {
    let dir = Scratch::new("slot-bind");
    let child = demo(&dir, 8);
    let pid = child.id();
    let mut mounts = String::new();
    let mut paths = vec![format!("/proc/{pid}/status")];
    paths.extend(
        threads(pid)
            .into_iter()
            .map(|t| format!("/proc/{pid}/task/{t}/status")),
    );
    for (i, path) in paths.iter().enumerate() {
        let edited = dir.path().join(format!("status.{i}"));
        let text = fs::read_to_string(path).unwrap();
        let text: String = text
            .lines()
            .map(|l| {
                if l.starts_with("TracerPid:") {
                    "TracerPid:\t0\n".to_owned()
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        fs::write(&edited, text).unwrap();
        mounts.push_str(&format!("mount --bind '{}' '{path}' && ", edited.display()));
    }
    let gdb = without_core_dumps("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(format!(
            "{mounts} grep TracerPid /proc/{pid}/status && exec gdb -nx -batch -p {pid} -ex 'info threads'"
        ))
        .output()
        .expect("unshare (util-linux) and gdb are needed");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&gdb.stdout),
        String::from_utf8_lossy(&gdb.stderr)
    );
    assert!(
        all.contains("TracerPid:\t0"),
        "the edited view is in place: {all}"
    );
    assert!(all.contains("ptrace: Operation not permitted"), "{all}");
    assert_clean_end(child);
}

/// Killing the guardian (to free the slot) kills the twin with it: the
/// kernel's PTRACE_O_EXITKILL, not a check that could be patched.
#[test]
fn killing_the_guardian_kills_the_twin() {
    let dir = Scratch::new("slot-kill");
    let mut child = demo(&dir, 30);
    let g = guardian(child.id());
    assert!(
        Command::new("kill")
            .args(["-KILL", &g.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let killed = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(2),
            "the twin outlived its guardian"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "{status:?}");
}
