/*===- matmul.c - C = act(A @ B + bias) + residual, and the GLU form -------===*
 *
 * Three schedules over the packed weights (16-column panels, README.md);
 * in all of them workgroups split the weight panels (and, for large M, the
 * rows), and the weight streams of M >= 2 prefetch ahead
 * (__builtin_prefetch: a hint on every target, never a call), which keeps
 * them near memory bandwidth when the weights come from DRAM while the FMAs
 * run (the M == 1 GEMV gets there with the hardware prefetcher alone):
 * - M <= 8 (decode, speculative verification): pairs of panels (or a GLU
 *   panel's gate and up) are streamed over the whole K with the
 *   accumulators of up to 3 rows in registers, the next rows reading the
 *   pair from L2. M == 1 is a GEMV at memory bandwidth, four panels at a
 *   time.
 * Every path sums each output element over k in order (one FMA chain), so
 * a row's result is bitwise the same whatever M is: batch invariance, which
 * continuous batching needs for a request to decode the same alone or with
 * others.
 * - 8 < M <= 32 (speculative verification, batched decode, short prompts):
 *   each panel is streamed once, K in blocks of KC; per block, every row
 *   block (balanced heights <= 6) runs the 6x16 microkernel on it while it
 *   sits in L1, accumulators in a [M][16] stack tile.
 * - large M (prefill): a cache-blocked GEMM. Workgroups split (row block,
 *   panel group) tiles. Per tile, K is cut in blocks of KC: A's block is
 *   copied row by row (vector copies, no transposition) into a contiguous
 *   stack buffer, and a 6x16 register-blocked microkernel (R x 16 for the
 *   last 1..5 rows, so no padded rows are computed) runs over every (6 rows,
 *   weight panel) pair, the 16 KiB weight micro panel staying in L1 while
 *   A's block (<= 96 KiB) stays in L2. The contiguous copy keeps the six
 *   row streams out of each other's cache sets when K is a power of two.
 *   The first row block prefetches the next weight block of the loop nest.
 *   Partial sums live in a stack tile, not in C: C may alias the residual,
 *   which must be read intact in the epilogue.
 *
 *===----------------------------------------------------------------------===*/
#include "ukernels.h"
#include "uk_epilogue.h"

/* Blocking parameters (overridable with -D for tuning experiments). */
#define UK_MR 6 /* rows of the register block */
#ifndef UK_KC
#define UK_KC 256 /* K block: 16 KiB of one weight panel, sized for L1 */
#endif
#ifndef UK_MC_MAX
#define UK_MC_MAX 96 /* rows of a tile (multiple of UK_MR): 96 KiB packed A */
#endif
#ifndef UK_NCP_MAX
#define UK_NCP_MAX 8 /* panels of a tile: 128 columns */
#endif
#ifndef UK_SMALL_M
#define UK_SMALL_M 8 /* M up to this: whole-K streaming, accumulators in registers */
#endif
#ifndef UK_STREAM_PF
#define UK_STREAM_PF 1024 /* floats (4 KiB) that the weight streams prefetch ahead */
#endif
#ifndef UK_STREAM_M_MAX
#define UK_STREAM_M_MAX 32 /* M up to this: K-blocked panel streaming */
#endif

/*===-- Small M: stream each panel over the whole K -----------------------===*/

/* R rows of A (unpacked) times S weight streams over the whole K, R and S
 * constants after inlining: acc[i * S + s] is row i times stream s. Several
 * streams at once keep several DRAM streams in flight per core, which one
 * panel at a time does not (about half the bandwidth: bench/ukernels_bench,
 * M = 2..8 "copies:8"). Each accumulator is one FMA chain over k in order,
 * as in every other path. */
UK_INLINE void uk_rows_streams(const float *A, int64_t lda, int R, int S, const float *const *bp, int64_t K,
                               kiln_v16f *acc) {
  for (int i = 0; i < R * S; ++i) acc[i] = 0;
  for (int64_t k = 0; k < K; ++k) {
    for (int s = 0; s < S; ++s) __builtin_prefetch(bp[s] + k * UK_W + UK_STREAM_PF, 0, 3);
    for (int s = 0; s < S; ++s) {
      kiln_v16f b = uk_load(bp[s] + k * UK_W);
      for (int i = 0; i < R; ++i) acc[i * S + s] += A[i * lda + k] * b;
    }
  }
}

