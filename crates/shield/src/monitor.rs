//! The running shield: start-up checks, a monitor thread, checks the rest
//! of the program calls at its own places (the sync loop, the bundle path,
//! API handlers), and the response to each finding.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use twinshield_shield_macros::diversify;

use crate::finding::{Finding, FindingClass};
use crate::guard::{self, SelfMemory, Table, TableError};
use crate::guardian::{self, Guardian};
use crate::loader;
use crate::policy::{Action, Policy, SealedPolicy};
use crate::probe;
use crate::raw::{SelfCheck, ptrace_self_check};
use crate::sys;
use crate::watchdog::Heartbeat;

/// The exit status of a lockdown: distinct from errors (1) and usage (2).
pub const LOCKDOWN_EXIT_CODE: u8 = 3;

/// How often the monitor thread looks for a tracer (and checks a guard
/// region): an attached debugger is seen within this, plus a scan.
pub const MONITOR_PERIOD: Duration = Duration::from_millis(200);

/// How long the code between two checkpoints of the sync loop may take
/// before the stall counts as a timing anomaly.
pub const STALL_LIMIT: Duration = Duration::from_secs(2);

/// How often the sync loop's ticks check a guard region.
const TICK_PERIOD: Duration = Duration::from_millis(100);

/// Receives every finding with the action the policy chose. It reports
/// (audit log, security status, a message). It need not stop the process
/// on [`Action::Lockdown`]: the site that found it wipes the registered
/// secrets and exits with [`LOCKDOWN_EXIT_CODE`] itself, whatever the
/// responder does.
pub type Responder = Box<dyn Fn(&Finding, Action) + Send + Sync>;

/// How the shield starts.
pub struct Options {
    /// Run a build that was never hardened, without integrity guards
    /// (development only).
    pub unprotected: bool,
    /// Hold the responses to hook, timing and environment findings until
    /// [`Shield::set_policy`] (the bundle's policy); tamper and debugger
    /// findings are answered at once with the release default, so no key
    /// is ever used under a debugger or in modified code.
    pub defer_to_bundle_policy: bool,
    /// Guard with this table instead of the one `harden` wrote (benchmarks
    /// and tests of unhardened processes: see
    /// [`guard::running_code_table`]).
    pub guard_table: Option<Table>,
    /// Fork a guardian that holds this process's tracer slot (see
    /// [`guardian`]). Only for a process whose shield starts before any
    /// other thread exists (`main`); test processes leave it off.
    pub hold_tracer_slot: bool,
}

/// Why the shield refused to start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    /// A build that was never hardened, without `--unprotected`.
    #[error(
        "this twinshield binary was never hardened: run `twinshield harden BINARY`, or pass \
         --unprotected for development"
    )]
    NeverHardened,
    /// The guard table is not signed by this build's release key: the
    /// binary was sealed again by someone else. Refused outright, not left
    /// to the responder, so silencing the responder does not silence this.
    #[error("this twinshield binary was not sealed by its vendor: {0}")]
    Unsigned(TableError),
}

struct GuardState {
    memory: SelfMemory,
    table: Table,
    base: usize,
    cursor: usize,
    /// Whether `table` is the binary's own (signed) one, not the options'.
    embedded: bool,
    /// The hash of the relocated RELRO range (GOT, `.dynamic`, init and
    /// fini arrays, `.data.rel.ro`) as the loader left it.
    relro: Option<u64>,
}

/// The shield of a running twinshield.
pub struct Shield {
    policy: SealedPolicy,
    deferred: Mutex<Option<Vec<Finding>>>,
    seen: Mutex<HashSet<(FindingClass, String)>>,
    findings: Mutex<Vec<(Finding, Action)>>,
    degraded: AtomicBool,
    responder: Responder,
    guard: Option<Mutex<GuardState>>,
    wipers: Mutex<Vec<Box<dyn FnMut() + Send>>>,
    origin: Instant,
    last_tick_check: AtomicU64,
    ticks: AtomicU64,
    checkpoints: AtomicU64,
    startup: Duration,
    /// The code files the loader mapped at start-up, by device and inode.
    expected_code: probe::ExpectedCode,
    /// The process holding every thread's tracer slot, if one does.
    guardian: Option<Guardian>,
    /// The watchdog's challenges and the checkers' answers.
    heartbeat: Heartbeat,
}

