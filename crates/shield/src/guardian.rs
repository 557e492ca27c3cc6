//! The guardian: a child process that holds this process's tracer slot
//! for its whole life, so a debugger's or a raw `PTRACE_ATTACH` fails
//! instead of succeeding between two probes (and an edited `/proc` view
//! hides nothing then).
//!
//! Forked at start-up, before any other thread exists, the guardian seizes
//! every thread of the twin with `PTRACE_O_TRACECLONE` (threads made later
//! are its tracees from their first instruction) and `PTRACE_O_EXITKILL`
//! (killing the guardian kills the twin). It then only passes signals on
//! and lets stops go; it never reads or writes the twin. The twin in turn
//! checks, every monitor round, that each of its threads is traced by the
//! guardian and by no one else, and that no one traces the guardian.
//!
//! The child runs raw system calls only: no allocation, no lock, no libc
//! (a child forked from a process may rely on nothing else).
#![allow(unsafe_code)]

use crate::finding::{Finding, FindingClass};

/// How many threads the guardian seizes at start-up (there is one when
/// the shield starts first, as it does in `main`).
const MAX_START_THREADS: usize = 32;

/// The guardian's exit status when the kernel refused the seize.
const REFUSED: i32 = 10;

/// The guardian's exit status when the seize failed for another reason.
const FAILED: i32 = 11;

/// A guardian that holds the tracer slot of every thread of this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guardian {
    pid: u32,
}

impl Guardian {
    /// The guardian's process id (what every thread's `TracerPid` must be).
    #[must_use]
    pub fn pid(self) -> u32 {
        self.pid
    }
}

/// Forks the guardian and waits (at most a second) until it holds every
/// thread. A refusal is an environment finding (Yama, seccomp, a
/// container), or a debugger finding when a tracer already holds the slot.
///
/// # Errors
/// The finding that says why the slot is not held.
pub fn hold_tracer_slot(already_traced: bool) -> Result<Guardian, Finding> {
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    {
        imp::hold(already_traced)
    }
    #[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
    {
        let _ = already_traced;
        Err(refused_here("not available on this platform"))
    }
}

