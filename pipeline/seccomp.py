"""A seccomp filter for the jail: the system calls that let one process reach into another are refused.

bubblewrap takes a compiled classic-BPF program on a file descriptor (`--seccomp FD`) and
installs it on the jailed command. Without it, code that escaped smolagents' interpreter
could `ptrace` the jail's PID 1 (bwrap's reaper, the same user inside the namespace) and
clear its parent-death signal, so the jail would outlive the host's kill. The program is
small enough to write out here instead of pulling in libseccomp (a system package, not on
PyPI):

- a call from any other ABI than the machine's own (i386 `int 0x80` on x86_64, x32) is refused
  whole: its system call numbers differ, so a list of numbers would not hold for it;
- the calls in `DENIED` fail with EPERM; every other call is allowed (the rest of the jail —
  namespaces, no capabilities, rlimits, read-only binds — bounds what they can do).
"""

from __future__ import annotations

import errno
import platform
import struct

# Seen from inside: ptrace-like access to another process, kernel facilities a sandbox never needs.
DENIED = ("ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "perf_event_open", "bpf",
          "userfaultfd", "keyctl", "add_key", "request_key", "kexec_load", "open_by_handle_at")
# (AUDIT_ARCH_*, system call numbers) per machine. A machine not listed gets no filter: its jail keeps the other
# walls (namespaces, no capabilities, limits), and ptrace of its PID 1 is not refused there.
ARCHES = {
    "x86_64": (0xC000003E, {"ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "pidfd_getfd": 438,
                            "perf_event_open": 298, "bpf": 321, "userfaultfd": 323, "keyctl": 250, "add_key": 248,
                            "request_key": 249, "kexec_load": 246, "open_by_handle_at": 304}),
    "aarch64": (0xC00000B7, {"ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271, "pidfd_getfd": 438,
                             "perf_event_open": 241, "bpf": 280, "userfaultfd": 282, "keyctl": 219, "add_key": 217,
                             "request_key": 218, "kexec_load": 104, "open_by_handle_at": 265}),
}
X32_BIT = 0x40000000  # x86_64's x32 ABI: the same arch value, numbers with this bit set

# Classic BPF opcodes (linux/filter.h) and seccomp return values (linux/seccomp.h).
LD_W_ABS, JEQ_K, JGE_K, RET_K = 0x20, 0x15, 0x35, 0x06
RET_ALLOW, RET_ERRNO = 0x7FFF0000, 0x00050000
NR, ARCH = 0, 4  # offsets in struct seccomp_data


def program(machine: str | None = None) -> bytes:
    """The filter as the bytes bwrap reads: struct sock_filter {u16 code; u8 jt; u8 jf; u32 k} each."""
    arch, numbers = ARCHES[machine or platform.machine()]
    deny = RET_ERRNO | errno.EPERM
    denied = [numbers[name] for name in DENIED]
    ops = [(LD_W_ABS, 0, 0, ARCH),
           (JEQ_K, 1, 0, arch),  # our ABI: go on; any other: refused
           (RET_K, 0, 0, deny),
           (LD_W_ABS, 0, 0, NR),
           (JGE_K, len(denied) + 1, 0, X32_BIT)]  # x32 numbers jump to the refusal at the end
    for i, number in enumerate(denied):
        ops.append((JEQ_K, len(denied) - i, 0, number))  # jump forward to the refusal
    ops += [(RET_K, 0, 0, RET_ALLOW), (RET_K, 0, 0, deny)]
    return b"".join(struct.pack("=HBBI", *op) for op in ops)


def supported() -> bool:
    return platform.machine() in ARCHES