#[diversify]
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[diversify]
impl Shield {
    /// Runs the start-up checks (tracer, ptrace self-check, hooks,
    /// instrumentation, environment, dump protection, every guard region),
    /// forks the guardian when asked, answers what they find, and starts
    /// the monitor and watchdog threads (failing to start either is a
    /// tamper finding: without both, neither is watched).
    ///
    /// # Errors
    /// [`StartError::NeverHardened`] for an unhardened build without
    /// `--unprotected`.
    pub fn start(options: &Options, responder: Responder) -> Result<Arc<Self>, StartError> {
        let started = Instant::now();
        // Opened first: after the process becomes non-dumpable some kernels
        // refuse the open.
        let memory = SelfMemory::open();
        let mut found = Self::startup_findings();
        let guardian = Self::guardian(options, &mut found);
        // Only now: a non-dumpable process cannot be seized by an
        // unprivileged guardian.
        found.extend(probe::dump_proof());
        let (expected_code, foreign) = probe::ExpectedCode::at_start();
        found.extend(foreign);
        let guard = Self::guard_state(options, memory, &mut found)?;
        let heartbeat = Heartbeat::new(guard.as_ref().map(|g| g.table.clone()));
        let mut shield = Self {
            policy: SealedPolicy::new(Policy::release_default()),
            deferred: Mutex::new(options.defer_to_bundle_policy.then(Vec::new)),
            seen: Mutex::new(HashSet::new()),
            findings: Mutex::new(Vec::new()),
            degraded: AtomicBool::new(false),
            responder,
            guard: guard.map(Mutex::new),
            wipers: Mutex::new(Vec::new()),
            origin: started,
            last_tick_check: AtomicU64::new(0),
            ticks: AtomicU64::new(0),
            checkpoints: AtomicU64::new(0),
            startup: Duration::ZERO,
            expected_code,
            guardian,
            heartbeat,
        };
        // Environment and hook findings first, so a lockdown names the
        // most telling one; then the full guard check.
        for f in found {
            shield.respond(f);
        }
        if let Some(f) = shield.verify_all() {
            shield.respond(f);
        }
        shield.startup = started.elapsed();
        let shield = Arc::new(shield);
        let monitor = Arc::clone(&shield);
        let watchdog = Arc::clone(&shield);
        for (name, spawned) in [
            (
                "monitor",
                std::thread::Builder::new()
                    .name("shield".into())
                    .spawn(move || monitor.monitor()),
            ),
            (
                "watchdog",
                std::thread::Builder::new()
                    .name("shield-watch".into())
                    .spawn(move || watchdog.watch()),
            ),
        ] {
            if let Err(e) = spawned {
                shield.respond(Finding::new(
                    FindingClass::Tamper,
                    format!("cannot start the shield's {name} thread: {e}"),
                ));
            }
        }
        Ok(shield)
    }

    /// The guardian, when the options ask for one; why not, in `found`.
    fn guardian(options: &Options, found: &mut Vec<Finding>) -> Option<Guardian> {
        if !options.hold_tracer_slot {
            return None;
        }
        let traced = found.iter().any(|f| f.class == FindingClass::Debugger);
        guardian::hold_tracer_slot(traced)
            .map_err(|f| found.push(f))
            .ok()
    }

    /// What the start-up probes find: tracer, ptrace self-check, hooks,
    /// emulation, instrumentation in the mappings, root (dump protection
    /// comes after the guardian has seized the process).
    fn startup_findings() -> Vec<Finding> {
        let mut found = Vec::new();
        found.extend(probe::tracer());
        if ptrace_self_check() == SelfCheck::Traced {
            found.push(Finding::new(
                FindingClass::Debugger,
                "the ptrace self-check could not attach: a tracer is attached",
            ));
        }
        found.extend(probe::environment_hooks());
        found.extend(probe::emulation());
        found.extend(probe::maps());
        found.extend(probe::root());
        found
    }

