/* setns() around socket creation, so one process can own sockets in several
 * network namespaces (a socket stays in the namespace it was created in).
 * setns(CLONE_NEWNET) affects only the calling thread; we always return. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "coati.h"

int coati_netns_enter(const char *ns, int *saved, const char **syscall) {
  char path[PATH_MAX];
  *saved = -1;
  if (!ns || !ns[0]) return 0;
  if (ns[0] == '/') snprintf(path, sizeof path, "%s", ns);
  else snprintf(path, sizeof path, "/run/netns/%s", ns);
  int target = open(path, O_RDONLY | O_CLOEXEC);
  if (target < 0) {
    *syscall = "open netns";
    return errno;
  }
  int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (self < 0) {
    int e = errno;
    close(target);
    *syscall = "open /proc/thread-self/ns/net";
    return e;
  }
  if (setns(target, CLONE_NEWNET) < 0) {
    int e = errno;
    close(target);
    close(self);
    *syscall = "setns";
    return e;
  }
  close(target);
  *saved = self;
  return 0;
}

void coati_netns_leave(int saved) {
  if (saved < 0) return;
  if (setns(saved, CLONE_NEWNET) < 0) {
    perror("coati: cannot return to the original network namespace");
    abort();
  }
  close(saved);
}
