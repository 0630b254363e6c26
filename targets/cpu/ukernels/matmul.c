/*===- matmul.c - C = act(A @ B + bias) + residual, and the GLU form -------===*
 *
 * Two schedules over the packed weights (16-column panels, README.md):
 * - small M (decode): workgroups split the panels; each panel is streamed
 *   once over the whole K with all rows' accumulators in registers. This is
 *   a GEMV at memory bandwidth for M == 1.
 * - large M (prefill): a cache-blocked GEMM. Workgroups split (row block,
 *   panel group) tiles. Per tile, K is cut in blocks of KC: A's block is
 *   copied row by row (vector copies, no transposition) into a contiguous
 *   stack buffer, and a 6x16 register-blocked microkernel (R x 16 for the
 *   last 1..5 rows, so no padded rows are computed) runs over every (6 rows,
 *   weight panel) pair, the 16 KiB weight micro panel staying in L1 while
 *   A's block (<= 96 KiB) stays in L2. The contiguous copy keeps the six
 *   row streams out of each other's cache sets when K is a power of two.
 *   Partial sums live in a stack tile, not in C: C may alias the residual,
 *   which must be read intact in the epilogue.
 *
 *===----------------------------------------------------------------------===*/
#include "ukernels.h"
#include "uk_math.h"

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
#define UK_SMALL_M 8 /* M up to this uses the streaming schedule */
#endif

/*===-- Epilogue ----------------------------------------------------------===*/

/* One 16-wide piece of row `row`, columns n0 .. n0+nv-1 (nv <= 16). */
UK_INLINE void uk_store_out(kiln_v16f acc, int64_t row, int64_t n0, int64_t nv, int64_t N,
                            const float *bias, const float *residual, int32_t act, float *C) {
  if (nv == UK_W) {
    if (bias) acc += uk_load(bias + n0);
    acc = uk_act_v(acc, act);
    if (residual) acc += uk_load(residual + row * N + n0);
    uk_store(C + row * N + n0, acc);
  } else {
    if (bias) acc += uk_load_partial(bias + n0, nv);
    acc = uk_act_v(acc, act);
    if (residual) acc += uk_load_partial(residual + row * N + n0, nv);
    uk_store_partial(C + row * N + n0, acc, nv);
  }
}

UK_INLINE void uk_store_glu(kiln_v16f g, kiln_v16f u, int64_t row, int64_t n0, int64_t nv, int64_t N,
                            int32_t act, float *C) {
  kiln_v16f y = uk_act_v(g, act) * u;
  if (nv == UK_W)
    uk_store(C + row * N + n0, y);
  else
    uk_store_partial(C + row * N + n0, y, nv);
}

/*===-- Small M: stream each panel over the whole K -----------------------===*/

/* M == 1: four accumulators over k so that FMA latency never limits the
 * stream of weights. */
UK_INLINE kiln_v16f uk_gemv_panel(const float *a, const float *bp, int64_t K) {
  kiln_v16f c0 = 0, c1 = 0, c2 = 0, c3 = 0;
  int64_t k = 0;
  for (; k + 4 <= K; k += 4) {
    c0 += a[k] * uk_load(bp + (k + 0) * UK_W);
    c1 += a[k + 1] * uk_load(bp + (k + 1) * UK_W);
    c2 += a[k + 2] * uk_load(bp + (k + 2) * UK_W);
    c3 += a[k + 3] * uk_load(bp + (k + 3) * UK_W);
  }
  for (; k < K; ++k) c0 += a[k] * uk_load(bp + k * UK_W);
  return (c0 + c1) + (c2 + c3);
}

/* R (1..6, a constant after inlining) rows of A, unpacked, times one panel
 * over the whole K. */
UK_INLINE void uk_rows_panel(const float *A, int64_t lda, int R, const float *bp, int64_t K,
                             kiln_v16f *acc) {
  for (int i = 0; i < R; ++i) acc[i] = 0;
  for (int64_t k = 0; k < K; ++k) {
    kiln_v16f b = uk_load(bp + k * UK_W);
    for (int i = 0; i < R; ++i) acc[i] += A[i * lda + k] * b;
  }
}

UK_INLINE void uk_rows_panel_any(const float *A, int64_t lda, int R, const float *bp, int64_t K,
                                 kiln_v16f *acc) {
  switch (R) {
    case 1: acc[0] = uk_gemv_panel(A, bp, K); break;
    case 2: uk_rows_panel(A, lda, 2, bp, K, acc); break;
    case 3: uk_rows_panel(A, lda, 3, bp, K, acc); break;
    case 4: uk_rows_panel(A, lda, 4, bp, K, acc); break;
    case 5: uk_rows_panel(A, lda, 5, bp, K, acc); break;
    default: uk_rows_panel(A, lda, 6, bp, K, acc); break;
  }
}

