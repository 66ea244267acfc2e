/* sparsebench native CPU kernel of the mask enforcer (issue 10; pruners/enforce.py).
 *
 * Built on first use by pruners/native.py with the machine's C compiler, cached, and called through ctypes
 * on contiguous CPU tensors; the enforcer's eager twin (grad.mul_(float mask)) runs whenever this library
 * cannot be built or a tensor does not qualify.
 *
 * mask_grad: g[i] = g[i] * (bit i of the mask ? 1 : 0) -- the float-mask multiply, to the bit (-0 for a
 * negative gradient at a pruned entry, NaN stays NaN), with the mask read as packed bits (bit i of byte
 * i / 8, least significant first): 1/32 of the float mask's memory traffic, so the pass costs about the
 * gradient's read and write.  16 lanes with GCC / Clang vector extensions; every entry is independent, so
 * the result does not depend on the number of threads.
 */
#include <stdint.h>
#include <string.h>

typedef float vf __attribute__((vector_size(64)));
typedef double vd __attribute__((vector_size(128)));
typedef int32_t vi __attribute__((vector_size(64)));
typedef int64_t vl __attribute__((vector_size(128)));

#define PAR_MIN 32768   /* below this many entries one thread does the whole tensor */

static inline vi lane_bits(const uint8_t *bits, int64_t v) {   /* bits 16v .. 16v+15 as 0 / 1 lanes */
    uint16_t m;
    memcpy(&m, bits + 2 * v, sizeof m);
    const vi iota = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    const vi mm = {m, m, m, m, m, m, m, m, m, m, m, m, m, m, m, m};
    return (mm >> iota) & 1;
}

static inline int bit_at(const uint8_t *bits, int64_t i) { return (bits[i >> 3] >> (i & 7)) & 1; }

void mask_grad_f32(float *restrict g, const uint8_t *restrict bits, int64_t n, int nthreads) {
    const int64_t nvec = n / 16;
    const int threads = n >= PAR_MIN && nthreads > 1 ? nthreads : 1;
    (void)threads;
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t v = 0; v < nvec; ++v) {
        vf x;
        memcpy(&x, g + 16 * v, sizeof x);
        x *= __builtin_convertvector(lane_bits(bits, v), vf);
        memcpy(g + 16 * v, &x, sizeof x);
    }
    for (int64_t i = nvec * 16; i < n; ++i) g[i] *= (float)bit_at(bits, i);
}

void mask_grad_f64(double *restrict g, const uint8_t *restrict bits, int64_t n, int nthreads) {
    const int64_t nvec = n / 16;
    const int threads = n >= PAR_MIN && nthreads > 1 ? nthreads : 1;
    (void)threads;
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t v = 0; v < nvec; ++v) {
        vd x;
        memcpy(&x, g + 16 * v, sizeof x);
        x *= __builtin_convertvector(__builtin_convertvector(lane_bits(bits, v), vl), vd);
        memcpy(g + 16 * v, &x, sizeof x);
    }
    for (int64_t i = nvec * 16; i < n; ++i) g[i] *= (double)bit_at(bits, i);
}