    /// The guards' state over `memory` and the table (the options' or the
    /// one embedded in the binary), or `None` with a finding in `found`
    /// when they cannot run.
    ///
    /// # Errors
    /// [`StartError::NeverHardened`] for an unhardened build without
    /// `--unprotected`.
    fn guard_state(
        options: &Options,
        memory: std::io::Result<SelfMemory>,
        found: &mut Vec<Finding>,
    ) -> Result<Option<GuardState>, StartError> {
        let embedded = match &options.guard_table {
            Some(t) => Ok(t.clone()),
            None => guard::embedded_table(),
        };
        Ok(match embedded {
            Ok(table) => match memory {
                Ok(mut memory) => {
                    let embedded = options.guard_table.is_none();
                    let base = guard::table_address();
                    if embedded {
                        found.extend(loader_data_changed(&table));
                    }
                    let relro = loader::relro_hash(&mut memory, table.key, base, &table.data);
                    Some(GuardState {
                        memory,
                        table,
                        base,
                        cursor: 0,
                        embedded,
                        relro,
                    })
                }
                Err(e) => {
                    found.push(Finding::new(
                        FindingClass::Tamper,
                        format!("cannot read the running code to check it: {e}"),
                    ));
                    None
                }
            },
            Err(TableError::NotHardened) if options.unprotected => {
                found.push(Finding::new(
                    FindingClass::Environment,
                    "unprotected development build: integrity guards are off",
                ));
                None
            }
            Err(TableError::NotHardened) => return Err(StartError::NeverHardened),
            Err(e @ TableError::Unsigned) => return Err(StartError::Unsigned(e)),
            Err(e) => {
                found.push(Finding::new(FindingClass::Tamper, e.to_string()));
                None
            }
        })
    }

    /// Checks every guard region. Inlined at each call site: every site is
    /// its own checker.
    #[inline(always)]
    pub fn verify_all(&self) -> Option<Finding> {
        let mut g = lock(self.guard.as_ref()?);
        let GuardState {
            memory,
            table,
            base,
            embedded,
            ..
        } = &mut *g;
        if *embedded && let Some(f) = table_changed(table) {
            return Some(f);
        }
        (0..table.regions.len()).find_map(|i| guard::check_region(memory, table, *base, i).err())
    }

    /// The table in use against the binary's own, its signature checked
    /// again: a run-time write into either (the heap copy or the mapped
    /// table) is a tamper finding.
    #[inline(always)]
    fn embedded_table_changed(&self) -> Option<Finding> {
        let mut g = self.guard.as_ref()?.try_lock().ok()?;
        if !g.embedded {
            return None;
        }
        if let Some(f) = table_changed(&g.table) {
            return Some(f);
        }
        let GuardState {
            memory,
            table,
            base,
            relro,
            ..
        } = &mut *g;
        let now = loader::relro_hash(memory, table.key, *base, &table.data);
        (now != *relro).then(|| {
            Finding::new(
                FindingClass::Tamper,
                "the GOT, .dynamic or the init arrays changed in memory after relocation",
            )
        })
    }

    /// Checks the next guard region in rotation.
    #[inline(always)]
    fn verify_next(&self) -> Option<Finding> {
        let mut g = self.guard.as_ref()?.try_lock().ok()?;
        let GuardState {
            memory,
            table,
            base,
            cursor,
            ..
        } = &mut *g;
        let n = table.regions.len().max(1);
        *cursor = (*cursor + 1) % n;
        guard::check_region(memory, table, *base, *cursor).err()
    }

    /// Called by the sync loop once per sample: cheap, and every 100 ms
    /// (at most) it checks one guard region.
    #[inline(always)]
    pub fn tick(&self) {
        if !self
            .ticks
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(64)
        {
            return;
        }
        let now = self.origin.elapsed().as_millis() as u64;
        let last = self.last_tick_check.load(Ordering::Relaxed);
        if now.saturating_sub(last) < TICK_PERIOD.as_millis() as u64 {
            return;
        }
        self.last_tick_check.store(now, Ordering::Relaxed);
        if let Some(f) = self.verify_next() {
            self.respond(f);
        }
    }

    /// Called by request handlers: checks one guard region.
    #[inline(always)]
    pub fn check_on_request(&self) {
        if let Some(f) = self.verify_next() {
            self.respond(f);
        }
    }

