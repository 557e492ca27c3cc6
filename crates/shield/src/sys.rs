//! Raw Linux system calls for the shield's own mechanisms: the ptrace
//! self-check, the guardian that holds the tracer slot, and the exit of a
//! lockdown. Raw `syscall` instructions, not libc's wrappers, so a
//! preloaded library or a patched GOT slot cannot fake or swallow them;
//! `#[inline(always)]`, so each caller carries its own copy.
//!
//! With [`crate::raw`] and [`crate::guardian`] this is the crate's only
//! `unsafe` code.
#![allow(unsafe_code)]

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod imp {
    use core::arch::asm;

    /// One system call with up to four arguments.
    ///
    /// # Safety
    /// The arguments must be valid for system call `n`: any pointer among
    /// them must point to memory the call may read or write, and a call
    /// that changes the process (fork, exit) must be one the caller can
    /// live with.
    #[inline(always)]
    pub unsafe fn syscall4(n: usize, a: usize, b: usize, c: usize, d: usize) -> isize {
        let ret: isize;
        // SAFETY: the x86_64 Linux system call convention (number in rax,
        // arguments in rdi, rsi, rdx, r10; rcx and r11 clobbered); the
        // caller vouches for the arguments.
        unsafe {
            asm!(
                "syscall",
                inlateout("rax") n as isize => ret,
                in("rdi") a,
                in("rsi") b,
                in("rdx") c,
                in("r10") d,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        ret
    }
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub(crate) use imp::syscall4;

/// System call numbers and constants (x86_64 Linux).
pub(crate) mod nr {
    pub const WAIT4: usize = 61;
    pub const FORK: usize = 57;
    pub const PTRACE: usize = 101;
    pub const GETPID: usize = 39;
    pub const EXIT_GROUP: usize = 231;
    pub const PRCTL: usize = 157;
    pub const CLOSE_RANGE: usize = 436;
    pub const NANOSLEEP: usize = 35;
    pub const KILL: usize = 62;

    pub const PTRACE_CONT: usize = 7;
    pub const PTRACE_SEIZE: usize = 0x4206;
    pub const PTRACE_LISTEN: usize = 0x4208;
    pub const PTRACE_O_TRACECLONE: usize = 0x8;
    pub const PTRACE_O_EXITKILL: usize = 1 << 20;
    pub const PTRACE_EVENT_STOP: i32 = 128;

    pub const PR_SET_PTRACER: usize = 0x5961_6d61;
    pub const PR_SET_DUMPABLE: usize = 4;

    pub const WALL: usize = 0x4000_0000;
    pub const WNOHANG: usize = 1;
    pub const SIGKILL: usize = 9;
    pub const SIGSTOP: i32 = 19;
    pub const SIGTSTP: i32 = 20;
    pub const SIGTTIN: i32 = 21;
    pub const SIGTTOU: i32 = 22;

    pub const EPERM: isize = 1;
    pub const EINTR: isize = 4;
}

/// Ends the whole process now with `code`: no destructor, no `atexit`
/// handler, no library call that a hook could intercept. Inlined into
/// every lockdown site, so no single function or GOT slot stands between
/// a finding and the exit.
#[inline(always)]
pub fn exit_now(code: u8) -> ! {
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    loop {
        // SAFETY: exit_group takes a status and no pointers; it does not
        // return (the loop only satisfies the type, and retries should a
        // tracer make the call fail).
        unsafe { syscall4(nr::EXIT_GROUP, usize::from(code), 0, 0, 0) };
    }
    #[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
    std::process::exit(i32::from(code))
}
