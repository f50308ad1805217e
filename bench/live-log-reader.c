// A reader of tinyedge's live request log for bench/proxy.ts (serve-log), run as a process of its
// own on the CPU wrk uses. It must cost that CPU as little as possible: wrk is what limits the
// req/s measured there, so every µs the reader spends per record lowers the figure without the
// server doing anything. Hence C, one large read a wake-up, and memchr over the bytes; a Node
// reader (string conversion and a search per record) took ~1.3 µs a record, this one a small
// fraction of it. Counts the records (NDJSON lines) and the drops the server announces
// (`{"dropped":N}` lines), printing both every 200 ms and at the end. It asks the kernel to wake
// it only once LOW_WATER bytes wait (SO_RCVLOWAT): on loopback, every wake-up of the reader is
// paid on the server's CPU too (the send's soft interrupt wakes it, an interrupt to the other
// CPU), a cost a reader on another machine does not put on the server.
//   live-log-reader PORT PATH TOKEN
// HTTP/1.0, so the body is the stream itself (no chunked framing to tell from the lines).
#define _GNU_SOURCE  // memmem
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char NOTICE[] = "{\"dropped\":";
/** Bytes that must wait before a read: a few of the server's 64 KiB loopback segments. */
static const int LOW_WATER = 256 * 1024;
static volatile sig_atomic_t stop = 0;
static unsigned long long lines = 0, notices = 0, dropped = 0;

static void on_term(int sig) { (void)sig; stop = 1; }

static void report(void) {
  printf("records %llu dropped %llu\n", lines - notices, dropped);
  fflush(stdout);
}

static long long now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

// Counts the lines and drop notices in buf[0, n). A notice split across two reads is missed, as
// one in 64 KiB reads would be; the bench reports drops only to say whether there were any.
static void scan(const char *buf, size_t n) {
  for (const char *p = buf, *end = buf + n; p < end;) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (nl == NULL) break;
    lines++;
    p = nl + 1;
  }
  for (const char *p = buf, *end = buf + n; p < end;) {
    const char *at = memmem(p, (size_t)(end - p), NOTICE, sizeof NOTICE - 1);
    if (at == NULL) break;
    notices++;
    dropped += strtoull(at + sizeof NOTICE - 1, NULL, 10);
    p = at + 1;
  }
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: live-log-reader PORT PATH TOKEN\n");
    return 2;
  }
  signal(SIGTERM, on_term);
  signal(SIGINT, on_term);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[1]))};
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    perror("live-log-reader: connect");
    return 1;
  }
  char request[4096];
  int len = snprintf(request, sizeof request, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n\r\n", argv[2], argv[3]);
  if (len <= 0 || (size_t)len >= sizeof request || write(fd, request, (size_t)len) != len) {
    perror("live-log-reader: write");
    return 1;
  }
  static char buf[1 << 20];
  size_t have = 0;
  char *body = NULL;
  // The head: status 200, then the body starts after the empty line.
  while (body == NULL) {
    ssize_t r = read(fd, buf + have, sizeof buf - 1 - have);
    if (r <= 0) {
      fprintf(stderr, "live-log-reader: the connection ended before the head\n");
      return 1;
    }
    have += (size_t)r;
    buf[have] = '\0';
    body = strstr(buf, "\r\n\r\n");
    if (body == NULL && have >= sizeof buf - 1) {
      fprintf(stderr, "live-log-reader: no end of head\n");
      return 1;
    }
  }
  if (strncmp(buf, "HTTP/1.1 200", 12) != 0 && strncmp(buf, "HTTP/1.0 200", 12) != 0) {
    fprintf(stderr, "live-log-reader: live log answered %.*s\n", (int)(strchr(buf, '\r') - buf), buf);
    return 1;
  }
  printf("reading\n");
  fflush(stdout);
  body += 4;
  scan(body, have - (size_t)(body - buf));
  if (setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &LOW_WATER, sizeof LOW_WATER) != 0) perror("live-log-reader: SO_RCVLOWAT");
  long long next = now_ms() + 200;
  struct pollfd p = {.fd = fd, .events = POLLIN};
  while (!stop) {
    long long wait = next - now_ms();
    if (wait <= 0) {
      report();
      next += 200;
      continue;
    }
    if (poll(&p, 1, (int)wait) <= 0) continue;
    ssize_t r = read(fd, buf, sizeof buf);
    if (r <= 0) break;
    scan(buf, (size_t)r);
  }
  // What is left, less than LOW_WATER: counted too.
  for (ssize_t r; (r = recv(fd, buf, sizeof buf, MSG_DONTWAIT)) > 0;) scan(buf, (size_t)r);
  report();
  return 0;
}
