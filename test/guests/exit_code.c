// Exit status propagation: `exit_code <status> <how>` ends the program with <status> through
// `return` from main, `exit()`, the raw exit_group system call, or the raw (thread) exit system
// call. The kernel keeps only the low 8 bits of the status: 256 exits 0, 300 exits 44.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: exit_code <status> return|exit|exit_group|exit_thread\n");
    return 99;
  }
  int status = atoi(argv[1]);
  const char *how = argv[2];
  printf("exiting with %d via %s\n", status, how);
  if (strcmp(how, "return") == 0) return status;
  if (strcmp(how, "exit") == 0) exit(status);
  fflush(stdout); // the raw system calls below skip stdio's flush at exit
  if (strcmp(how, "exit_group") == 0) syscall(SYS_exit_group, status);
  if (strcmp(how, "exit_thread") == 0) syscall(SYS_exit, status);
  fprintf(stderr, "exit_code: unknown way to exit '%s' (or the system call returned)\n", how);
  return 99;
}
