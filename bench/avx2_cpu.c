/* A CPU without AVX-512, bf16 or AMX, for one process: what bench/speed.py --emulate-avx2 runs
 * its children under, so that torch (oneDNN, ATen) *and* ncnn take the code paths they take on an
 * AVX2 CPU such as a Zen 2/3 EPYC.
 *
 * Libraries choose their kernels from the CPUID instruction. Linux can make CPUID fault in a
 * process (arch_prctl ARCH_SET_CPUID, on CPUs with the "cpuid_fault" flag); this library, loaded
 * with LD_PRELOAD, turns that on before the program starts and answers each CPUID itself: the
 * CPU's own answer with the AVX-512, AMX, AVX10 and bf16/VNNI feature bits cleared. The setting is
 * per thread and inherited by the threads a thread starts (OpenMP's, torch's), so every library
 * in the process sees the same CPU. CPUID runs when libraries start, not in their loops: the
 * cost is nil once they have chosen. glibc chose its string functions before this library loads
 * (GLIBC_TUNABLES, set beside it by the bench, masks those).
 *
 *   gcc -O2 -shared -fPIC -o avx2_cpu.so bench/avx2_cpu.c
 *   LD_PRELOAD=$PWD/avx2_cpu.so python -c "import torch; print(torch.backends.cpu.get_cpu_capability())"
 */
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#ifndef ARCH_SET_CPUID
#define ARCH_SET_CPUID 0x1012
#endif

static struct sigaction previous;

static void real_cpuid(uint32_t leaf, uint32_t subleaf, uint32_t r[4]) {
    __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(subleaf));
}

#define BIT(n) (1u << (n))

static void mask(uint32_t leaf, uint32_t subleaf, uint32_t r[4]) {
    if (leaf == 7 && subleaf == 0) {
        /* EBX: avx512f dq ifma pf er cd bw vl */
        r[1] &= ~(BIT(16) | BIT(17) | BIT(21) | BIT(26) | BIT(27) | BIT(28) | BIT(30) | BIT(31));
        /* ECX: avx512vbmi vbmi2 vnni bitalg vpopcntdq */
        r[2] &= ~(BIT(1) | BIT(6) | BIT(11) | BIT(12) | BIT(14));
        /* EDX: avx512 4vnniw 4fmaps vp2intersect, amx-bf16, avx512-fp16, amx-tile, amx-int8 */
        r[3] &= ~(BIT(2) | BIT(3) | BIT(8) | BIT(22) | BIT(23) | BIT(24) | BIT(25));
    } else if (leaf == 7 && subleaf == 1) {
        /* EAX: avx-vnni, avx512-bf16, amx-fp16 */
        r[0] &= ~(BIT(4) | BIT(5) | BIT(21));
        /* EDX: avx-vnni-int8, avx-ne-convert, amx-complex, avx-vnni-int16, avx10 */
        r[3] &= ~(BIT(4) | BIT(5) | BIT(8) | BIT(10) | BIT(19));
    } else if (leaf == 0x1d || leaf == 0x1e || leaf == 0x24) {
        r[0] = r[1] = r[2] = r[3] = 0; /* AMX tile and AVX10 descriptions */
    }
}

static void on_fault(int signal_number, siginfo_t *info, void *context) {
    greg_t *registers = ((ucontext_t *)context)->uc_mcontext.gregs;
    const unsigned char *instruction = (const unsigned char *)registers[REG_RIP];
    if (signal_number != SIGSEGV || info->si_code != SI_KERNEL || instruction[0] != 0x0f || instruction[1] != 0xa2) {
        /* not a CPUID: what was there before (the default: the process dies) */
        sigaction(SIGSEGV, &previous, NULL);
        return;
    }
    uint32_t r[4];
    syscall(SYS_arch_prctl, ARCH_SET_CPUID, 1);
    real_cpuid((uint32_t)registers[REG_RAX], (uint32_t)registers[REG_RCX], r);
    syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0);
    mask((uint32_t)registers[REG_RAX], (uint32_t)registers[REG_RCX], r);
    registers[REG_RAX] = r[0];
    registers[REG_RBX] = r[1];
    registers[REG_RCX] = r[2];
    registers[REG_RDX] = r[3];
    registers[REG_RIP] += 2;
}

__attribute__((constructor)) static void start(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_fault;
    action.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&action.sa_mask);
    sigaction(SIGSEGV, &action, &previous);
    if (syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0) != 0) {
        fprintf(stderr, "avx2_cpu: this CPU or kernel cannot make CPUID fault; features are not masked\n");
        sigaction(SIGSEGV, &previous, NULL);
    }
}
