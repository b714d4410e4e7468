//! pause: holds a pod's namespaces open. Sleeps until SIGTERM/SIGINT (then exits 0) and
//! reaps every child that exits, for when it is PID 1 of a shared PID namespace.
//!
//! No std, no allocator, no libc: four raw system calls. Signals are blocked and taken
//! with rt_sigtimedwait, so no handler runs; a blocked signal is queued even for a
//! namespace's init, where a default-action signal would otherwise be dropped.
#![no_std]
#![no_main]

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
compile_error!("pause supports x86_64 Linux only");

use core::arch::{asm, global_asm};

const SYS_RT_SIGPROCMASK: usize = 14;
const SYS_WAIT4: usize = 61;
const SYS_RT_SIGTIMEDWAIT: usize = 128;
const SYS_EXIT_GROUP: usize = 231;
const SIGINT: usize = 2;
const SIGTERM: usize = 15;
const SIGCHLD: usize = 17;
const SIG_BLOCK: usize = 0;
const WNOHANG: usize = 1;

// The kernel enters at _start with the stack 16-byte aligned; call main and never return.
global_asm!(
    ".globl _start",
    "_start:",
    "xor ebp, ebp",
    "and rsp, -16",
    "call pause_main",
    "ud2",
);

/// Raw four-argument Linux system call.
///
/// # Safety
/// The caller passes arguments valid for system call `n`.
unsafe fn syscall4(n: usize, a1: usize, a2: usize, a3: usize, a4: usize) -> isize {
    let ret: isize;
    // SAFETY: x86_64 syscall ABI; rcx and r11 are clobbered by the instruction.
    unsafe {
        asm!("syscall", inlateout("rax") n as isize => ret, in("rdi") a1, in("rsi") a2,
             in("rdx") a3, in("r10") a4, lateout("rcx") _, lateout("r11") _,
             options(nostack));
    }
    ret
}

fn exit(code: usize) -> ! {
    // SAFETY: exit_group takes a plain integer and does not return.
    unsafe { syscall4(SYS_EXIT_GROUP, code, 0, 0, 0) };
    loop {}
}

#[no_mangle]
extern "C" fn pause_main() -> ! {
    let set: u64 = (1 << (SIGINT - 1)) | (1 << (SIGTERM - 1)) | (1 << (SIGCHLD - 1));
    let set_ptr = &set as *const u64 as usize;
    // SAFETY: set_ptr points at an 8-byte sigset that outlives the call.
    if unsafe { syscall4(SYS_RT_SIGPROCMASK, SIG_BLOCK, set_ptr, 0, 8) } < 0 {
        exit(2);
    }
    loop {
        // SAFETY: same sigset; no siginfo buffer and no timeout (wait forever).
        let sig = unsafe { syscall4(SYS_RT_SIGTIMEDWAIT, set_ptr, 0, 0, 8) };
        match sig as usize {
            SIGINT | SIGTERM => exit(0),
            SIGCHLD => {
                // Reap every exited child; stop when none is left or none has exited.
                // SAFETY: null status and rusage pointers are allowed by wait4.
                while unsafe { syscall4(SYS_WAIT4, usize::MAX, 0, WNOHANG, 0) } > 0 {}
            }
            _ => {}
        }
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    exit(3)
}
