/* avx2: edge compute at native speed — a checksum over a table computed at init with AVX2, per
 * request over the query string. Build needs -mavx2 (the build script adds it). */
#include <tinyedge.h>
#include <immintrin.h>

static float table[4096];

static float dot(const float *a, const float *b, size_t n) {
    __m256 acc = _mm256_setzero_ps();
    for (size_t i = 0; i + 8 <= n; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
    float lanes[8];
    _mm256_storeu_ps(lanes, acc);
    float sum = 0;
    for (int i = 0; i < 8; i++) sum += lanes[i];
    return sum;
}

static void on_request(const te_request *req) {
    static char body[128];
    float weights[4096];
    for (size_t i = 0; i < 4096; i++) weights[i] = (float)((i + req->query.len) % 7);
    int n = snprintf(body, sizeof body, "dot=%.1f\n", dot(table, weights, 4096));
    te_respond(200, "text/plain", body, (size_t)n);
}

int main(void) {
    for (int i = 0; i < 4096; i++) table[i] = (float)(i % 13) * 0.5f;
    te_on_request(on_request);
    te_wait_for_requests();
}