fn refused_here(why: &str) -> Finding {
    Finding::new(
        FindingClass::Environment,
        format!(
            "cannot hold the tracer slot ({why}): a debugger could attach between two probes; \
             allow ptrace for the twin's own child (Yama's ptrace scope 0 or 1, no seccomp filter \
             refusing ptrace)"
        ),
    )
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod imp {
    use super::{FAILED, Guardian, MAX_START_THREADS, REFUSED, refused_here};
    use crate::finding::{Finding, FindingClass};
    use crate::sys::nr;
    use crate::sys::syscall4;
    use std::time::{Duration, Instant};

    pub(super) fn hold(already_traced: bool) -> Result<Guardian, Finding> {
        let mut tids = [0usize; MAX_START_THREADS];
        let listed = crate::probe::thread_ids();
        if listed.len() > MAX_START_THREADS {
            return Err(refused_here("too many threads before the shield started"));
        }
        for (slot, tid) in tids.iter_mut().zip(&listed) {
            *slot = *tid as usize;
        }
        let count = listed.len();
        // SAFETY: getpid takes no arguments.
        let parent = unsafe { syscall4(nr::GETPID, 0, 0, 0, 0) } as usize;
        // SAFETY: fork takes no arguments; the child runs only `guard`,
        // which makes raw system calls and touches only its own stack and
        // the copied `tids`.
        let pid = unsafe { syscall4(nr::FORK, 0, 0, 0, 0) };
        if pid < 0 {
            return Err(refused_here("fork failed"));
        }
        if pid == 0 {
            guard(parent, &tids[..count]);
        }
        let pid = pid as usize;
        // Under Yama's ptrace_scope 1 a child may trace its parent only
        // when named; without Yama the call fails harmlessly.
        // SAFETY: PR_SET_PTRACER takes a pid and no pointers.
        let _ = unsafe { syscall4(nr::PRCTL, nr::PR_SET_PTRACER, pid, 0, 0) };
        wait_until_held(pid, already_traced)
    }

    /// Polls this process's threads until each is traced by `pid`, or the
    /// guardian exits saying why not.
    fn wait_until_held(pid: usize, already_traced: bool) -> Result<Guardian, Finding> {
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            if crate::probe::all_threads_traced_by(pid as u32) {
                return Ok(Guardian { pid: pid as u32 });
            }
            let mut status: i32 = 0;
            // SAFETY: wait4's status pointer is a live local; no rusage.
            let r = unsafe {
                syscall4(
                    nr::WAIT4,
                    pid,
                    std::ptr::from_mut(&mut status) as usize,
                    nr::WNOHANG,
                    0,
                )
            };
            if r == pid as isize {
                return Err(guardian_failed(status, already_traced));
            }
            if Instant::now() > deadline {
                // SAFETY: kill takes a pid and a signal, no pointers.
                unsafe { syscall4(nr::KILL, pid, nr::SIGKILL, 0, 0) };
                return Err(refused_here("the guardian did not attach within a second"));
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    fn guardian_failed(status: i32, already_traced: bool) -> Finding {
        let code = (status >> 8) & 0xff;
        match (status & 0x7f == 0, code) {
            (true, REFUSED) if !already_traced => refused_here("the kernel refused the attach"),
            (true, REFUSED) => Finding::new(
                FindingClass::Debugger,
                "the guardian could not attach: a tracer already holds the slot",
            ),
            _ => refused_here("the guardian failed"),
        }
    }

    /// The guardian's whole life: seize every thread, then pass signals
    /// on until the twin exits.
    #[inline(never)]
    fn guard(parent: usize, tids: &[usize]) -> ! {
        // Hold none of the twin's descriptors (a pipe kept open here
        // would keep a reader of the twin's output waiting).
        // SAFETY: close_range takes two descriptor numbers and flags.
        let _ = unsafe { syscall4(nr::CLOSE_RANGE, 0, usize::MAX, 0, 0) };
        for &tid in tids {
            let code = seize(tid);
            if code != 0 {
                exit(code);
            }
        }
        // Forked before the twin made itself non-dumpable: so that no
        // unprivileged process can attach to the guardian (and through it
        // reach the twin), it makes itself non-dumpable too.
        // SAFETY: PR_SET_DUMPABLE takes a number, no pointers.
        let _ = unsafe { syscall4(nr::PRCTL, nr::PR_SET_DUMPABLE, 0, 0, 0) };
        serve(parent)
    }

    /// Seizes `tid`, retrying a refusal for a while (the parent may not
    /// have named this process its tracer yet).
    fn seize(tid: usize) -> i32 {
        let options = nr::PTRACE_O_TRACECLONE | nr::PTRACE_O_EXITKILL;
        for _ in 0..200 {
            // SAFETY: PTRACE_SEIZE takes a pid and an options word, no
            // pointers.
            let r = unsafe { syscall4(nr::PTRACE, nr::PTRACE_SEIZE, tid, 0, options) };
            match r {
                0 => return 0,
                r if r == -nr::EPERM => sleep_1ms(),
                _ => return FAILED,
            }
        }
        REFUSED
    }

    /// Lets every stop of every tracee go on as it would untraced.
    fn serve(parent: usize) -> ! {
        loop {
            let mut status: i32 = 0;
            // SAFETY: wait4's status pointer is a live local; no rusage.
            let tid = unsafe {
                syscall4(
                    nr::WAIT4,
                    usize::MAX, // -1: any tracee
                    std::ptr::from_mut(&mut status) as usize,
                    nr::WALL,
                    0,
                )
            };
            if tid == -nr::EINTR {
                continue;
            }
            if tid < 0 {
                exit(0);
            }
            let stopped = status & 0xff == 0x7f;
            if !stopped {
                if tid as usize == parent {
                    exit(0);
                }
                continue;
            }
            resume(tid as usize, status);
        }
    }

    /// Resumes a stopped tracee: a signal it was to receive is delivered,
    /// a group stop stays a stop, thread creation goes on.
    fn resume(tid: usize, status: i32) {
        let signal = (status >> 8) & 0xff;
        let event = status >> 16;
        let (request, deliver) = match event {
            0 => (nr::PTRACE_CONT, signal as usize),
            nr::PTRACE_EVENT_STOP
                if matches!(
                    signal,
                    nr::SIGSTOP | nr::SIGTSTP | nr::SIGTTIN | nr::SIGTTOU
                ) =>
            {
                (nr::PTRACE_LISTEN, 0)
            }
            _ => (nr::PTRACE_CONT, 0),
        };
        // SAFETY: PTRACE_CONT and PTRACE_LISTEN take a pid and a signal
        // number, no pointers.
        let _ = unsafe { syscall4(nr::PTRACE, request, tid, 0, deliver) };
    }

    fn sleep_1ms() {
        let ts: [i64; 2] = [0, 1_000_000];
        // SAFETY: nanosleep reads the live local timespec; no remainder.
        let _ = unsafe { syscall4(nr::NANOSLEEP, ts.as_ptr() as usize, 0, 0, 0) };
    }

    fn exit(code: i32) -> ! {
        loop {
            // SAFETY: exit_group takes a status, no pointers.
            unsafe { syscall4(nr::EXIT_GROUP, code as usize, 0, 0, 0) };
        }
    }
}