/* uk_rows_streams for R in 1..3 and S in 1..2: at most 12 vector
 * accumulators (24 ymm halves would spill on AVX2's 16 registers). */
UK_INLINE void uk_rows_streams_any(const float *A, int64_t lda, int R, int S, const float *const *bp, int64_t K,
                                   kiln_v16f *acc) {
#define UK_STREAMS_CASE(r, s) \
  if (R == r && S == s) return uk_rows_streams(A, lda, r, s, bp, K, acc);
  UK_STREAMS_CASE(1, 1)
  UK_STREAMS_CASE(1, 2)
  UK_STREAMS_CASE(2, 1)
  UK_STREAMS_CASE(2, 2)
  UK_STREAMS_CASE(3, 1)
  UK_STREAMS_CASE(3, 2)
#undef UK_STREAMS_CASE
}

/* M == 1 (decode): a GEMV. Every output element is summed over k in order,
 * one FMA per k, exactly as the multi-row paths and the GEMM do, so a row's
 * result does not depend on how many rows it is computed with (a request
 * decodes the same alone or batched). FMA latency is hidden by running the
 * chains of several panels at once rather than by splitting k. Returns the
 * first panel it did not do. */
static int64_t uk_gemv(const float *a, int64_t K, const float *Bp, const float *Bu, int64_t N,
                       const float *bias, const float *residual, int32_t act, float *C,
                       int64_t p_begin, int64_t p_end) {
  const int64_t ps = K * UK_W; /* floats per packed panel */
  int64_t p = p_begin;
  if (!Bu) {
    for (; p + 4 <= p_end; p += 4) {
      const float *b0 = Bp + p * ps, *b1 = b0 + ps, *b2 = b1 + ps, *b3 = b2 + ps;
      kiln_v16f c0 = 0, c1 = 0, c2 = 0, c3 = 0;
      for (int64_t k = 0; k < K; ++k) {
        c0 += a[k] * uk_load(b0 + k * UK_W);
        c1 += a[k] * uk_load(b1 + k * UK_W);
        c2 += a[k] * uk_load(b2 + k * UK_W);
        c3 += a[k] * uk_load(b3 + k * UK_W);
      }
      kiln_v16f c[4] = {c0, c1, c2, c3};
      for (int j = 0; j < 4; ++j) {
        int64_t n0 = (p + j) * UK_W;
        uk_store_out(c[j], 0, n0, uk_min64(UK_W, N - n0), N, bias, residual, act, C);
      }
    }
  } else {
    for (; p + 2 <= p_end; p += 2) {
      const float *g0 = Bp + p * ps, *g1 = g0 + ps, *u0 = Bu + p * ps, *u1 = u0 + ps;
      kiln_v16f cg0 = 0, cg1 = 0, cu0 = 0, cu1 = 0;
      for (int64_t k = 0; k < K; ++k) {
        cg0 += a[k] * uk_load(g0 + k * UK_W);
        cu0 += a[k] * uk_load(u0 + k * UK_W);
        cg1 += a[k] * uk_load(g1 + k * UK_W);
        cu1 += a[k] * uk_load(u1 + k * UK_W);
      }
      int64_t n0 = p * UK_W, n1 = n0 + UK_W;
      uk_store_glu(cg0, cu0, 0, n0, uk_min64(UK_W, N - n0), N, act, C);
      uk_store_glu(cg1, cu1, 0, n1, uk_min64(UK_W, N - n1), N, act, C);
    }
  }
  return p;
}

