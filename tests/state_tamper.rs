//! Heap writes into the running twin's parameters and state, by root
//! through `/proc/PID/mem`, against the real, stripped, hardened binary.
//!
//! **Where the addresses come from.** Nothing in the release binary helps
//! the test: it attacks as an expert with root and the vendor's symbol file
//! (`twinshield-hardened.sym`, what `strip` keeps aside) would. The symbol
//! file names the static that holds the process's encoding keys
//! (`twinshield_entangle::KEYS`); the test reads its 32 bytes from the
//! running process, tells the keys from the `OnceLock`'s state word, and
//! scans every writable mapping for the 16-byte cells whose second word is
//! the keyed tag of the first. Those cells are the estimator's variances,
//! ranges and step, the detectors' settings, sums, windows and alarm
//! states, and the twin's warm-up and baseline (and any stale copies in
//! freed memory, whose writes change nothing). The long runs of cells (at
//! least 100 in a row) are the bias tests' 120 s windows; half the writes
//! go to them, half to everything else, so the parameters are not drowned
//! by the windows' 4,800 samples.
//!
//! **How long.** `heap_writes_into_the_twins_state_never_silence_the_alarm`
//! makes its 200 writes in batches of at most 8 per demo run (200 plant
//! seconds at 75×, the writes 5 s into a bias attack); a lockdown ends a
//! batch early, so it takes about 50 runs: about 2½ minutes with the debug
//! build. A batch is judged whole: the run must end in a tamper lockdown
//! (within a second of the first write outside the windows), or with the
//! attack's alarm raised. The encoding's own tests (`crates/entangle`)
//! judge single writes.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::print_stderr
)]

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use twinshield_e2e::{Scratch, load_bias, memory_regions, twinshield, without_core_dumps};

/// Plant time runs this much faster than wall time in the attacked runs.
const SPEED: f64 = 75.0;
/// The bias attack starts here (plant seconds), after the 120 s warm-up.
const ATTACK_AT: f64 = 125.0;
/// The writes go in here, after the attack started and (usually) before
/// its alarm is raised.
const WRITE_AT: f64 = 130.0;
/// A run's length, plant seconds.
const SECONDS: f64 = 200.0;

/// The two tests scan a whole process's memory on a 2-core machine: one
/// at a time, so neither's scan outlasts its demo's run.
static ALONE: Mutex<()> = Mutex::new(());

/// A running demo, its standard error collected line by line.
struct Demo {
    child: Child,
    stderr: Arc<Mutex<String>>,
    ready: Instant,
}

impl Demo {
    fn start(dir: &Path, args: &[&str]) -> Demo {
        let mut child = without_core_dumps(twinshield())
            .current_dir(dir)
            .arg("demo")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the demo starts");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let err = child.stderr.take().unwrap();
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if line.starts_with("twinshield demo: plant on") {
                    let _ = tx.send(Instant::now());
                }
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let ready = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("the demo never got ready: {}", stderr.lock().unwrap()));
        Demo {
            child,
            stderr,
            ready,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until about `t` plant seconds have passed at `speed`.
    fn wait_plant_time(&self, t: f64, speed: f64) {
        let at = self.ready + Duration::from_secs_f64(t / speed);
        if let Some(d) = at.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
    }

    /// Waits for the exit: (code, stdout, stderr, when).
    fn finish(mut self, limit: Duration) -> (Option<i32>, String, String, Instant) {
        let started = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if started.elapsed() > limit {
                let _ = self.child.kill();
                panic!("the demo still runs: {}", self.stderr.lock().unwrap());
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let exited = Instant::now();
        let mut stdout = String::new();
        if let Some(mut o) = self.child.stdout.take() {
            let _ = std::io::Read::read_to_string(&mut o, &mut stdout);
        }
        // The reader thread ends with the pipe.
        std::thread::sleep(Duration::from_millis(50));
        let stderr = self.stderr.lock().unwrap().clone();
        (status.code(), stdout, stderr, exited)
    }
}

/// Every readable writable page of `pid`: (address, bytes).
fn snapshot(pid: u32) -> Vec<(u64, Vec<u8>)> {
    memory_regions(pid, true).expect("root reads the twin's memory")
}

fn word(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
}

/// The link-time address of the keys' static, from the vendor's symbol file.
fn keys_symbol() -> u64 {
    let symbols = twinshield().with_extension("sym");
    let out = Command::new("nm")
        .arg("--defined-only")
        .arg(&symbols)
        .output()
        .unwrap_or_else(|e| panic!("nm on {}: {e}", symbols.display()));
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("twinshield_entangle") && l.contains("4KEYS"))
        .unwrap_or_else(|| panic!("no KEYS symbol in {}", symbols.display()));
    u64::from_str_radix(line.split_whitespace().next().unwrap(), 16).unwrap()
}

/// The encoding as the attacker recovers it: (mask, tweak, multiplier).
#[derive(Clone, Copy, Debug)]
struct Keys {
    mask: u64,
    tweak: u64,
    mul: u64,
}

impl Keys {
    fn tag(&self, masked: u64) -> u64 {
        (masked ^ self.tweak).wrapping_mul(self.mul)
    }

