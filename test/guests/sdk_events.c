/* SDK program whose pipe, eventfd and epoll instance, made at init, are part of its snapshot:
 * each request reports what it finds in them, then changes them all (drains and refills the
 * pipe, counts the eventfd up, makes another pipe). A reset must put every one back. */
#include <tinyedge.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

static int fds[2], counter, ep;
static char reply[256];

static void on_request(const te_request *req) {
    (void)req;
    struct epoll_event ev[2];
    int ready = epoll_wait(ep, ev, 2, 0);
    char data[64] = {0};
    ssize_t n = read(fds[0], data, sizeof data - 1);
    uint64_t count = 0;
    ssize_t c = read(counter, &count, 8);
    int more[2];
    int made = pipe2(more, O_NONBLOCK);
    snprintf(reply, sizeof reply, "ready=%d pipe=%.*s (%zd) counter=%llu (%zd) next pipe fds=%d,%d\n", ready, (int)(n > 0 ? n : 0), data, n,
             (unsigned long long)count, c, made == 0 ? more[0] : -errno, made == 0 ? more[1] : -errno);
    write(fds[1], "changed", 7);
    uint64_t add = 100;
    write(counter, &add, 8);
    write(counter, &add, 8);
    te_respond_str(200, "text/plain", reply);
}

int main(void) {
    if (pipe2(fds, O_NONBLOCK) != 0) return 1;
    write(fds[1], "snapshot", 8);
    counter = eventfd(5, EFD_NONBLOCK);
    ep = epoll_create1(0);
    struct epoll_event e = { EPOLLIN, { .u64 = 1 } };
    epoll_ctl(ep, EPOLL_CTL_ADD, fds[0], &e);
    e.data.u64 = 2;
    epoll_ctl(ep, EPOLL_CTL_ADD, counter, &e);
    te_on_request(on_request);
    wait_for_requests();
}