static void uk_matmul_small(const float *A, int64_t M, int64_t K, const float *Bp, const float *Bu,
                            int64_t N, const float *bias, const float *residual, int32_t act,
                            float *C, int64_t p_begin, int64_t p_end) {
  if (M == 1) p_begin = uk_gemv(A, K, Bp, Bu, N, bias, residual, act, C, p_begin, p_end);
  /* Rows in blocks of about equal height, at most 3 (8 = 3 + 3 + 2), each
   * running over two weight streams at once: two panels, or a GLU panel's
   * gate and up. The first row block brings a pair of panels (2 x 64 KiB at
   * K = 1024) into L2, the next ones read them from there. */
  const int64_t rb = uk_ceil_div(M, uk_ceil_div(M, 3));
  const int64_t ps = K * UK_W; /* floats per packed panel */
  for (int64_t p = p_begin; p < p_end;) {
    const int pair = !Bu && p + 2 <= p_end;
    const float *streams[2] = {Bp + p * ps, Bu ? Bu + p * ps : Bp + (p + 1) * ps};
    const int S = (Bu || pair) ? 2 : 1;
    for (int64_t r0 = 0; r0 < M; r0 += rb) {
      const int R = (int)uk_min64(rb, M - r0);
      kiln_v16f acc[6];
      uk_rows_streams_any(A + r0 * K, K, R, S, streams, K, acc);
      for (int i = 0; i < R; ++i) {
        if (Bu) {
          int64_t n0 = p * UK_W;
          uk_store_glu(acc[i * 2], acc[i * 2 + 1], r0 + i, n0, uk_min64(UK_W, N - n0), N, act, C);
        } else {
          for (int s = 0; s < S; ++s) {
            int64_t n0 = (p + s) * UK_W;
            uk_store_out(acc[i * S + s], r0 + i, n0, uk_min64(UK_W, N - n0), N, bias, residual, act, C);
          }
        }
      }
    }
    p += pair ? 2 : 1;
  }
}

/*===-- Large M: cache-blocked GEMM ---------------------------------------===*/

/* c[R x 16] (row stride ldc) += ap (packed [kc][6]) @ bp ([kc][16]) for
 * R (1..6, a constant after inlining) rows; with `first` the old c is not
 * read. R = 6 keeps 12 ymm accumulators on AVX2, 6 zmm on AVX-512, 24 q
 * registers on NEON. */
UK_INLINE void uk_micro_rx16(const float *ap, int64_t lda, const float *bp, int64_t kc, float *c,
                             int64_t ldc, int first, int R, const float *pf) {
  kiln_v16f acc[UK_MR];
  for (int i = 0; i < R; ++i) acc[i] = first ? uk_splat(0.0f) : uk_load(c + i * ldc);
  for (int64_t k = 0; k < kc; ++k) {
    if (pf) __builtin_prefetch(pf + k * UK_W, 0, 3);
    kiln_v16f b = uk_load(bp + k * UK_W);
    for (int i = 0; i < R; ++i) acc[i] += ap[i * lda + k] * b;
  }
  for (int i = 0; i < R; ++i) uk_store(c + i * ldc, acc[i]);
}

/* The microkernel for any R (1..6); pf (NULL: none) is prefetched one line
 * per k. */
UK_INLINE void uk_micro_any(const float *ap, int64_t lda, const float *bp, int64_t kc, float *c,
                            int64_t ldc, int first, int R, const float *pf) {
  const float *none = (const float *)0;
#define UK_MICRO_CASE(r)                                                   \
  if (pf)                                                                  \
    uk_micro_rx16(ap, lda, bp, kc, c, ldc, first, r, pf);                  \
  else                                                                     \
    uk_micro_rx16(ap, lda, bp, kc, c, ldc, first, r, none);                \
  break;
  switch (R) {
    case 1: UK_MICRO_CASE(1)
    case 2: UK_MICRO_CASE(2)
    case 3: UK_MICRO_CASE(3)
    case 4: UK_MICRO_CASE(4)
    case 5: UK_MICRO_CASE(5)
    default: UK_MICRO_CASE(6)
  }
#undef UK_MICRO_CASE
}

/* Copies rows [m0, m0+mrows) x columns [k0, k0+kc) of A into ap ([mrows][kc],
 * contiguous): vector copies, no transposition, and the microkernel's six
 * row streams no longer collide in the same cache sets when K is a power of
 * two. */
UK_INLINE void uk_pack_a(const float *A, int64_t K, int64_t m0, int64_t mrows, int64_t k0,
                         int64_t kc, float *ap) {
  for (int64_t i = 0; i < mrows; ++i) uk_copy(ap + i * kc, A + (m0 + i) * K + k0, kc);
}

