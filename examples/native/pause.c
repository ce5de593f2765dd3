/* The pod sandbox ("pause") binary for CRI tests and runc pods: sleeps until
 * SIGTERM or SIGINT, then exits 0. Built static by the tests; wasmlet pods do
 * not run it (their sandbox is the shim itself). */
#include <signal.h>
#include <unistd.h>

static void stop(int sig) { (void)sig; _exit(0); }

int main(void) {
    signal(SIGTERM, stop);
    signal(SIGINT, stop);
    for (;;) pause();
}
