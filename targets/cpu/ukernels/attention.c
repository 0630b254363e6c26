/*===- attention.c - Causal / masked GQA attention with an online softmax --===*
 *
 * Work item = (batch b, kv head c, block of up to 16 query rows), where the
 * rows of a kv head are those of all the query heads that share it
 * (head-major, then s). Decode with GQA thus reads K/V once for the whole
 * group. Items are dealt round-robin to workgroups, which balances causal
 * prefill (late rows see more keys) better than contiguous ranges. When
 * there are fewer (b, kv head) pairs than workgroups (MQA decode on several
 * threads), items get fewer rows so that every workgroup has one.
 *
 * Items of 8..16 rows (prefill, speculative verification, wide GQA groups)
 * take the "rows as lanes" path (uk_att_item_t below): Q^T is built once per
 * item, scores are a small GEMM into S^T [keys][16 rows], and the online
 * softmax is lane-wise. Items of fewer rows (decode) take the path below.
 *
 * Per item, keys stream in blocks of 64 (flash-attention style):
 * 1. scores: 16 keys at a time, one 16-lane accumulator per key over hd, and
 *    a butterfly of shuffles that reduces the 16 accumulators to one vector
 *    of 16 scores (vectorized over hd and over keys, no transposition);
 * 2. online softmax per row: running max m and sum l; the out row, owned by
 *    this workgroup, is the accumulator (so any hd works without a stack
 *    buffer of hd floats) and is rescaled by exp(m_old - m_new);
 * 3. P @ V: up to 4 rows x one 16-wide column chunk of hd in registers.
 * A row without any visible key keeps m = -inf, l = 0 and ends as zeros.
 *
 *===----------------------------------------------------------------------===*/
#include "ukernels.h"
#include "uk_math.h"

#define UK_ATT_TB 64 /* keys per block: scores of a block stay on the stack */
#define UK_ATT_QB 16 /* query rows per work item */
#define UK_ATT_RB 4  /* rows per register block in P @ V */
#define UK_ATT_HD8_MAX 256 /* head_dim of kv8 pools: a chunk of K and V rows widened on the stack */

/*===-- Scores ------------------------------------------------------------===*/

