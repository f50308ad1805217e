/* SDK program whose every answer is cacheable and carries 1024 surrogate keys unique to its URL
 * ("<id>-0" … "<id>-1023" for /…/<id>, about 12 KiB): a tenant filling its cache with tags that share
 * nothing, to show that what the tags cost the host is what its quota counts. */
#include <tinyedge.h>

static char tags[16 * 1024];

static void on_request(const te_request *req) {
    size_t used = 0;
    size_t start = req->path.len;
    while (start > 0 && req->path.ptr[start - 1] != '/') start--;
    int id = req->path.len - start > 8 ? 8 : (int)(req->path.len - start);
    for (int i = 0; i < 1024; i++) {
        int n = snprintf(tags + used, sizeof tags - used, "%s%.*s-%d", i == 0 ? "" : " ", id, req->path.ptr + start, i);
        used += (size_t)n;
    }
    te_respond_str(200, "text/plain", "tagged\n");
    te_cache(600, 0, 0);
    te__response.tags.ptr = tags;
    te__response.tags.len = used;
}

int main(void) {
    te_on_request(on_request);
    wait_for_requests();
}
