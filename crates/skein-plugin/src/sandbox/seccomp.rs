//! The sandbox's seccomp filter, as the classic BPF program bubblewrap loads (`--seccomp`)
//! right before it starts the runner. Written by hand (about twenty instructions) rather than
//! through libseccomp, which would bring a C library into the build for one constant array.
//!
//! It is a deny list, not an allow list: CPython and Node.js use a wide and changing set of
//! calls, and the namespaces and rlimits are the primary walls; the filter takes away the
//! calls that only widen the kernel's surface (debugging other processes, mounting, BPF, the
//! key ring, io_uring, kernel modules, clock setting) and every socket but a Unix one, so a
//! program that tries the network fails at once with "permission denied" even before the
//! empty network namespace would stop it. On x86-64 only: elsewhere the other walls stand
//! alone (the module reports no program).

/// The filter for this machine's architecture, or `None` where none is written.
#[cfg(target_arch = "x86_64")]
pub(super) fn program() -> Option<Vec<u8>> {
    // Linux's classic BPF opcodes and seccomp's return values (linux/filter.h, seccomp.h).
    const LD_W_ABS: u16 = 0x20;
    const JEQ_K: u16 = 0x15;
    const JGE_K: u16 = 0x35;
    const RET_K: u16 = 0x06;
    const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
    const RET_ALLOW: u32 = 0x7fff_0000;
    const RET_KILL_PROCESS: u32 = 0x8000_0000;
    const RET_ERRNO: u32 = 0x0005_0000;
    // Offsets in `struct seccomp_data`.
    const NR: u32 = 0;
    const ARCH: u32 = 4;
    const ARG0_LOW: u32 = 16;
    const X32_BIT: u32 = 0x4000_0000;

    let eperm = RET_ERRNO | libc::EPERM as u32;
    let denied: &[libc::c_long] = &[
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_chroot,
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_userfaultfd,
        libc::SYS_kexec_load,
        libc::SYS_kexec_file_load,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_reboot,
        libc::SYS_swapon,
        libc::SYS_swapoff,
        libc::SYS_acct,
        libc::SYS_syslog,
        libc::SYS_quotactl,
        libc::SYS_settimeofday,
        libc::SYS_clock_settime,
        libc::SYS_clock_adjtime,
        libc::SYS_adjtimex,
        libc::SYS_iopl,
        libc::SYS_ioperm,
        libc::SYS_open_by_handle_at,
        libc::SYS_name_to_handle_at,
        libc::SYS_fanotify_init,
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
        libc::SYS_fsopen,
        libc::SYS_fsconfig,
        libc::SYS_fsmount,
        libc::SYS_fspick,
        libc::SYS_move_mount,
        libc::SYS_open_tree,
    ];

    let mut code: Vec<(u16, u8, u8, u32)> = vec![
        // Another architecture's calls (i386 through int 0x80) would dodge the numbers below.
        (LD_W_ABS, 0, 0, ARCH),
        (JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
        (RET_K, 0, 0, RET_KILL_PROCESS),
        (LD_W_ABS, 0, 0, NR),
        // x32 numbers alias the x86-64 ones with this bit set.
        (JGE_K, 0, 1, X32_BIT),
        (RET_K, 0, 0, eperm),
    ];
    for &nr in denied {
        code.push((JEQ_K, 0, 1, nr as u32));
        code.push((RET_K, 0, 0, eperm));
    }
    // clone3 passes its flags behind a pointer the filter cannot read; ENOSYS makes the C
    // library fall back to clone, whose namespace flags the user namespace already refuses.
    code.push((JEQ_K, 0, 1, libc::SYS_clone3 as u32));
    code.push((RET_K, 0, 0, RET_ERRNO | libc::ENOSYS as u32));
    // socket(domain, …): a Unix socket is fine, every other family is refused.
    code.push((JEQ_K, 0, 4, libc::SYS_socket as u32));
    code.push((LD_W_ABS, 0, 0, ARG0_LOW));
    code.push((JEQ_K, 0, 1, libc::AF_UNIX as u32));
    code.push((RET_K, 0, 0, RET_ALLOW));
    code.push((RET_K, 0, 0, RET_ERRNO | libc::EACCES as u32));
    code.push((RET_K, 0, 0, RET_ALLOW));

    let mut bytes = Vec::with_capacity(code.len() * 8);
    for (op, jt, jf, k) in code {
        bytes.extend_from_slice(&op.to_ne_bytes());
        bytes.push(jt);
        bytes.push(jf);
        bytes.extend_from_slice(&k.to_ne_bytes());
    }
    Some(bytes)
}

/// No filter is written for this architecture.
#[cfg(not(target_arch = "x86_64"))]
pub(super) fn program() -> Option<Vec<u8>> {
    None
}
