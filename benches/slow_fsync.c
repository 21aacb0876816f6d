/* A disk whose fsync is slow, for the idle-workers run of the benchmark.
 *
 * Preloaded into the tool only (LD_PRELOAD; the constructor removes it from the environment, so
 * the ttn-lw-cli processes the tool starts run as usual): every fsync and fdatasync sleeps
 * SLOW_FSYNC_US microseconds, then syncs. A laptop SSD's journal commit can take about 5 ms; the
 * virtual disk of the benchmark machine takes a quarter of one. Unlike `strace --inject`, this
 * does not trace the tool or its children, so it adds nothing but the delay.
 *
 * Built by the benchmark with `cc -shared -fPIC -O2 slow_fsync.c -o slow_fsync.so -ldl`. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>

static long delay_us = 5000;

__attribute__((constructor)) static void setup(void) {
    const char *us = getenv("SLOW_FSYNC_US");
    if (us != NULL) {
        delay_us = atol(us);
    }
    unsetenv("LD_PRELOAD");
}

static void wait_for_the_disk(void) {
    struct timespec t = {delay_us / 1000000, (delay_us % 1000000) * 1000};
    while (nanosleep(&t, &t) != 0) {
    }
}

int fsync(int fd) {
    static int (*real)(int) = NULL;
    if (real == NULL) {
        real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    }
    wait_for_the_disk();
    return real(fd);
}

int fdatasync(int fd) {
    static int (*real)(int) = NULL;
    if (real == NULL) {
        real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    }
    wait_for_the_disk();
    return real(fd);
}
