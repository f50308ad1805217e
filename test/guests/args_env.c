// argv and the environment: prints the program name (basename of argv[0]), every argument and
// every environment string, in order, each between <> so empty strings and spaces show.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

int main(int argc, char **argv) {
  if (argc < 1 || argv[0] == NULL || argv[0][0] == '\0') {
    fprintf(stderr, "args_env: argv[0] is missing or empty\n");
    return 1;
  }
  if (argv[argc] != NULL) {
    fprintf(stderr, "args_env: argv[argc] is not NULL\n");
    return 1;
  }
  const char *slash = strrchr(argv[0], '/');
  printf("argc=%d\n", argc);
  printf("argv[0] basename=<%s>\n", slash ? slash + 1 : argv[0]);
  for (int i = 1; i < argc; i++) printf("argv[%d]=<%s>\n", i, argv[i]);
  int envc = 0;
  for (char **e = environ; *e != NULL; e++) {
    if (strchr(*e, '=') == NULL) {
      fprintf(stderr, "args_env: environment string without '=': %s\n", *e);
      return 1;
    }
    printf("env[%d]=<%s>\n", envc++, *e);
  }
  printf("envc=%d\n", envc);
  const char *greeting = getenv("GREETING");
  printf("getenv(GREETING)=%s%s%s\n", greeting ? "<" : "", greeting ? greeting : "NULL", greeting ? ">" : "");
  return 0;
}
