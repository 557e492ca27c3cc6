//! The ptrace self-check, through raw system calls: a forked child tries to
//! attach to this process with `PTRACE_SEIZE`; the kernel refuses when a
//! tracer is already attached. Raw calls (not libc's wrappers) so that a
//! preloaded library cannot fake the answer.
//!
//! With [`crate::guardian`] and the system-call module, this is the crate's
//! only `unsafe` code: inline `syscall` instructions, and a `fork` whose
//! child runs nothing but raw system calls before it exits (the only thing
//! a child of a multi-threaded process may safely do).
#![allow(unsafe_code)]

use twinshield_shield_macros::diversify;

/// The outcome of the self-check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelfCheck {
    /// The child could attach: nothing else traces this process.
    NotTraced,
    /// The kernel refused the attach: a tracer is already attached.
    Traced,
    /// The check could not run here (architecture, ptrace restricted by
    /// Yama for unprivileged processes, or a seccomp filter that may refuse
    /// ptrace outright).
    Unavailable,
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod imp {
    use super::SelfCheck;
    use crate::sys::nr::WAIT4 as SYS_WAIT4;
    use crate::sys::nr::{EINTR, EPERM, EXIT_GROUP as SYS_EXIT_GROUP, FORK as SYS_FORK};
    use crate::sys::nr::{GETPID as SYS_GETPID, PTRACE as SYS_PTRACE, PTRACE_SEIZE};
    use crate::sys::syscall4;

    /// The child's whole life: try to seize the parent, exit with the
    /// answer. Raw system calls only: no allocation, no lock, no libc.
    #[inline(never)]
    fn child(parent: usize) -> ! {
        // SAFETY: PTRACE_SEIZE takes a pid and no pointers.
        let r = unsafe { syscall4(SYS_PTRACE, PTRACE_SEIZE, parent, 0, 0) };
        let code = match r {
            0 => 0,
            r if r == -EPERM => 1,
            _ => 2,
        };
        loop {
            // SAFETY: exit_group takes a status and no pointers; it does not
            // return (the loop only satisfies the type).
            unsafe { syscall4(SYS_EXIT_GROUP, code, 0, 0, 0) };
        }
    }

    pub fn self_check() -> SelfCheck {
        // SAFETY: getpid takes no arguments.
        let parent = unsafe { syscall4(SYS_GETPID, 0, 0, 0, 0) };
        // SAFETY: fork takes no arguments; the child runs only `child`.
        let pid = unsafe { syscall4(SYS_FORK, 0, 0, 0, 0) };
        if pid < 0 {
            return SelfCheck::Unavailable;
        }
        if pid == 0 {
            child(parent as usize);
        }
        let mut status: i32 = 0;
        loop {
            // SAFETY: wait4's status pointer is a live local i32; the rusage
            // pointer is null (not wanted).
            let r = unsafe {
                syscall4(
                    SYS_WAIT4,
                    pid as usize,
                    std::ptr::from_mut(&mut status) as usize,
                    0,
                    0,
                )
            };
            if r == -EINTR {
                continue;
            }
            if r != pid {
                return SelfCheck::Unavailable;
            }
            break;
        }
        let exited = status & 0x7f == 0;
        match (exited, (status >> 8) & 0xff) {
            (true, 0) => SelfCheck::NotTraced,
            (true, 1) => SelfCheck::Traced,
            _ => SelfCheck::Unavailable,
        }
    }
}

/// Runs the self-check. Call it before the process makes itself
/// non-dumpable (after that only privileged processes may attach at all).
#[must_use]
#[diversify]
pub fn ptrace_self_check() -> SelfCheck {
    // With Yama's ptrace_scope at 1 or more, an unprivileged child may not
    // attach to its parent at all: the refusal would say nothing.
    let restricted = crate::probe::read_proc(&crate::obf!("/proc/sys/kernel/yama/ptrace_scope"))
        .is_some_and(|s| s.first().is_some_and(|&c| c != b'0'));
    if restricted && !rustix::process::geteuid().is_root() {
        return SelfCheck::Unavailable;
    }
    // Under a seccomp filter (containers, sandboxes) ptrace itself may be
    // refused: again the refusal would say nothing.
    let key = crate::obf!("Seccomp:");
    let filtered = crate::probe::read_proc(&crate::obf!("/proc/self/status")).is_some_and(|s| {
        String::from_utf8_lossy(&s)
            .lines()
            .any(|l| l.strip_prefix(&*key).is_some_and(|v| v.trim() == "2"))
    });
    if filtered {
        return SelfCheck::Unavailable;
    }
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    {
        imp::self_check()
    }
    #[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
    {
        SelfCheck::Unavailable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_test_process_is_not_traced() {
        assert_ne!(ptrace_self_check(), SelfCheck::Traced);
    }
}