    /// Starts timing code that never waits (between two checkpoints of the
    /// sync loop); [`Checkpoint::end`] reports a stall past [`STALL_LIMIT`].
    /// Every eighth call is timed: a stepping debugger meets one soon, and
    /// the loop does not pay two clock reads per sample.
    #[must_use]
    pub fn checkpoint(&self) -> Checkpoint<'_> {
        let timed = self
            .checkpoints
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(8);
        Checkpoint {
            shield: self,
            at: timed.then(Instant::now),
        }
    }

    /// Applies `policy` (the bundle's) from now on, and answers the
    /// findings held for it.
    pub fn set_policy(&self, policy: Policy) {
        self.policy.set(policy);
        let held = lock(&self.deferred).take();
        for f in held.into_iter().flatten() {
            self.respond(f);
        }
    }

    /// The policy in force.
    #[must_use]
    pub fn policy(&self) -> Policy {
        self.policy.get()
    }

    /// Every finding so far, with the action taken.
    #[must_use]
    pub fn findings(&self) -> Vec<(Finding, Action)> {
        lock(&self.findings).clone()
    }

    /// The findings after the first `seen` (what a recorder has not
    /// written yet): cheap when there are none, as on every sample.
    #[must_use]
    pub fn findings_since(&self, seen: usize) -> Vec<(Finding, Action)> {
        lock(&self.findings)
            .get(seen..)
            .map(<[_]>::to_vec)
            .unwrap_or_default()
    }

    /// Whether a finding degraded the twin: writes and key use are refused.
    #[must_use]
    pub fn degraded(&self) -> bool {
        self.degraded.load(Ordering::SeqCst)
    }

    /// Whether the integrity guards are on (a hardened build).
    #[must_use]
    pub fn guarded(&self) -> bool {
        self.guard.is_some()
    }

    /// Guard regions checked at start-up.
    #[must_use]
    pub fn guard_regions(&self) -> usize {
        self.guard
            .as_ref()
            .map_or(0, |g| lock(g).table.regions.len())
    }

    /// How long the start-up checks took.
    #[must_use]
    pub fn startup_duration(&self) -> Duration {
        self.startup
    }

    /// Registers something to wipe (zeroize) on lockdown.
    pub fn on_lockdown(&self, wipe: Box<dyn FnMut() + Send>) {
        lock(&self.wipers).push(wipe);
    }

    /// Answers a finding with the policy's action. Inlined at every call
    /// site, with the lockdown itself (wipe, raw exit): patching one
    /// function, or one GOT slot, leaves every other site's answer whole.
    #[inline(always)]
    pub fn respond(&self, finding: Finding) {
        let urgent = matches!(finding.class, FindingClass::Tamper | FindingClass::Debugger);
        let action = self.policy.action(finding.class);
        if !urgent && self.hold(&finding) {
            return;
        }
        if action == Action::Lockdown {
            for wipe in lock(&self.wipers).iter_mut() {
                wipe();
            }
            self.report(&finding, action);
            sys::exit_now(LOCKDOWN_EXIT_CODE);
        }
        self.report(&finding, action);
    }

    /// Holds a finding for the bundle's policy, while one is awaited.
    fn hold(&self, finding: &Finding) -> bool {
        match lock(&self.deferred).as_mut() {
            Some(held) => {
                held.push(finding.clone());
                true
            }
            None => false,
        }
    }

    /// Records a finding (once per class and evidence), degrades on
    /// [`Action::Degrade`], and tells the responder.
    fn report(&self, finding: &Finding, action: Action) {
        if !lock(&self.seen).insert((finding.class, finding.evidence.clone())) {
            return;
        }
        tracing::warn!(class = %finding.class, %action, "shield finding: {}", finding.evidence);
        lock(&self.findings).push((finding.clone(), action));
        if action == Action::Degrade {
            self.degraded.store(true, Ordering::SeqCst);
        }
        (self.responder)(finding, action);
    }

    /// Answers the watchdog's challenge: the checksum of the region it
    /// names, read from the running code now.
    #[inline(always)]
    fn answer_challenge(&self) {
        let (challenge, region) = self.heartbeat.challenge();
        let Some(mut g) = self.guard.as_ref().and_then(|g| g.try_lock().ok()) else {
            return;
        };
        let GuardState {
            memory,
            table,
            base,
            ..
        } = &mut *g;
        if let Some(digest) = guard::region_digest(memory, table, *base, region) {
            self.heartbeat
                .answer(crate::watchdog::answer_for(table.key, challenge, digest));
        }
    }

    fn monitor(&self) {
        let mut round = 0u64;
        let mut watchdog = crate::watchdog::Watcher::default();
        loop {
            std::thread::sleep(MONITOR_PERIOD);
            round += 1;
            self.answer_challenge();
            if let Some(f) = probe::tracer_other_than(self.guardian.map(Guardian::pid)) {
                self.respond(f);
            }
            if let Some(f) = self.verify_next() {
                self.respond(f);
            }
            if self.heartbeat.watchdog_stopped(&mut watchdog) {
                self.respond(Finding::new(
                    FindingClass::Tamper,
                    "the shield's watchdog stopped",
                ));
            }
            if round.is_multiple_of(10) {
                for f in probe::maps()
                    .into_iter()
                    .chain(self.expected_code.foreign_now())
                {
                    self.respond(f);
                }
            }
            // Once a second: the table itself, and its signature; the
            // policy's redundancy.
            if round.is_multiple_of(5) {
                if let Some(f) = self.embedded_table_changed() {
                    self.respond(f);
                }
                if let Some(f) = self.policy.altered() {
                    self.respond(f);
                }
            }
            self.heartbeat.monitor_beat();
        }
    }

    /// The watchdog thread: see [`crate::watchdog`].
    fn watch(&self) {
        let mut me = crate::watchdog::Watcher::default();
        loop {
            std::thread::sleep(crate::watchdog::WATCH_PERIOD);
            if let Some(what) = self.heartbeat.watch(&mut me) {
                self.respond(Finding::new(FindingClass::Tamper, what));
            }
        }
    }
}