/* [a 8 partials | b 8 partials] */
UK_INLINE kiln_v16f uk_fold2(kiln_v16f a, kiln_v16f b) {
  return __builtin_shufflevector(a, b, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23) +
         __builtin_shufflevector(a, b, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
}

/* [a0 4 | a1 4 | a2 4 | a3 4] partial sums. */
UK_INLINE kiln_v16f uk_fold4(kiln_v16f a0, kiln_v16f a1, kiln_v16f a2, kiln_v16f a3) {
  kiln_v16f x0 = uk_fold2(a0, a1), x1 = uk_fold2(a2, a3);
  return __builtin_shufflevector(x0, x1, 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27) +
         __builtin_shufflevector(x0, x1, 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
}

/* Four fold4 results (keys 0-3, 4-7, 8-11, 12-15) -> lane j = sum of key j. */
UK_INLINE kiln_v16f uk_fold16(kiln_v16f y0, kiln_v16f y1, kiln_v16f y2, kiln_v16f y3) {
  kiln_v16f z0 =
      __builtin_shufflevector(y0, y1, 0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29) +
      __builtin_shufflevector(y0, y1, 2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31);
  kiln_v16f z1 =
      __builtin_shufflevector(y2, y3, 0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29) +
      __builtin_shufflevector(y2, y3, 2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31);
  return __builtin_shufflevector(z0, z1, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30) +
         __builtin_shufflevector(z0, z1, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
}

/* q . key for 4 keys, as fold4 partials. */
UK_INLINE kiln_v16f uk_dot4(const float *qr, const float *k0, const float *k1, const float *k2,
                            const float *k3, int64_t hd) {
  kiln_v16f a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  int64_t d = 0;
  for (; d + UK_W <= hd; d += UK_W) {
    kiln_v16f qv = uk_load(qr + d);
    a0 += qv * uk_load(k0 + d);
    a1 += qv * uk_load(k1 + d);
    a2 += qv * uk_load(k2 + d);
    a3 += qv * uk_load(k3 + d);
  }
  if (d < hd) {
    int64_t n = hd - d;
    kiln_v16f qv = uk_load_partial(qr + d, n);
    a0 += qv * uk_load_partial(k0 + d, n);
    a1 += qv * uk_load_partial(k1 + d, n);
    a2 += qv * uk_load_partial(k2 + d, n);
    a3 += qv * uk_load_partial(k3 + d, n);
  }
  return uk_fold4(a0, a1, a2, a3);
}

/* q . k_j for the 16 keys whose rows start at kr[0..15]; only the first nv
 * (1..16) are read, the other lanes repeat the last valid key. */
UK_INLINE kiln_v16f uk_dot16(const float *qr, const float *const *kr, int64_t nv, int64_t hd) {
  const float *kp[UK_W];
  for (int j = 0; j < UK_W; ++j) kp[j] = kr[j < nv ? j : nv - 1];
  kiln_v16f y0 = uk_dot4(qr, kp[0], kp[1], kp[2], kp[3], hd);
  kiln_v16f y1 = uk_dot4(qr, kp[4], kp[5], kp[6], kp[7], hd);
  kiln_v16f y2 = uk_dot4(qr, kp[8], kp[9], kp[10], kp[11], hd);
  kiln_v16f y3 = uk_dot4(qr, kp[12], kp[13], kp[14], kp[15], hd);
  return uk_fold16(y0, y1, y2, y3);
}

/*===-- P @ V -------------------------------------------------------------===*/

/* o_i = o_i * alpha_i + sum_{j < nk} p_i[j] * v_j for R (1..4, a constant
 * after inlining) rows; p rows have stride UK_ATT_TB, v_j's row is vr[j]. */
UK_INLINE void uk_pv_rows(float *const *o, const float *p, const float *alpha, int R,
                          const float *const *vr, int64_t nk, int64_t hd, int two_chains) {
  int64_t d = 0;
  for (; d + UK_W <= hd; d += UK_W) {
    kiln_v16f acc[UK_ATT_RB], acc2[UK_ATT_RB];
    for (int i = 0; i < R; ++i) {
      acc[i] = uk_load(o[i] + d) * alpha[i];
      acc2[i] = 0;
    }
    int64_t j = 0;
    if (two_chains) { /* two chains per row so that FMA latency does not limit */
      for (; j + 2 <= nk; j += 2) {
        kiln_v16f v0 = uk_load(vr[j] + d), v1 = uk_load(vr[j + 1] + d);
        for (int i = 0; i < R; ++i) {
          acc[i] += p[i * UK_ATT_TB + j] * v0;
          acc2[i] += p[i * UK_ATT_TB + j + 1] * v1;
        }
      }
    }
    for (; j < nk; ++j) {
      kiln_v16f v0 = uk_load(vr[j] + d);
      for (int i = 0; i < R; ++i) acc[i] += p[i * UK_ATT_TB + j] * v0;
    }
    for (int i = 0; i < R; ++i) uk_store(o[i] + d, acc[i] + acc2[i]);
  }
  for (; d < hd; ++d) {
    for (int i = 0; i < R; ++i) {
      float acc = o[i][d] * alpha[i];
      for (int64_t j = 0; j < nk; ++j) acc += p[i * UK_ATT_TB + j] * vr[j][d];
      o[i][d] = acc;
    }
  }
}

/* invariant: one chain per row whatever R is, so that a row's sum does not
 * depend on how many rows share its register block (the paged kernel). */
UK_INLINE void uk_pv_any(float *const *o, const float *p, const float *alpha, int R,
                         const float *const *vr, int64_t nk, int64_t hd, int invariant) {
  switch (R) {
    case 1:
      if (invariant) uk_pv_rows(o, p, alpha, 1, vr, nk, hd, 0);
      else uk_pv_rows(o, p, alpha, 1, vr, nk, hd, 1);
      break;
    case 2:
      if (invariant) uk_pv_rows(o, p, alpha, 2, vr, nk, hd, 0);
      else uk_pv_rows(o, p, alpha, 2, vr, nk, hd, 1);
      break;
    case 3: uk_pv_rows(o, p, alpha, 3, vr, nk, hd, 0); break;
    default: uk_pv_rows(o, p, alpha, 4, vr, nk, hd, 0); break;
  }
}

/*===-- Where a work item's rows and keys live ----------------------------===*/

/* Query/out row (h, s) of the item's sequence is at q/out + h * hs + s * hd.
 * Keys: contiguous (blocks == NULL): key j's row at k/v + j * hd; paged:
 * logical key j lives in physical block blocks[j / bs] at offset j % bs,
 * its row at k/v + (block * bs + offset) * ks (k/v already point at the kv
 * head within a pool row of ks = KVH * hd floats). */
typedef struct {
  const float *q;
  float *out;
  int64_t hs;
  int64_t S, T, hd;
  const float *k, *v;
  const int32_t *blocks;
  int64_t bs, ks, num_blocks;
  const int64_t *mrow; /* contiguous only: padding mask row [T] or NULL */
  float scale;
  int32_t causal;
  /* kv8 pools (NULL for f32): row r of a kv head at k8/v8 + r * ks8 bytes,
   * hd int8 values then their f32 scale; a chunk's rows are widened into
   * kbuf/vbuf ([UK_ATT_TB][hd] floats) and read from there. */
  const int8_t *k8, *v8;
  int64_t ks8;
  float *kbuf, *vbuf;
} uk_att_src_t;

/* One kv8 row (hd int8 values, then the f32 scale) as floats. */
UK_INLINE void uk_att_widen8(const int8_t *row, int64_t hd, float *dst) {
  float s;
  __builtin_memcpy(&s, row + hd, sizeof s);
  for (int64_t d = 0; d < hd; ++d) dst[d] = s * (float)row[d];
}

/* The keys j0.. (at most `want` <= UK_ATT_TB) of one chunk: kr[j] and vr[j]
 * are key j0 + j's K and V rows. A paged chunk runs over consecutive
 * blocks until `want` or a block id outside the pool; it returns how many
 * keys it holds, or -n for the n keys of such a block (those keys are
 * skipped). Chunks of several paged blocks (UK_ATT_TB keys, where a block
 * is usually 16) take each softmax step's fixed cost (the row's max, the
 * rescale of its output) once per 64 keys: with llama-s's heads of 32 that
 * cost was among the hottest code of a decode (perf), and paged attention
 * 39 % of a served step's kernel time. A chunk starts at the same logical
 * key whichever blocks hold it, so a row's result does not depend on
 * where its blocks are. */
UK_INLINE int64_t uk_att_chunk(const uk_att_src_t *a, int64_t j0, int64_t want, const float **kr,
                               const float **vr) {
  if (!a->blocks) {
    for (int64_t j = 0; j < want; ++j) {
      kr[j] = a->k + (j0 + j) * a->hd;
      vr[j] = a->v + (j0 + j) * a->hd;
    }
    return want;
  }
  int64_t n = 0;
  while (n < want) {
    const int64_t blk = a->blocks[(j0 + n) / a->bs], off = (j0 + n) % a->bs;
    const int64_t run = uk_min64(want - n, a->bs - off);
    if (blk < 0 || blk >= a->num_blocks) return n > 0 ? n : -run;
    const int64_t row = blk * a->bs + off;
    for (int64_t t = 0; t < run; ++t, ++n) {
      if (a->k8) {
        kr[n] = a->kbuf + n * a->hd;
        vr[n] = a->vbuf + n * a->hd;
        uk_att_widen8(a->k8 + (row + t) * a->ks8, a->hd, a->kbuf + n * a->hd);
        uk_att_widen8(a->v8 + (row + t) * a->ks8, a->hd, a->vbuf + n * a->hd);
      } else {
        kr[n] = a->k + (row + t) * a->ks;
        vr[n] = a->v + (row + t) * a->ks;
      }
    }
  }
  return n;
}

/*===-- One work item -----------------------------------------------------===*/

static void uk_att_item(const uk_att_src_t *a, int64_t hb, int64_t rr0, int64_t nr) {
  const float NEG_INF = -__builtin_inff();
  const int64_t S = a->S, T = a->T, hd = a->hd;
  const float *qp[UK_ATT_QB];
  float *op[UK_ATT_QB];
  int64_t lim[UK_ATT_QB]; /* last visible key of the row */
  float m[UK_ATT_QB], l[UK_ATT_QB], alpha[UK_ATT_QB];
  float sc[UK_ATT_QB * UK_ATT_TB] UK_ALIGN64; /* scores, then probabilities */
  float mb[UK_ATT_TB] UK_ALIGN64;             /* 0 or -inf from the padding mask */
  int64_t maxlim = -1;
  for (int64_t i = 0; i < nr; ++i) {
    int64_t h = hb + (rr0 + i) / S, s = (rr0 + i) % S;
    int64_t off = h * a->hs + s * hd;
    qp[i] = a->q + off;
    op[i] = a->out + off;
    lim[i] = a->causal ? uk_min64(T - S + s, T - 1) : T - 1;
    maxlim = uk_max64(maxlim, lim[i]);
    m[i] = NEG_INF;
    l[i] = 0.0f;
    for (int64_t d = 0; d < hd; ++d) op[i][d] = 0.0f;
  }
  const int64_t kend = uk_min64(T, maxlim + 1);
  const kiln_v16i iota = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  const int64_t *mrow = a->mrow;
  int64_t tb;
  const float *kr[UK_ATT_TB], *vr[UK_ATT_TB];
  for (int64_t j0 = 0; j0 < kend; j0 += tb) {
    tb = uk_att_chunk(a, j0, uk_min64(UK_ATT_TB, kend - j0), kr, vr);
    if (tb < 0) { /* keys in no valid block: not seen */
      tb = -tb;
      continue;
    }
    /* Only the 16-key groups the chunk covers (a chunk may end early, at
     * the context's end or before a bad block). */
    const int64_t tbr = uk_ceil_div(tb, UK_W) * UK_W;
    if (mrow) { /* the padding mask (contiguous only) as 0 / -inf per key */
      int any = 0;
      for (int64_t j = 0; j < tbr; ++j) {
        int ok = j < tb && mrow[j0 + j] != 0;
        mb[j] = ok ? 0.0f : NEG_INF;
        any |= ok;
      }
      if (!any) continue;
    }
    int64_t nk_max = 0; /* keys of this block that some row may see */
    for (int64_t i = 0; i < nr; ++i) {
      float *si = sc + i * UK_ATT_TB;
      int64_t vis = uk_clamp64(lim[i] - j0 + 1, 0, tb);
      kiln_v16f vmax = uk_splat(NEG_INF);
      for (int64_t c = 0; c < tbr; c += UK_W) {
        kiln_v16f s16 = uk_splat(NEG_INF);
        if (c < vis) {
          int64_t nv = uk_min64(UK_W, vis - c);
          s16 = uk_dot16(qp[i], kr + c, nv, hd) * a->scale;
          if (mrow) s16 += uk_load(mb + c);
          s16 = iota < (int32_t)nv ? s16 : NEG_INF;
        }
        uk_store(si + c, s16);
        vmax = __builtin_elementwise_max(vmax, s16);
      }
      const float bmax = uk_reduce_max(vmax); /* one reduction per chunk */
      if (bmax == NEG_INF) { /* nothing visible for this row in this block */
        alpha[i] = 1.0f;
        for (int64_t c = 0; c < tbr; c += UK_W) uk_store(si + c, uk_splat(0.0f));
        continue;
      }
      float mnew = m[i] > bmax ? m[i] : bmax;
      alpha[i] = m[i] == NEG_INF ? 0.0f : uk_expf(m[i] - mnew);
      kiln_v16f sum = 0;
      for (int64_t c = 0; c < tbr; c += UK_W) {
        kiln_v16f p = uk_exp_v(uk_load(si + c) - mnew);
        uk_store(si + c, p);
        sum += p;
      }
      l[i] = l[i] * alpha[i] + uk_reduce_add(sum);
      m[i] = mnew;
      nk_max = uk_max64(nk_max, vis);
    }
    if (nk_max == 0) continue;
    for (int64_t i = 0; i < nr; i += UK_ATT_RB) {
      int R = (int)uk_min64(UK_ATT_RB, nr - i);
      uk_pv_any(op + i, sc + i * UK_ATT_TB, alpha + i, R, vr, nk_max, hd, a->blocks != 0);
    }
  }
  for (int64_t i = 0; i < nr; ++i) {
    float inv = l[i] > 0.0f ? 1.0f / l[i] : 0.0f;
    int64_t d = 0;
    for (; d + UK_W <= hd; d += UK_W) uk_store(op[i] + d, uk_load(op[i] + d) * inv);
    for (; d < hd; ++d) op[i][d] *= inv;
  }
}

/*===-- Many rows: query rows as lanes -----------------------------------===*/

/* Work items with at least UK_ATT_LANES_MIN rows put the item's (<= 16)
 * query rows in the 16 lanes: Q^T [hd][16] is built once per item (scaled),
 * and a score tile S^T [keys][16] = K Q^T is a small GEMM (broadcast K[j][d]
 * times the Q^T row d), so the online softmax needs no horizontal reduction:
 * max and sum over keys are lane-wise, and m, l, alpha are vectors. P @ V
 * reads P^T [key][16] and accumulates into an O [16][hd] tile on the stack. */
#define UK_ATT_LANES_MIN 8
#define UK_ATT_KR 6 /* keys per register block of the score GEMM */

/* st[j] (16 lanes) = sum_d kp[j][d] * qt[d] for KR keys (a constant after
 * inlining) whose rows start at kr[0..KR-1]. */
UK_INLINE void uk_att_scores_t(const float *const *kr, int KR, const float *qt, int64_t hd,
                               kiln_v16f *st) {
  kiln_v16f acc[UK_ATT_KR];
  for (int j = 0; j < KR; ++j) acc[j] = 0;
  for (int64_t d = 0; d < hd; ++d) {
    kiln_v16f qv = uk_load(qt + d * UK_W);
    for (int j = 0; j < KR; ++j) acc[j] += kr[j][d] * qv;
  }
  for (int j = 0; j < KR; ++j) st[j] = acc[j];
}

/* o[i][d] = o[i][d] * alpha[i] + sum_j pt[j][i] * v[j][d] for the R rows
 * i0..i0+R-1 of the O tile (row stride ldo; R = 1..6, a constant after
 * inlining: 12 ymm accumulators on AVX2 at R = 6), nk keys, v_j's row vr[j]. */
UK_INLINE void uk_att_pv_t(float *o, int64_t ldo, const float *pt, const float *alpha, int i0,
                           int R, const float *const *vr, int64_t nk, int64_t hd) {
  int64_t d = 0;
  for (; d + UK_W <= hd; d += UK_W) {
    kiln_v16f acc[6];
    for (int i = 0; i < R; ++i) acc[i] = uk_load(o + (i0 + i) * ldo + d) * alpha[i0 + i];
    for (int64_t j = 0; j < nk; ++j) {
      kiln_v16f vv = uk_load(vr[j] + d);
      const float *p = pt + j * UK_W + i0;
      for (int i = 0; i < R; ++i) acc[i] += p[i] * vv;
    }
    for (int i = 0; i < R; ++i) uk_store(o + (i0 + i) * ldo + d, acc[i]);
  }
  for (; d < hd; ++d) {
    for (int i = i0; i < i0 + R; ++i) {
      float acc = o[i * ldo + d] * alpha[i];
      for (int64_t j = 0; j < nk; ++j) acc += pt[j * UK_W + i] * vr[j][d];
      o[i * ldo + d] = acc;
    }
  }
}

UK_INLINE void uk_att_pv_t_any(float *o, int64_t ldo, const float *pt, const float *alpha, int i0,
                               int R, const float *const *vr, int64_t nk, int64_t hd) {
  switch (R) {
    case 1: uk_att_pv_t(o, ldo, pt, alpha, i0, 1, vr, nk, hd); break;
    case 2: uk_att_pv_t(o, ldo, pt, alpha, i0, 2, vr, nk, hd); break;
    case 3: uk_att_pv_t(o, ldo, pt, alpha, i0, 3, vr, nk, hd); break;
    case 4: uk_att_pv_t(o, ldo, pt, alpha, i0, 4, vr, nk, hd); break;
    case 5: uk_att_pv_t(o, ldo, pt, alpha, i0, 5, vr, nk, hd); break;
    default: uk_att_pv_t(o, ldo, pt, alpha, i0, 6, vr, nk, hd); break;
  }
}

/* One work item of nr (UK_ATT_LANES_MIN..16) rows, hd <= UK_ATT_HD_MAX. */
#define UK_ATT_HD_MAX 256
static void uk_att_item_t(const uk_att_src_t *a, int64_t hb, int64_t rr0, int64_t nr) {
  const float NEG_INF = -__builtin_inff();
  const int64_t S = a->S, T = a->T, hd = a->hd;
  float qt[UK_ATT_HD_MAX * UK_W] UK_ALIGN64;     /* Q^T, scaled */
  float ot[UK_W * UK_ATT_HD_MAX] UK_ALIGN64;     /* O, row stride hd */
  float pt[UK_ATT_TB * UK_W] UK_ALIGN64;         /* P^T of one key block */
  float alpha[UK_W] UK_ALIGN64;
  int32_t lim_i[UK_W] UK_ALIGN64;
  float *op[UK_W];
  int64_t maxlim = -1;
  for (int64_t i = 0; i < UK_W; ++i) {
    if (i < nr) {
      int64_t h = hb + (rr0 + i) / S, s = (rr0 + i) % S;
      int64_t off = h * a->hs + s * hd;
      const float *qr = a->q + off;
      op[i] = a->out + off;
      for (int64_t d = 0; d < hd; ++d) qt[d * UK_W + i] = qr[d] * a->scale;
      int64_t lim = a->causal ? uk_min64(T - S + s, T - 1) : T - 1;
      maxlim = uk_max64(maxlim, lim);
      lim_i[i] = (int32_t)lim; /* T < 2^31 */
    } else {
      for (int64_t d = 0; d < hd; ++d) qt[d * UK_W + i] = 0.0f;
      lim_i[i] = -1;
    }
  }
  for (int64_t i = 0; i < UK_W * hd; ++i) ot[i] = 0.0f;
  kiln_v16i limv;
  __builtin_memcpy(&limv, lim_i, sizeof limv);
  kiln_v16f m = uk_splat(NEG_INF), l = 0;
  const int64_t kend = uk_min64(T, maxlim + 1);
  const int64_t *mrow = a->mrow;
  int64_t tb;
  const float *krow[UK_ATT_TB], *vr[UK_ATT_TB];
  for (int64_t j0 = 0; j0 < kend; j0 += tb) {
    tb = uk_att_chunk(a, j0, uk_min64(UK_ATT_TB, kend - j0), krow, vr);
    if (tb < 0) { /* keys in no valid block: not seen */
      tb = -tb;
      continue;
    }
    /* scores, masked, into pt; block max */
    kiln_v16f bmax = uk_splat(NEG_INF);
    for (int64_t j = 0; j < tb; j += UK_ATT_KR) {
      const float *kr[UK_ATT_KR];
      int64_t nv = uk_min64(UK_ATT_KR, tb - j);
      for (int c = 0; c < UK_ATT_KR; ++c) kr[c] = krow[j + (c < nv ? c : nv - 1)];
      kiln_v16f st[UK_ATT_KR];
      uk_att_scores_t(kr, UK_ATT_KR, qt, hd, st);
      for (int c = 0; c < nv; ++c) {
        int64_t jj = j0 + j + c;
        kiln_v16f s = st[c];
        if (mrow && mrow[jj] == 0) s = uk_splat(NEG_INF);
        s = (kiln_v16i)(int32_t)jj <= limv ? s : NEG_INF;
        uk_store(pt + (j + c) * UK_W, s);
        bmax = __builtin_elementwise_max(bmax, s);
      }
    }
    const int64_t nk = tb;
    const kiln_v16f mnew = __builtin_elementwise_max(m, bmax);
    const kiln_v16f msafe = mnew == NEG_INF ? 0.0f : mnew;
    const kiln_v16f al = uk_exp_v(m - msafe); /* m = -inf: 0 */
    kiln_v16f sum = 0;
    for (int64_t j = 0; j < nk; ++j) {
      kiln_v16f p = uk_exp_v(uk_load(pt + j * UK_W) - msafe);
      uk_store(pt + j * UK_W, p);
      sum += p;
    }
    l = l * al + sum;
    m = mnew;
    uk_store(alpha, al);
    int i0 = 0;
    for (; i0 + 6 <= nr; i0 += 6) uk_att_pv_t(ot, hd, pt, alpha, i0, 6, vr, nk, hd);
    if (i0 < nr) uk_att_pv_t_any(ot, hd, pt, alpha, i0, (int)nr - i0, vr, nk, hd);
  }
  float lv[UK_W] UK_ALIGN64;
  uk_store(lv, l);
  for (int64_t i = 0; i < nr; ++i) {
    float inv = lv[i] > 0.0f ? 1.0f / lv[i] : 0.0f;
    const float *orow = ot + i * hd;
    int64_t d = 0;
    for (; d + UK_W <= hd; d += UK_W) uk_store(op[i] + d, uk_load(orow + d) * inv);
    for (; d < hd; ++d) op[i][d] = orow[d] * inv;
  }
}

/* The item's rows hb.. of the kv head's query heads through the fast or the
 * general path. */
UK_INLINE void uk_att_run_item(const uk_att_src_t *a, int64_t hb, int64_t rr0, int64_t nr) {
  if (nr >= UK_ATT_LANES_MIN && a->hd <= UK_ATT_HD_MAX)
    uk_att_item_t(a, hb, rr0, nr);
  else
    uk_att_item(a, hb, rr0, nr);
}

void kiln_uk_attention_f32(const float *q, const float *k, const float *v, const int64_t *mask,
                           int64_t B, int64_t H, int64_t KVH, int64_t S, int64_t T, int64_t hd,
                           float scale, int32_t causal, float *out, int64_t wg, int64_t count) {
  if (B <= 0 || H <= 0 || S <= 0 || hd <= 0) return;
  if (count < 1) count = 1;
  if (wg < 0 || wg >= count) return;
  if (T <= 0 || KVH <= 0) { /* no keys at all: every row is zeros */
    int64_t r0, r1;
    uk_split(B * H * S, wg, count, &r0, &r1);
    for (int64_t i = r0 * hd; i < r1 * hd; ++i) out[i] = 0.0f;
    return;
  }
  /* kv head c serves query heads [c*g, (c+1)*g), the last one also any
   * remainder when KVH does not divide H; heads past H do not exist. */
  const int64_t g = H / KVH > 0 ? H / KVH : 1;
  const int64_t max_rows = (H - (KVH - 1) * g > g ? H - (KVH - 1) * g : g) * S;
  /* Rows per item: 16, or fewer when there are fewer (b, kv head) pairs
   * than workgroups (decode of an MQA model on several threads): each item
   * then reads the whole K/V of its head, but every workgroup has work. */
  int64_t qb = UK_ATT_QB;
  if (B * KVH < count) {
    int64_t per_head = uk_ceil_div(count, B * KVH);
    qb = uk_max64(1, uk_min64(UK_ATT_QB, uk_ceil_div(max_rows, per_head)));
  }
  const int64_t blocks = uk_ceil_div(max_rows, qb);
  const int64_t items = B * KVH * blocks;
  for (int64_t it = wg; it < items; it += count) {
    int64_t b = it / (KVH * blocks), c = (it / blocks) % KVH, blk = it % blocks;
    int64_t hb = uk_min64(c * g, H);
    int64_t he = c == KVH - 1 ? H : uk_min64((c + 1) * g, H);
    int64_t rows = (he - hb) * S, rr0 = blk * qb;
    if (rr0 >= rows) continue;
    uk_att_src_t a = {q + b * H * S * hd, out + b * H * S * hd, S * hd, S, T, hd,
                      k + (b * KVH + c) * T * hd, v + (b * KVH + c) * T * hd,
                      (const int32_t *)0, 0, 0, 0,
                      mask ? mask + b * T : (const int64_t *)0, scale, causal};
    uk_att_run_item(&a, hb, rr0, uk_min64(qb, rows - rr0));
  }
}

/* The paged kernel over f32 pools (k_pool/v_pool) or kv8 pools (k8/v8). */
static void uk_paged_attention(const float *q, const float *k_pool, const float *v_pool,
                               const int8_t *k8, const int8_t *v8, const int32_t *block_tables,
                               const int32_t *seq_lens, const int32_t *query_start, int64_t B,
                               int64_t M, int64_t H, int64_t KVH, int64_t N, int64_t hd,
                               int64_t num_blocks, int64_t block_size, float scale, int32_t causal,
                               float *out, int64_t wg, int64_t count) {
  if (B <= 0 || H <= 0 || N <= 0 || hd <= 0 || KVH <= 0 || block_size <= 0) return;
  if (k8 && hd > UK_ATT_HD8_MAX) return; /* refused by the compiler */
  if (count < 1) count = 1;
  if (wg < 0 || wg >= count) return;
  float kbuf[UK_ATT_TB * UK_ATT_HD8_MAX] UK_ALIGN64; /* kv8 only (64 KiB each) */
  float vbuf[UK_ATT_TB * UK_ATT_HD8_MAX] UK_ALIGN64;
  const int64_t g = H / KVH > 0 ? H / KVH : 1;
  /* Token rows that no sequence's query_start range covers (not produced
   * by a well-formed batch) are zeros, not garbage; each workgroup zeroes
   * those of its share of token rows. Covered rows belong to items. */
  {
    int64_t t0, t1;
    uk_split(N, wg, count, &t0, &t1);
    for (int64_t t = t0; t < t1; ++t) {
      int covered = 0;
      for (int64_t b = 0; b < B && !covered; ++b)
        covered = query_start[b] <= t && t < query_start[b + 1] && query_start[b + 1] <= N;
      if (covered) continue;
      for (int64_t h = 0; h < H; ++h)
        for (int64_t d = 0; d < hd; ++d) out[(h * N + t) * hd + d] = 0.0f;
    }
  }
  /* Items (sequence, kv head, block of up to 16 rows), numbered across all
   * sequences and dealt round-robin. */
  int64_t it = 0;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t q0 = query_start[b], q1 = query_start[b + 1];
    if (q0 < 0 || q1 > N || q1 <= q0) continue;
    const int64_t S = q1 - q0;
    const int64_t T = uk_min64(seq_lens[b], M * block_size);
    for (int64_t c = 0; c < KVH; ++c) {
      int64_t hb = uk_min64(c * g, H);
      int64_t he = c == KVH - 1 ? H : uk_min64((c + 1) * g, H);
      int64_t rows = (he - hb) * S;
      for (int64_t rr0 = 0; rr0 < rows; rr0 += UK_ATT_QB, ++it) {
        if (it % count != wg) continue;
        uk_att_src_t a = {q + q0 * hd, out + q0 * hd, N * hd, S, T < 0 ? 0 : T, hd,
                          k8 ? (const float *)0 : k_pool + c * hd,
                          k8 ? (const float *)0 : v_pool + c * hd, block_tables + b * M,
                          block_size, KVH * hd, num_blocks, (const int64_t *)0, scale, causal,
                          k8 ? k8 + c * (hd + 4) : (const int8_t *)0,
                          v8 ? v8 + c * (hd + 4) : (const int8_t *)0, KVH * (hd + 4), kbuf, vbuf};
        /* Always the per-row path, one FMA chain per row in P @ V: a row's
         * result then does not depend on how many rows share its item, i.e.
         * on how the scheduler chunked or batched it (the rows-as-lanes
         * path would also be invariant, but wastes 3/4 of its lanes on a
         * decode's few rows, and decode is what batching runs most). */
        uk_att_item(&a, hb, rr0, uk_min64(UK_ATT_QB, rows - rr0));
      }
    }
  }
}

void kiln_uk_paged_attention_f32(const float *q, const float *k_pool, const float *v_pool,
                                 const int32_t *block_tables, const int32_t *seq_lens,
                                 const int32_t *query_start, int64_t B, int64_t M, int64_t H,
                                 int64_t KVH, int64_t N, int64_t hd, int64_t num_blocks,
                                 int64_t block_size, float scale, int32_t causal, float *out,
                                 int64_t wg, int64_t count) {
  uk_paged_attention(q, k_pool, v_pool, (const int8_t *)0, (const int8_t *)0, block_tables,
                     seq_lens, query_start, B, M, H, KVH, N, hd, num_blocks, block_size, scale,
                     causal, out, wg, count);
}

void kiln_uk_paged_attention_q8(const float *q, const int8_t *k_pool, const int8_t *v_pool,
                                const int32_t *block_tables, const int32_t *seq_lens,
                                const int32_t *query_start, int64_t B, int64_t M, int64_t H,
                                int64_t KVH, int64_t N, int64_t hd, int64_t num_blocks,
                                int64_t block_size, float scale, int32_t causal, float *out,
                                int64_t wg, int64_t count) {
  uk_paged_attention(q, (const float *)0, (const float *)0, k_pool, v_pool, block_tables,
                     seq_lens, query_start, B, M, H, KVH, N, hd, num_blocks, block_size, scale,
                     causal, out, wg, count);
}

void kiln_uk_kv_cache_write_f32(const float *cur, const int32_t *slots, int64_t KVH, int64_t N,
                                int64_t hd, int64_t num_slots, float *pool, int64_t wg,
                                int64_t count) {
  if (count < 1) count = 1;
  int64_t t0, t1;
  uk_split(N, wg, count, &t0, &t1);
  for (int64_t t = t0; t < t1; ++t) {
    const int64_t slot = slots[t];
    if (slot < 0 || slot >= num_slots) continue; /* -1: no cache write (padding) */
    for (int64_t c = 0; c < KVH; ++c) {
      const float *src = cur + (c * N + t) * hd;
      float *dst = pool + (slot * KVH + c) * hd;
      for (int64_t d = 0; d < hd; ++d) dst[d] = src[d];
    }
  }
}

void kiln_uk_kv_cache_write_q8(const float *cur, const int32_t *slots, int64_t KVH, int64_t N,
                               int64_t hd, int64_t num_slots, int8_t *pool, int64_t wg,
                               int64_t count) {
  if (count < 1) count = 1;
  int64_t t0, t1;
  uk_split(N, wg, count, &t0, &t1);
  for (int64_t t = t0; t < t1; ++t) {
    const int64_t slot = slots[t];
    if (slot < 0 || slot >= num_slots) continue; /* -1: no cache write (padding) */
    for (int64_t c = 0; c < KVH; ++c) {
      const float *src = cur + (c * N + t) * hd;
      int8_t *dst = pool + (slot * KVH + c) * (hd + 4);
      /* symmetric, per token and head: s = max|x| / 127, q = round(x / s) */
      float amax = 0.0f;
      for (int64_t d = 0; d < hd; ++d) {
        float a = src[d] < 0.0f ? -src[d] : src[d];
        amax = a > amax ? a : amax;
      }
      const float s = amax / 127.0f, inv = amax > 0.0f ? 127.0f / amax : 0.0f;
      for (int64_t d = 0; d < hd; ++d) {
        /* round half away from zero, without libm */
        float r = src[d] * inv;
        int32_t v = (int32_t)(r + (r < 0.0f ? -0.5f : 0.5f));
        dst[d] = (int8_t)(v > 127 ? 127 : (v < -127 ? -127 : v));
      }
      __builtin_memcpy(dst + hd, &s, sizeof s);
    }
  }
}
