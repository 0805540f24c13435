/*
 * A disk that fails its flushes, for fault tests: loaded into a process with LD_PRELOAD, it makes fsync and fdatasync
 * fail with EIO for files under FAILING_FSYNC_UNDER while the file FAILING_FSYNC_WHILE exists, and passes every other
 * call to the C library. The process under test is otherwise the real one, and it finds out as it would from a disk.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failing(int fd) {
  const char *switch_file = getenv("FAILING_FSYNC_WHILE");
  const char *under = getenv("FAILING_FSYNC_UNDER");
  if (switch_file == NULL || under == NULL || access(switch_file, F_OK) != 0) return 0;
  char link[64];
  char target[PATH_MAX];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t length = readlink(link, target, sizeof target - 1);
  if (length < 0) return 0;
  target[length] = '\0';
  return strncmp(target, under, strlen(under)) == 0;
}

typedef int (*flush_function)(int);

static int flush(int fd, flush_function *next, const char *name) {
  if (failing(fd)) {
    errno = EIO;
    return -1;
  }
  if (*next == NULL) *next = (flush_function)dlsym(RTLD_NEXT, name);
  return (*next)(fd);
}

int fsync(int fd) {
  static flush_function next;
  return flush(fd, &next, "fsync");
}

int fdatasync(int fd) {
  static flush_function next;
  return flush(fd, &next, "fdatasync");
}