/// A started stretch of the sync loop (see [`Shield::checkpoint`]).
pub struct Checkpoint<'s> {
    shield: &'s Shield,
    at: Option<Instant>,
}

#[diversify]
impl Checkpoint<'_> {
    /// Ends the stretch: a stall past [`STALL_LIMIT`] is a timing finding.
    #[inline(always)]
    pub fn end(self) {
        let Some(at) = self.at else {
            return;
        };
        let took = at.elapsed();
        if took > STALL_LIMIT {
            self.shield.respond(Finding::new(
                FindingClass::Timing,
                format!(
                    "the sync loop stalled {:.1} s between two checkpoints",
                    took.as_secs_f64()
                ),
            ));
        }
    }
}

/// Stops a hardened binary whose shield is not running, where a key is
/// about to be opened: its start was skipped (patched out), so nothing
/// else would answer. A binary never hardened carries on (it is refused
/// elsewhere: see [`StartError::NeverHardened`]).
#[inline(always)]
pub fn refuse_unshielded() {
    if matches!(guard::embedded_table(), Err(TableError::NotHardened)) {
        return;
    }
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        b"error: lockdown: a hardened twinshield is running without its shield; stopping\n",
    );
    sys::exit_now(LOCKDOWN_EXIT_CODE);
}

/// A tamper finding when the binary's own table no longer decodes to
/// `in_use` or no longer carries the release key's signature.
#[inline(always)]
fn table_changed(in_use: &Table) -> Option<Finding> {
    match guard::embedded_table() {
        Ok(t) if t == *in_use => None,
        Ok(_) => Some(Finding::new(
            FindingClass::Tamper,
            "the guard table in use differs from the binary's",
        )),
        Err(e) => Some(Finding::new(FindingClass::Tamper, e.to_string())),
    }
}

/// A tamper finding when the running binary's file no longer holds the
/// writable segments `harden` sealed (a patched `.dynamic`, `.init_array`
/// or initial GOT).
#[inline(always)]
fn loader_data_changed(table: &Table) -> Option<Finding> {
    (loader::running_file_hash(table.key) != Some(table.data.file_hash)).then(|| {
        Finding::new(
            FindingClass::Tamper,
            "the binary's .dynamic, init arrays or data differ from what harden sealed",
        )
    })
}
