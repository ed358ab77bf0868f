/*
 * failcalloc.c — an LD_PRELOAD shim that makes one calloc of a chosen
 * program fail, for the master's out-of-memory paths (tests/e2e/oom.sh).
 *
 *   FAILCALLOC_PROG=master   the program it acts in (program_invocation_short_name);
 *                            in every other process it only passes calloc on
 *   FAILCALLOC_CTL=FILE      holds a count k: the k-th calloc the program's own
 *                            code makes from now on returns NULL (ENOMEM); the
 *                            file is rewritten with what is left (0 once it
 *                            failed). Calls from shared libraries (libevent,
 *                            jansson, libc) are not counted: they are not the
 *                            code under test.
 *   FAILCALLOC_LOG=FILE      a line "failed calloc(N, S)" per failure
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *(*real_calloc)(size_t, size_t);
static int resolving;
static int active;
static uintptr_t exe_lo, exe_hi;
static const char *ctl, *logpath;

/* dlsym may itself call calloc while it runs: those few bytes come from here. */
static unsigned char boot[4096] __attribute__((aligned(16)));
static size_t boot_used;

static int find_exe(struct dl_phdr_info *info, size_t size, void *ud)
{
    (void)size;
    (void)ud;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
            uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
            if (!exe_lo || lo < exe_lo)
                exe_lo = lo;
            if (lo + ph->p_memsz > exe_hi)
                exe_hi = lo + ph->p_memsz;
        }
    }
    return 1;   /* the first object is the program itself */
}

__attribute__((constructor)) static void init(void)
{
    resolving = 1;
    void *sym = dlsym(RTLD_NEXT, "calloc");
    memcpy(&real_calloc, &sym, sizeof real_calloc);   /* POSIX's way: dlsym(3) */
    resolving = 0;
    const char *prog = getenv("FAILCALLOC_PROG");
    ctl = getenv("FAILCALLOC_CTL");
    logpath = getenv("FAILCALLOC_LOG");
    if (prog && ctl && strcmp(prog, program_invocation_short_name) == 0) {
        dl_iterate_phdr(find_exe, NULL);
        active = exe_hi > exe_lo;
    }
}

/* Whether this call is the one to fail: reads and rewrites the count. */
static int fail_now(void)
{
    char buf[32];
    int fd = open(ctl, O_RDWR);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    long k = 0;
    if (n > 0) {
        buf[n] = 0;
        k = strtol(buf, NULL, 10);
    }
    if (k > 0) {
        k--;
        int len = snprintf(buf, sizeof buf, "%ld\n", k);
        if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)len, 0) != len)
            k = 1;   /* could not count: fail nothing */
    } else {
        k = 1;
    }
    close(fd);
    return k == 0;
}

void *calloc(size_t nmemb, size_t size)
{
    if (!real_calloc) {
        if (!resolving)
            init();
        if (!real_calloc) {
            size_t want = (nmemb * size + 15) & ~(size_t)15;
            if (want > sizeof boot - boot_used)
                return NULL;
            void *p = boot + boot_used;
            boot_used += want;
            return p;   /* already zero */
        }
    }
    uintptr_t from = (uintptr_t)__builtin_return_address(0);
    if (active && from >= exe_lo && from < exe_hi && fail_now()) {
        if (logpath) {
            FILE *f = fopen(logpath, "a");
            if (f) {
                fprintf(f, "failed calloc(%zu, %zu)\n", nmemb, size);
                fclose(f);
            }
        }
        errno = ENOMEM;
        return NULL;
    }
    return real_calloc(nmemb, size);
}
