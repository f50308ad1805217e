/* A program that speaks ABI version 2 with its own request loop and lies about its batches, by
 * the path of the batch's first request (the others are answered "ok I" unless it says otherwise):
 *   /answered-zero    says it answered none          /answered-huge   says it answered 1000
 *   /wrong-wait       WAITs with a pointer that is not its batch
 *   /current-back     sets current to the last index (and logs, an exit), then back to 0, and spins
 *   /current-huge     sets current to 0xffffffff, then answers every request properly
 *   /bad-slot         answers every request, but slot 1 points its body outside memory
 *   /pointers         overwrites te_batch.requests and .responses with garbage, then answers
 *                     every request through the slots it was given
 * Anything else: every request answered "ok I", as the SDK would. */
#include <tinyedge.h>

static char bodies[64][32];

static int path_is(const te_request *req, const char *p) {
    return req->path.len == strlen(p) && memcmp(req->path.ptr, p, req->path.len) == 0;
}

/* Fills every slot with "ok I" (200, no headers), as an honest loop would, and says so. */
static void answer_all(te_batch *b, te_response *slots, const te_request *const *reqs) {
    for (uint32_t i = 0; i < b->count && i < 64; i++) {
        (void)reqs;
        *(volatile uint32_t *)&b->current = i;
        int n = snprintf(bodies[i], sizeof bodies[i], "ok %u\n", i);
        memset(&slots[i], 0, sizeof slots[i]);
        slots[i].status = 200;
        slots[i].flags = TE_RESPONDED;
        slots[i].body.ptr = bodies[i];
        slots[i].body.len = (uint64_t)n;
        slots[i].ttl_ms = slots[i].grace_ms = slots[i].keep_ms = -1;
    }
    b->answered = b->count;
}

int main(void) {
    te_batch *b = (te_batch *)te__hypercall(TE_CALL_WAIT, 0, TE_ABI_VERSION);
    for (;;) {
        const te_request *const *reqs = b->requests;
        te_response *slots = b->responses;
        const te_request *first = reqs[0];
        long wait_arg = (long)b;
        answer_all(b, slots, reqs);
        if (path_is(first, "/answered-zero")) b->answered = 0;
        else if (path_is(first, "/answered-huge")) b->answered = 1000;
        else if (path_is(first, "/wrong-wait")) wait_arg = 0x1234;
        else if (path_is(first, "/current-back")) {
            *(volatile uint32_t *)&b->current = b->count - 1;
            te_log("at the last request"); /* an exit: the host sees it there */
            *(volatile uint32_t *)&b->current = 0;
            for (;;) __asm__ volatile("");
        } else if (path_is(first, "/current-huge")) {
            *(volatile uint32_t *)&b->current = 0xffffffffu;
        } else if (path_is(first, "/bad-slot") && b->count > 1) {
            slots[1].body.ptr = (const char *)0xdead0000000ull;
        } else if (path_is(first, "/pointers")) {
            b->requests = (const te_request *const *)0x10;
            b->responses = (te_response *)0xffffffffffff0000ull;
        }
        b = (te_batch *)te__hypercall(TE_CALL_WAIT, wait_arg, 0);
    }
}