/*===-- Small M: stream the panels, K blocked ---------------------------===*/

static void uk_matmul_stream(const float *A, int64_t M, int64_t K, const float *Bp, const float *Bu,
                             int64_t N, const float *bias, const float *residual, int32_t act,
                             float *C, int64_t p_begin, int64_t p_end) {
  float ct[2][UK_STREAM_M_MAX * UK_W] UK_ALIGN64;
  const int nb = Bu ? 2 : 1;
  const int64_t nrb = uk_ceil_div(M, UK_MR);
  for (int64_t p = p_begin; p < p_end; ++p) {
    const int64_t n0 = p * UK_W, nv = uk_min64(UK_W, N - n0);
    for (int m = 0; m < nb; ++m) {
      if (K <= 0)
        for (int64_t i = 0; i < M * UK_W; ++i) ct[m][i] = 0.0f;
      const float *panel = (m ? Bu : Bp) + p * K * UK_W;
      for (int64_t k0 = 0; k0 < K; k0 += UK_KC) {
        const int64_t kc = uk_min64(UK_KC, K - k0);
        const float *bp = panel + k0 * UK_W;
        /* row blocks of balanced height (M = 7: 4 + 3, not 6 + 1): a
         * block of 1 or 2 rows would be bound by FMA latency */
        for (int64_t r0 = 0, rb = 0; r0 < M; ++rb) {
          int64_t R = (M - r0) / (nrb - rb) + ((M - r0) % (nrb - rb) != 0);
          uk_micro_any(A + r0 * K + k0, K, bp, kc, ct[m] + r0 * UK_W, UK_W, k0 == 0, (int)R,
                       (UK_STREAM_PF > 0 && r0 == 0) ? bp + UK_STREAM_PF : (const float *)0);
          r0 += R;
        }
      }
    }
    for (int64_t i = 0; i < M; ++i) {
      kiln_v16f acc = uk_load(ct[0] + i * UK_W);
      if (Bu)
        uk_store_glu(acc, uk_load(ct[1] + i * UK_W), i, n0, nv, N, act, C);
      else
        uk_store_out(acc, i, n0, nv, N, bias, residual, act, C);
    }
  }
}

/* One tile: rows [m0, m0+mrows), panels [p0, p0+np). */
static void uk_gemm_tile(const float *A, int64_t K, const float *Bp, const float *Bu, int64_t N,
                         const float *bias, const float *residual, int32_t act, float *C,
                         int64_t m0, int64_t mrows, int64_t p0, int64_t np) {
  float ap[UK_MC_MAX * UK_KC] UK_ALIGN64;
  float ct[2][UK_MC_MAX * UK_NCP_MAX * UK_W] UK_ALIGN64;
  const int64_t ldc = np * UK_W;
  const int64_t mpad = uk_ceil_div(mrows, UK_MR) * UK_MR;
  const int nb = Bu ? 2 : 1;
  if (K <= 0) {
    for (int m = 0; m < nb; ++m)
      for (int64_t i = 0; i < mpad * ldc; ++i) ct[m][i] = 0.0f;
  }
  for (int64_t k0 = 0; k0 < K; k0 += UK_KC) {
    int64_t kc = uk_min64(UK_KC, K - k0);
    uk_pack_a(A, K, m0, mrows, k0, kc, ap);
    for (int64_t p = 0; p < np; ++p) {
      for (int m = 0; m < nb; ++m) {
        const float *bp = (m ? Bu : Bp) + (p0 + p) * K * UK_W + k0 * UK_W;
        /* The weight block that this loop nest reads next: the first row
         * block prefetches it, one line per k (a block is kc lines), so
         * that weights beyond the caches stream in while this one computes. */
        const float *next = (const float *)0;
        if (m + 1 < nb)
          next = Bu + (p0 + p) * K * UK_W + k0 * UK_W;
        else if (p + 1 < np)
          next = Bp + (p0 + p + 1) * K * UK_W + k0 * UK_W;
        else if (k0 + UK_KC < K)
          next = Bp + p0 * K * UK_W + (k0 + UK_KC) * UK_W;
        int64_t mb = 0;
        if (next && mb + UK_MR <= mrows) {
          uk_micro_rx16(ap, kc, bp, kc, ct[m] + p * UK_W, ldc, k0 == 0, UK_MR, next);
          mb += UK_MR;
        }
        for (; mb + UK_MR <= mrows; mb += UK_MR)
          uk_micro_rx16(ap + mb * kc, kc, bp, kc, ct[m] + mb * ldc + p * UK_W, ldc, k0 == 0, UK_MR,
                        (const float *)0);
        if (mb < mrows)
          uk_micro_any(ap + mb * kc, kc, bp, kc, ct[m] + mb * ldc + p * UK_W, ldc, k0 == 0,
                       (int)(mrows - mb), mb == 0 ? next : (const float *)0);
      }
    }
  }
  for (int64_t i = 0; i < mrows; ++i) {
    for (int64_t p = 0; p < np; ++p) {
      int64_t n0 = (p0 + p) * UK_W, nv = uk_min64(UK_W, N - n0);
      kiln_v16f acc = uk_load(ct[0] + i * ldc + p * UK_W);
      if (Bu)
        uk_store_glu(acc, uk_load(ct[1] + i * ldc + p * UK_W), m0 + i, n0, nv, N, act, C);
      else
        uk_store_out(acc, m0 + i, n0, nv, N, bias, residual, act, C);
    }
  }
}

