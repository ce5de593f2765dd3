/* How much it costs to start a process inside a cgroup on cgroup v2, three
 * ways: fork, then the child writes itself into cgroup.procs (what a shim
 * that joins after starting does); clone3(CLONE_INTO_CGROUP), which places
 * the child at creation; and fork alone, for the floor. Each child exits at
 * once; the parent reaps it. Prints the median of N rounds per way, in µs.
 *   cgroup-join CGROUP_DIR [N]      (run as root; CGROUP_DIR is created) */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, n, sizeof *v, cmp);
  return v[n / 2];
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s CGROUP_DIR [N]\n", argv[0]);
    return 2;
  }
  int n = argc > 2 ? atoi(argv[2]) : 50;
  if (n < 1 || n > 10000) n = 50;
  mkdir(argv[1], 0755);
  char procs[4096];
  snprintf(procs, sizeof procs, "%s/cgroup.procs", argv[1]);
  int dirfd = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dirfd < 0) { perror(argv[1]); return 1; }
  double *fork_only = calloc(n, sizeof(double));
  double *procs_write = calloc(n, sizeof(double));
  double *into = calloc(n, sizeof(double));
  for (int i = 0; i < n; i++) {
    double t = now_us();
    pid_t p = fork();
    if (p == 0) _exit(0);
    waitpid(p, NULL, 0);
    fork_only[i] = now_us() - t;

    t = now_us();
    p = fork();
    if (p == 0) {
      int fd = open(procs, O_WRONLY);
      if (fd < 0 || write(fd, "0", 1) != 1) _exit(1);
      _exit(0);
    }
    int status = 0;
    waitpid(p, &status, 0);
    procs_write[i] = now_us() - t;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) { fprintf(stderr, "cgroup.procs write failed\n"); return 1; }

    struct clone_args args;
    memset(&args, 0, sizeof args);
    args.flags = CLONE_INTO_CGROUP;
    args.exit_signal = SIGCHLD;
    args.cgroup = (uint64_t)dirfd;
    t = now_us();
    long r = syscall(SYS_clone3, &args, sizeof args);
    if (r == 0) _exit(0);
    if (r < 0) { perror("clone3(CLONE_INTO_CGROUP)"); return 1; }
    waitpid((pid_t)r, NULL, 0);
    into[i] = now_us() - t;
  }
  printf("fork alone: %.0f us\n", median(fork_only, n));
  printf("fork + cgroup.procs write: %.0f us\n", median(procs_write, n));
  printf("clone3 CLONE_INTO_CGROUP: %.0f us\n", median(into, n));
  rmdir(argv[1]);
  return 0;
}