    fn unmask(&self, masked: u64) -> f64 {
        f64::from_bits(masked ^ self.mask)
    }
}

/// One cell found in memory: its address, masked word and tag.
#[derive(Clone, Copy, Debug)]
struct Cell {
    at: u64,
    masked: u64,
}

fn cells_under(keys: &Keys, memory: &[(u64, Vec<u8>)], limit: usize) -> Vec<Cell> {
    let mut found = Vec::new();
    for (base, bytes) in memory {
        for off in (0..bytes.len().saturating_sub(15)).step_by(16) {
            let masked = word(bytes, off);
            if masked != 0 && keys.tag(masked) == word(bytes, off + 8) {
                found.push(Cell {
                    at: base + off as u64,
                    masked,
                });
                if found.len() >= limit {
                    return found;
                }
            }
        }
    }
    found
}

/// Reads the keys out of `pid` and finds every sealed cell. `order` is
/// the keys' order in the static (tweak, multiplier), once known: the
/// compiler's layout is the same in every run of one binary.
fn recover(pid: u32, order: &mut Option<(usize, usize)>) -> (Keys, Vec<Cell>) {
    let at = load_bias(pid) + keys_symbol();
    let mem = File::open(format!("/proc/{pid}/mem")).unwrap();
    let mut raw = [0u8; 32];
    mem.read_exact_at(&mut raw, at).unwrap();
    // Three random words and the `OnceLock`'s small state word, in an
    // order the compiler chose.
    let words: Vec<u64> = (0..4)
        .map(|i| word(&raw, 8 * i))
        .filter(|w| *w > u64::from(u32::MAX))
        .collect();
    assert_eq!(words.len(), 3, "keys not initialised? {raw:02x?}");
    let memory = snapshot(pid);
    let mut best: Option<(Keys, usize, (usize, usize))> = None;
    let orders = [(0, 1), (1, 0), (0, 2), (2, 0), (1, 2), (2, 1)];
    for (t, m) in order.map_or(orders.to_vec(), |o| vec![o]) {
        if words[m] & 1 == 0 {
            continue;
        }
        let keys = Keys {
            mask: words[3 - t - m],
            tweak: words[t],
            mul: words[m],
        };
        let n = cells_under(&keys, &memory, 50).len();
        if best.is_none_or(|(_, b, _)| n > b) {
            best = Some((keys, n, (t, m)));
        }
    }
    let (keys, n, found) = best.unwrap();
    assert!(n >= 50, "no sealed cells found under any key order");
    *order = Some(found);
    (keys, cells_under(&keys, &memory, usize::MAX))
}

/// Splits cells into the bias windows (runs of at least 100 adjacent
/// cells) and everything else.
fn windows_and_rest(cells: &[Cell]) -> (Vec<Cell>, Vec<Cell>) {
    let mut runs: Vec<Vec<Cell>> = Vec::new();
    for c in cells {
        match runs.last_mut() {
            Some(run) if run.last().is_some_and(|l| l.at + 16 == c.at) => run.push(*c),
            _ => runs.push(vec![*c]),
        }
    }
    let (windows, rest): (Vec<_>, Vec<_>) = runs.into_iter().partition(|r| r.len() >= 100);
    (windows.concat(), rest.concat())
}

/// A small deterministic generator (xorshift64*), seeded per test run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// One 8-byte write: into the masked word (the value the attacker wants,
/// masked, or random bits) or into the tag (random bits).
fn a_write(rng: &mut Rng, keys: &Keys, cell: &Cell) -> (u64, u64) {
    let wanted = [0.0, 1e9, -1e9, f64::NAN, 1e-9];
    match rng.below(4) {
        0 | 1 => {
            let v = wanted[rng.below(wanted.len())];
            (cell.at, v.to_bits() ^ keys.mask)
        }
        2 => (cell.at, rng.next()),
        _ => (cell.at + 8, rng.next()),
    }
}

/// The alarms of a demo's JSON summary.
fn alarms(stdout: &str) -> usize {
    let v: serde_json::Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"));
    v["alarms"].as_array().map_or(0, Vec::len)
}

/// Long (about 2 minutes): 200 writes in 25 attacked runs.
#[test]
fn heap_writes_into_the_twins_state_never_silence_the_alarm() {
    const WRITES: usize = 200;
    const BATCH: usize = 8;
    let dir = Scratch::new("state-tamper");
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("seed {seed:#x}");
    let mut rng = Rng(seed);
    let (speed, at, seconds) = (
        SPEED.to_string(),
        ATTACK_AT.to_string(),
        SECONDS.to_string(),
    );
    let args = [
        "--seconds",
        &seconds,
        "--speed",
        &speed,
        "--attack",
        "bias",
        "--at",
        &at,
    ];
    let (mut written, mut locked, mut harmless, mut latencies) = (0, 0, 0, Vec::new());
    let mut order = None;
    let mut late = 0;
    let _alone = ALONE.lock();
    while written < WRITES {
        let started = Instant::now();
        let demo = Demo::start(dir.path(), &args);
        let ready = started.elapsed().as_secs_f64();
        demo.wait_plant_time(WRITE_AT, SPEED);
        let scan = Instant::now();
        let (keys, cells) = recover(demo.pid(), &mut order);
        let scan = scan.elapsed().as_secs_f64();
        let (windows, rest) = windows_and_rest(&cells);
        assert!(!rest.is_empty() && !windows.is_empty(), "{}", cells.len());
        if written == 0 {
            // What the attacker found: the variances and the CUSUM
            // threshold are among the cells.
            let values: Vec<f64> = rest.iter().map(|c| keys.unmask(c.masked)).collect();
            eprintln!(
                "{} cells: {} in windows, {} others",
                cells.len(),
                windows.len(),
                rest.len()
            );
            for wanted in [0.05 * 0.05, 0.01 * 0.01, 14.0] {
                assert!(values.contains(&wanted), "no cell holds {wanted}");
            }
        }
        let Ok(mem) = OpenOptions::new()
            .write(true)
            .open(format!("/proc/{}/mem", demo.pid()))
        else {
            // The scan outlasted the run (a loaded machine): run again.
            let (code, _, stderr, _) = demo.finish(Duration::from_secs(5));
            late += 1;
            assert!(
                late <= 3,
                "the demo ended before the writes ({code:?}): {stderr}"
            );
            eprintln!("the demo ended before the writes ({code:?}); again");
            continue;
        };
        let mut first_param_write = None;
        for k in 0..BATCH.min(WRITES - written) {
            let from_window = k % 2 == 0;
            let pool = if from_window { &windows } else { &rest };
            let cell = pool[rng.below(pool.len())];
            let (addr, value) = a_write(&mut rng, &keys, &cell);
            // The twin may lock down in the middle of a batch.
            if mem.write_all_at(&value.to_le_bytes(), addr).is_err() {
                break;
            }
            written += 1;
            if !from_window {
                first_param_write.get_or_insert_with(Instant::now);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let (code, stdout, stderr, exited) = demo.finish(Duration::from_secs(60));
        eprintln!(
            "run {}: ready after {ready:.1} s, scan {scan:.2} s, exit {code:?} after {:.1} s",
            locked + harmless + 1,
            started.elapsed().as_secs_f64()
        );
        match code {
            Some(3) => {
                assert!(
                    stderr.contains("error: lockdown: tamper: the twin: "),
                    "{stderr}"
                );
                locked += 1;
                if let Some(w) = first_param_write {
                    latencies.push(exited.duration_since(w).as_secs_f64());
                }
            }
            Some(0) => {
                assert!(
                    alarms(&stdout) > 0,
                    "writes silenced the alarm: {stdout}\n{stderr}"
                );
                harmless += 1;
            }
            _ => panic!("unexpected exit {code:?}: {stderr}"),
        }
    }
    latencies.sort_by(f64::total_cmp);
    let worst = latencies.last().copied().unwrap_or(0.0);
    eprintln!(
        "{written} writes in {} runs: {locked} ended in a tamper lockdown, {harmless} with the \
         alarm raised and no finding (writes that changed nothing the twin decides); lockdown \
         after the first write into the parameters: median {:.3} s, worst {worst:.3} s",
        locked + harmless,
        latencies.get(latencies.len() / 2).copied().unwrap_or(0.0)
    );
    assert!(worst < 1.0, "a tamper finding {worst:.2} s after the write");
}

/// The model's variances (σ² of its measurement and process noise, the
/// numbers the estimator uses) are nowhere in the running twin's writable
/// memory as plain `f64`s; the standard deviations themselves are (in the
/// parsed model, which the estimator no longer reads): the scan works.
#[test]
fn the_estimators_variances_are_not_in_the_running_twins_memory() {
    let _alone = ALONE.lock();
    let dir = Scratch::new("state-plain");
    let demo = Demo::start(
        dir.path(),
        &["--seconds", "60", "--speed", "10", "--attack", "none"],
    );
    demo.wait_plant_time(30.0, 10.0);
    let memory = snapshot(demo.pid());
    let count = |v: f64| {
        let bits = v.to_bits();
        memory
            .iter()
            .map(|(_, b)| (0..b.len() / 8).filter(|i| word(b, 8 * i) == bits).count())
            .sum::<usize>()
    };
    let source = fs::read_to_string(twinshield_e2e::root().join("models/quadtank.twin")).unwrap();
    let model = twinshield_model::Model::parse("quadtank.twin", &source).unwrap();
    // Numbers written in the model itself stay in the parsed model (which
    // no longer drives the estimator): a variance equal to one of them
    // (0.01² = 1e-4, the chi-square false-alarm rate) cannot be told from
    // it by a scan, and is reported, not asserted.
    let literals: Vec<u64> = source
        .split(|c: char| !(c.is_ascii_digit() || ".e-+".contains(c)))
        .filter_map(|w| w.parse::<f64>().ok())
        .map(f64::to_bits)
        .collect();
    let est = &model.estimator;
    let sigma = est.measurement_noise[0];
    let found_sigma = count(sigma);
    let variances: Vec<(f64, usize)> = est
        .measurement_noise
        .iter()
        .chain(&est.process_noise)
        .map(|s| (s * s, count(s * s)))
        .collect();
    let (code, _, stderr, _) = demo.finish(Duration::from_secs(60));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        found_sigma > 0,
        "the scan does not see the model's σ = {sigma}"
    );
    let mut checked = 0;
    for (v, n) in variances {
        if literals.contains(&v.to_bits()) {
            eprintln!("{v}: {n} times, the same number as a literal of the model");
            continue;
        }
        assert_eq!(n, 0, "the variance {v} is in memory {n} times");
        checked += 1;
    }
    eprintln!("σ = {sigma} found {found_sigma} times; {checked} variances checked, none found");
    assert!(checked >= 4, "only {checked} variances could be checked");
}