static void uk_matmul_any(const float *A, int64_t M, int64_t K, const float *Bp, const float *Bu,
                          int64_t N, const float *bias, const float *residual, int32_t act,
                          float *C, int64_t wg, int64_t count) {
  if (M <= 0 || N <= 0) return;
  if (K < 0) K = 0;
  const int64_t panels = uk_ceil_div(N, UK_W);
  if (count < 1) count = 1;
  int64_t b, e;
  if (M <= UK_SMALL_M) {
    if (uk_split(panels, wg, count, &b, &e))
      uk_matmul_small(A, M, K, Bp, Bu, N, bias, residual, act, C, b, e);
    return;
  }
  if (M <= UK_STREAM_M_MAX) {
    if (uk_split(panels, wg, count, &b, &e))
      uk_matmul_stream(A, M, K, Bp, Bu, N, bias, residual, act, C, b, e);
    return;
  }
  /* Tiles: mt row blocks of about equal height (a multiple of 6 except the
   * last), nt panel groups; more panel groups when there are too few tiles
   * to keep every workgroup busy. */
  int64_t mt = uk_ceil_div(M, UK_MC_MAX);
  int64_t mc = uk_ceil_div(uk_ceil_div(M, mt), UK_MR) * UK_MR;
  mt = uk_ceil_div(M, mc);
  int64_t nt = uk_ceil_div(panels, UK_NCP_MAX);
  int64_t want = uk_ceil_div(4 * uk_min64(count, 1 << 20), mt);
  if (nt < want) nt = uk_min64(panels, want);
  int64_t ncp = uk_ceil_div(panels, nt);
  nt = uk_ceil_div(panels, ncp);
  if (!uk_split(mt * nt, wg, count, &b, &e)) return;
  for (int64_t t = b; t < e; ++t) {
    int64_t mi = t / nt, ni = t % nt;
    int64_t m0 = mi * mc, p0 = ni * ncp;
    uk_gemm_tile(A, K, Bp, Bu, N, bias, residual, act, C, m0, uk_min64(mc, M - m0), p0,
                 uk_min64(ncp, panels - p0));
  }
}

void kiln_uk_matmul_f32(const float *A, int64_t M, int64_t K, const float *Bpacked, int64_t N,
                        const float *bias, const float *residual, int32_t act, float *C,
                        int64_t wg, int64_t count) {
  uk_matmul_any(A, M, K, Bpacked, (const float *)0, N, bias, residual, act, C, wg, count);
}

void kiln_uk_matmul_glu_f32(const float *A, int64_t M, int64_t K, const float *Bg_packed,
                            const float *Bu_packed, int64_t N, int32_t act, float *C,
                            int64_t wg, int64_t count) {
  uk_matmul_any(A, M, K, Bg_packed, Bu_packed, N, (const float *)0, (const float *)0, act, C, wg,
                count);
}
