/* SDK program whose te_response carries hostile sizes, by path (generate phase unless noted):
 *   /count-257      257 response headers;  /count-huge: a header count of 2^32 - 1
 *   /headers-40m    256 headers whose names and values all point at one 40 MiB buffer
 *   /header-long    one header of 16 KiB + 1 bytes (name plus value)
 *   /headers-max    4 headers of exactly 16 KiB each, 64 KiB in all (allowed)
 *   /headers-total  5 headers of 16 KiB each (80 KiB in all)
 *   /tags-40m       tags pointing at the 40 MiB buffer
 *   /tags-long      one tag string of 16 KiB + 1 bytes
 *   /tags-many      1025 one-letter tags;  /tags-max: 1024 (allowed)
 *   /url-40m        (recv) a rewritten URL of 40 MiB;  /url-long: 8 KiB + 1 bytes;  /url-max: 8 KiB (allowed)
 * Anything else answers "fine". */
#include <tinyedge.h>

#define MiB (1024 * 1024)

static char big[40 * MiB];
static char tags[4096];
static te_header many[300];

static int path_is(const te_request *req, const char *p) {
    return req->path.len == strlen(p) && memcmp(req->path.ptr, p, req->path.len) == 0;
}

static void headers(uint32_t count, uint64_t name_len, uint64_t value_len) {
    for (uint32_t i = 0; i < count && i < 300; i++) {
        many[i].name.ptr = big; many[i].name.len = name_len;
        many[i].value.ptr = big; many[i].value.len = value_len;
    }
    te__response.headers = many;
    te__response.header_count = count;
}

static void one_letter_tags(int count) {
    for (int i = 0; i < count; i++) { tags[2 * i] = 't'; tags[2 * i + 1] = ' '; }
    te__response.tags.ptr = tags;
    te__response.tags.len = (uint64_t)count * 2;
}

static void on_request(const te_request *req) {
    if (req->phase == TE_PHASE_RECV) {
        big[0] = '/';
        te__response.flags |= TE_REWRITE_URL;
        te__response.url.ptr = big;
        if (path_is(req, "/url-40m")) te__response.url.len = sizeof big;
        else if (path_is(req, "/url-long")) te__response.url.len = 8192 + 1;
        else if (path_is(req, "/url-max")) te__response.url.len = 8192;
        else te__response.url.len = 1;
        return;
    }
    te_respond_str(200, "text/plain", "fine\n");
    if (path_is(req, "/count-257")) headers(257, 1, 1);
    else if (path_is(req, "/count-huge")) headers(UINT32_MAX, 1, 1);
    else if (path_is(req, "/headers-40m")) headers(256, 40 * MiB, 40 * MiB);
    else if (path_is(req, "/header-long")) headers(1, 8, 16 * 1024 - 7);
    else if (path_is(req, "/headers-max")) headers(4, 8, 16 * 1024 - 8);
    else if (path_is(req, "/headers-total")) headers(5, 8, 16 * 1024 - 8);
    else if (path_is(req, "/tags-40m")) { te__response.tags.ptr = big; te__response.tags.len = sizeof big; }
    else if (path_is(req, "/tags-long")) { te__response.tags.ptr = big; te__response.tags.len = 16 * 1024 + 1; }
    else if (path_is(req, "/tags-many")) one_letter_tags(1025);
    else if (path_is(req, "/tags-max")) one_letter_tags(1024);
}

int main(void) {
    memset(big, 'a', sizeof big);
    te_on_request(on_request);
    wait_for_requests();
}
