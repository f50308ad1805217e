// AVX2 in the guest: the CPU reports AVX2 and the OS enabled the YMM state (XCR0), a vectorised
// dot product and sum match the scalar results, and a YMM register keeps its value across a
// system call.
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>

#define N 4096

static int32_t a[N], b[N];
static double d[N];

static uint32_t scalar_dot(void) {
  uint32_t sum = 0;
  for (int i = 0; i < N; i++) sum += (uint32_t)a[i] * (uint32_t)b[i];
  return sum;
}

static double scalar_sum(void) {
  double sum = 0;
  for (int i = 0; i < N; i++) sum += d[i];
  return sum;
}

__attribute__((target("avx2"))) static uint32_t avx2_dot(void) {
  __m256i acc = _mm256_setzero_si256();
  for (int i = 0; i < N; i += 8) {
    __m256i x = _mm256_loadu_si256((const __m256i *)&a[i]);
    __m256i y = _mm256_loadu_si256((const __m256i *)&b[i]);
    acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(x, y));
  }
  uint32_t lanes[8];
  _mm256_storeu_si256((__m256i *)lanes, acc);
  uint32_t sum = 0;
  for (int i = 0; i < 8; i++) sum += lanes[i];
  return sum;
}

__attribute__((target("avx2"))) static double avx2_sum(void) {
  __m256d acc = _mm256_setzero_pd();
  for (int i = 0; i < N; i += 4) acc = _mm256_add_pd(acc, _mm256_loadu_pd(&d[i]));
  double lanes[4];
  _mm256_storeu_pd(lanes, acc);
  return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}

// Loads ymm8 from `in`, makes a getpid system call, stores ymm8 to `out`.
__attribute__((target("avx2"))) static void ymm_across_syscall(const uint32_t in[8], uint32_t out[8]) {
  long ret;
  __asm__ volatile("vmovdqu (%[in]), %%ymm8\n\t"
                   "syscall\n\t"
                   "vmovdqu %%ymm8, (%[out])\n\t"
                   : "=a"(ret)
                   : "a"((long)SYS_getpid), [in] "r"(in), [out] "r"(out)
                   : "rcx", "r11", "xmm8", "memory");
  (void)ret;
}

int main(void) {
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx2")) {
    fprintf(stderr, "avx2: the CPU does not report AVX2 (or the YMM state is not enabled)\n");
    return 1;
  }
  uint32_t x = 12345;
  for (int i = 0; i < N; i++) {
    x = x * 1103515245u + 12345u;
    a[i] = (int32_t)x;
    b[i] = (int32_t)(x >> 7) - 1000000;
    d[i] = (double)(int32_t)(x >> 12); // integers: the sums are exact in any order
  }
  uint32_t dot = avx2_dot(), scalar = scalar_dot();
  if (dot != scalar) {
    fprintf(stderr, "avx2: AVX2 dot product %08x, scalar %08x\n", dot, scalar);
    return 1;
  }
  printf("AVX2 dot product: %08x, same as scalar\n", dot);
  double vsum = avx2_sum(), ssum = scalar_sum();
  if (vsum != ssum) {
    fprintf(stderr, "avx2: AVX2 sum %.1f, scalar %.1f\n", vsum, ssum);
    return 1;
  }
  printf("AVX2 double sum: %.1f, same as scalar\n", vsum);

  const uint32_t in[8] = {0x01234567, 0x89abcdef, 0xdeadbeef, 0xcafef00d, 0x0badc0de, 0x8badf00d, 0xfeedface, 0x13579bdf};
  uint32_t out[8] = {0};
  ymm_across_syscall(in, out);
  if (memcmp(in, out, sizeof in) != 0) {
    fprintf(stderr, "avx2: ymm8 changed across a system call\n");
    return 1;
  }
  printf("ymm8: unchanged across a system call\n");
  return 0;
}