static void uk_matmul_small(const float *A, int64_t M, int64_t K, const float *Bp, const float *Bu,
                            int64_t N, const float *bias, const float *residual, int32_t act,
                            float *C, int64_t p_begin, int64_t p_end) {
  for (int64_t p = p_begin; p < p_end; ++p) {
    int64_t n0 = p * UK_W, nv = uk_min64(UK_W, N - n0);
    const float *bp = Bp + p * K * UK_W;
    /* Rows in blocks of about equal height (8 = 4 + 4, not 6 + 2): a block
     * of few rows does little work per weight load. */
    const int64_t rb = uk_ceil_div(M, uk_ceil_div(M, UK_MR));
    for (int64_t r0 = 0; r0 < M; r0 += rb) {
      int R = (int)uk_min64(rb, M - r0);
      const float *a = A + r0 * K;
      kiln_v16f acc[UK_MR];
      uk_rows_panel_any(a, K, R, bp, K, acc);
      if (Bu) {
        kiln_v16f up[UK_MR];
        uk_rows_panel_any(a, K, R, Bu + p * K * UK_W, K, up);
        for (int i = 0; i < R; ++i) uk_store_glu(acc[i], up[i], r0 + i, n0, nv, N, act, C);
      } else {
        for (int i = 0; i < R; ++i)
          uk_store_out(acc[i], r0 + i, n0, nv, N, bias, residual, act, C);
      }
    }
  }
}

/*===-- Large M: cache-blocked GEMM ---------------------------------------===*/

/* c[R x 16] (row stride ldc) += ap (packed [kc][6]) @ bp ([kc][16]) for
 * R (1..6, a constant after inlining) rows; with `first` the old c is not
 * read. R = 6 keeps 12 ymm accumulators on AVX2, 6 zmm on AVX-512, 24 q
 * registers on NEON. */
UK_INLINE void uk_micro_rx16(const float *ap, const float *bp, int64_t kc, float *c, int64_t ldc,
                             int first, int R) {
  kiln_v16f acc[UK_MR];
  for (int i = 0; i < R; ++i) acc[i] = first ? uk_splat(0.0f) : uk_load(c + i * ldc);
  for (int64_t k = 0; k < kc; ++k) {
    kiln_v16f b = uk_load(bp + k * UK_W);
    for (int i = 0; i < R; ++i) acc[i] += ap[i * kc + k] * b;
  }
  for (int i = 0; i < R; ++i) uk_store(c + i * ldc, acc[i]);
}

UK_INLINE void uk_micro_any(const float *ap, const float *bp, int64_t kc, float *c, int64_t ldc,
                            int first, int R) {
  switch (R) {
    case 1: uk_micro_rx16(ap, bp, kc, c, ldc, first, 1); break;
    case 2: uk_micro_rx16(ap, bp, kc, c, ldc, first, 2); break;
    case 3: uk_micro_rx16(ap, bp, kc, c, ldc, first, 3); break;
    case 4: uk_micro_rx16(ap, bp, kc, c, ldc, first, 4); break;
    case 5: uk_micro_rx16(ap, bp, kc, c, ldc, first, 5); break;
    default: uk_micro_rx16(ap, bp, kc, c, ldc, first, 6); break;
  }
}

/* Copies rows [m0, m0+mrows) x columns [k0, k0+kc) of A into ap ([mrows][kc],
 * contiguous): vector copies, no transposition, and the microkernel's six
 * row streams no longer collide in the same cache sets when K is a power of
 * two. */
UK_INLINE void uk_pack_a(const float *A, int64_t K, int64_t m0, int64_t mrows, int64_t k0,
                         int64_t kc, float *ap) {
  for (int64_t i = 0; i < mrows; ++i) uk_copy(ap + i * kc, A + (m0 + i) * K + k0, kc);
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
        int64_t mb = 0;
        for (; mb + UK_MR <= mrows; mb += UK_MR)
          uk_micro_rx16(ap + mb * kc, bp, kc, ct[m] + mb * ldc + p * UK_W, ldc, k0 == 0, UK_MR);
        if (mb < mrows)
          uk_micro_any(ap + mb * kc, bp, kc, ct[m] + mb * ldc + p * UK_W, ldc, k0 == 0,
                       (int)(mrows - mb));
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
