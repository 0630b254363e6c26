/*===- ukernels.h - kiln CPU microkernels: the compiler <-> C contract -----===*
 *
 * Freestanding C11 microkernels that kiln-compile links, as LLVM bitcode, into
 * every generated CPU kernel .so and optimizes for the target's features
 * (see README.md in this folder). These signatures are the contract with the
 * compiler side: keep them exactly.
 *
 * Conventions shared by every function:
 * - Tensors are dense row-major f32 unless stated; sizes are int64_t; index
 *   tensors are int64_t and out-of-range ids/positions are clamped into range.
 * - Activations may be unaligned; packed weights are 64-byte aligned.
 * - Threading: a ukernel is called `count` times concurrently with
 *   wg = 0..count-1. Each call writes a disjoint part of the result, the union
 *   is the full result, and no call reads what another writes. Any count >= 1
 *   is correct (count may exceed the work items; a wg outside [0, count)
 *   does nothing).
 * - Sizes <= 0 mean an empty tensor (nothing is read or written beyond what
 *   the remaining sizes imply).
 *
 *===----------------------------------------------------------------------===*/
#ifndef KILN_TARGETS_CPU_UKERNELS_UKERNELS_H_
#define KILN_TARGETS_CPU_UKERNELS_UKERNELS_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Activation codes of kiln_uk_matmul_f32 / kiln_uk_matmul_glu_f32. */
enum {
  KILN_UK_ACT_NONE = 0,
  KILN_UK_ACT_GELU_TANH = 1,
  KILN_UK_ACT_SILU = 2,
  KILN_UK_ACT_GELU_ERF = 3,
};

/** Packed weight layout for B [K, N] (row-major, y = x @ B): panels of 16
 *  columns; panel p holds, for k = 0..K-1, the 16 floats B[k, 16p .. 16p+15]
 *  (zero padded past N). Returns the size in floats: K * ceil(N/16) * 16
 *  (0 when K or N <= 0). */
int64_t kiln_uk_packed_b_size(int64_t K, int64_t N);

/** Packs B [K, N] row-major into `packed` (kiln_uk_packed_b_size(K, N)
 *  floats, padding included). Single-threaded; used at compile time. */
void kiln_uk_pack_b_f32(const float *B, int64_t K, int64_t N, float *packed);

/** Same layout from B^T given as [N, K] row-major (tied embeddings:
 *  logits = x @ E^T, pack with BT = E). */
void kiln_uk_pack_bt_f32(const float *BT, int64_t K, int64_t N, float *packed);

/** C[M,N] = act(A[M,K] @ B + bias) + residual. Bpacked is B in the panel
 *  layout above; bias [N] or NULL; residual [M,N] or NULL and may alias C
 *  (C == residual works). act: KILN_UK_ACT_*; an unknown code means none.
 *  Small M (decode) streams the packed weights, panels split across
 *  workgroups; large M runs a cache-blocked GEMM on (row block, panel group)
 *  tiles. */
void kiln_uk_matmul_f32(const float *A, int64_t M, int64_t K, const float *Bpacked, int64_t N,
                        const float *bias, const float *residual, int32_t act, float *C,
                        int64_t wg, int64_t count);

/** SwiGLU / GeGLU: C[M,N] = act(A @ Bg) * (A @ Bu), both weights packed like
 *  above; act as above (KILN_UK_ACT_SILU for LLaMA). */
void kiln_uk_matmul_glu_f32(const float *A, int64_t M, int64_t K, const float *Bg_packed,
                            const float *Bu_packed, int64_t N, int32_t act, float *C,
                            int64_t wg, int64_t count);

/** Quantized weights (kiln-llm-quantize; ukernels README.md): W [K, N] with
 *  W[k, n] = (q[k, n] - z[g, n]) * s[g, n], g = k / group. Layout, per panel
 *  of 16 columns (zero padded past N): the integers, k-major: bits 8, 16
 *  int8 per k; bits 4, per block of 8 k, 16 little-endian uint32 words, word
 *  j holding q[8b + t, j] (0..15) in bits 4t..4t+3; after all panels'
 *  integers, per (panel, group): 16 f16
 *  scales, then 16 int8 zero points when the weight has them. Returns the
 *  size in bytes, 0 for a layout the kernels do not take (bits not 4 or 8,
 *  group not dividing K, group not a multiple of 8 for bits 4, more than
 *  16384 groups with zero points). */
int64_t kiln_uk_packed_q_size(int64_t K, int64_t N, int32_t bits, int64_t group, int32_t has_zp);

/** Packs q [K, N] (int8; bits 4: 0..15), scales [K/group, N] (f16 bits) and
 *  zero_points [K/group, N] (NULL: none) into `packed`
 *  (kiln_uk_packed_q_size bytes). Single-threaded; used at compile time. */
void kiln_uk_pack_q(const int8_t *q, const uint16_t *scales, const int8_t *zero_points,
                    int64_t K, int64_t N, int32_t bits, int64_t group, uint8_t *packed);

/** kiln_uk_matmul_f32 with a packed quantized weight Bq (has_zp: whether it
 *  holds zero points). The weight is unpacked in registers, never to memory
 *  beyond a 16 KiB block; a row's result is bitwise the same for any M. */
void kiln_uk_matmul_q_f32(const float *A, int64_t M, int64_t K, const uint8_t *Bq, int64_t N,
                          int32_t bits, int64_t group, int32_t has_zp, const float *bias,
                          const float *residual, int32_t act, float *C, int64_t wg,
                          int64_t count);

/** kiln_uk_matmul_glu_f32 with both weights packed quantized (same bits,
 *  group and has_zp). */
void kiln_uk_matmul_glu_q_f32(const float *A, int64_t M, int64_t K, const uint8_t *Bg_q,
                              const uint8_t *Bu_q, int64_t N, int32_t bits, int64_t group,
                              int32_t has_zp, int32_t act, float *C, int64_t wg, int64_t count);

/** Whether kiln_uk_matmul_qa8_f32 takes K rows in groups of `group`
 *  (K <= 131072, K / group <= 4096): the compiler asks before packing. */
int32_t kiln_uk_qa8_fits(int64_t K, int64_t group);

/** int4 weights x int8 activations ("w4gNa8"): Bq packed by kiln_uk_pack_q
 *  with bits == 4 (anything else computes nothing), and each group of
 *  `group` inputs of a row of A quantized to int8 at run time as for
 *  kiln_uk_matmul_q8a8_f32 (amax over the group; s_a[g] = amax / 127):
 *  v[g, n] = sum_{k in g} qa[k] q[k, n] - z[g, n] * sum_{k in g} qa[k] in
 *  int32 (exact), then y[n] = sum over g in order of
 *  s[g, n] * ((float)v[g, n] * s_a[g]) in f32, and the epilogue of
 *  kiln_uk_matmul_f32. A must be finite; kiln_uk_qa8_fits(K, group).
 *  A row's result is bitwise the same for any M and count, and for the
 *  _avx2 and _dotprod variants below. */
void kiln_uk_matmul_qa8_f32(const float *A, int64_t M, int64_t K, const uint8_t *Bq, int64_t N,
                            int32_t bits, int64_t group, int32_t has_zp, const float *bias,
                            const float *residual, int32_t act, float *C, int64_t wg,
                            int64_t count);

/** GLU form of kiln_uk_matmul_qa8_f32 (both weights alike). */
void kiln_uk_matmul_glu_qa8_f32(const float *A, int64_t M, int64_t K, const uint8_t *Bg_q,
                                const uint8_t *Bu_q, int64_t N, int32_t bits, int64_t group,
                                int32_t has_zp, int32_t act, float *C, int64_t wg,
                                int64_t count);

#if defined(__x86_64__)
/** x86-64 only, for targets with AVX2 (vpmaddubsw) and F16C: the same
 *  bits; kiln-compile calls these names where the target has +avx2,+f16c. */
void kiln_uk_matmul_qa8_f32_avx2(const float *A, int64_t M, int64_t K, const uint8_t *Bq,
                                 int64_t N, int32_t bits, int64_t group, int32_t has_zp,
                                 const float *bias, const float *residual, int32_t act, float *C,
                                 int64_t wg, int64_t count);
void kiln_uk_matmul_glu_qa8_f32_avx2(const float *A, int64_t M, int64_t K, const uint8_t *Bg_q,
                                     const uint8_t *Bu_q, int64_t N, int32_t bits, int64_t group,
                                     int32_t has_zp, int32_t act, float *C, int64_t wg,
                                     int64_t count);
/** The same with vpdpbusd on 512-bit registers (x86 AVX-512 F, BW and
 *  VNNI): kiln-compile calls these names where the target has
 *  +avx512f,+avx512bw,+avx512vnni (and AVX2, F16C); the same bits. */
void kiln_uk_matmul_qa8_f32_vnni(const float *A, int64_t M, int64_t K, const uint8_t *Bq,
                                 int64_t N, int32_t bits, int64_t group, int32_t has_zp,
                                 const float *bias, const float *residual, int32_t act, float *C,
                                 int64_t wg, int64_t count);
void kiln_uk_matmul_glu_qa8_f32_vnni(const float *A, int64_t M, int64_t K, const uint8_t *Bg_q,
                                     const uint8_t *Bu_q, int64_t N, int32_t bits, int64_t group,
                                     int32_t has_zp, int32_t act, float *C, int64_t wg,
                                     int64_t count);
#endif
#if defined(__aarch64__)
/** aarch64 only, for targets with the dot product (+dotprod, Armv8.2+): the
 *  same bits (sdot); kiln-compile calls these names where the target has
 *  +dotprod. */
void kiln_uk_matmul_qa8_f32_dotprod(const float *A, int64_t M, int64_t K, const uint8_t *Bq,
                                    int64_t N, int32_t bits, int64_t group, int32_t has_zp,
                                    const float *bias, const float *residual, int32_t act,
                                    float *C, int64_t wg, int64_t count);
void kiln_uk_matmul_glu_qa8_f32_dotprod(const float *A, int64_t M, int64_t K,
                                        const uint8_t *Bg_q, const uint8_t *Bu_q, int64_t N,
                                        int32_t bits, int64_t group, int32_t has_zp, int32_t act,
                                        float *C, int64_t wg, int64_t count);
#endif

/** w8a8 (int8 weights x int8 activations): W [K, N] = q[k, n] * s_w[n],
 *  q int8 (symmetric), one scale per column (f16 bits). Layout: K4 = K
 *  rounded up to a multiple of 4, P = ceil(N/16) panels of 16 columns; per
 *  panel K4/4 blocks of 64 bytes, block b holding, for column j = 0..15, the
 *  4 bytes q[4b..4b+3, 16p+j] (zero padded past K and N), i.e. each 32-bit
 *  lane j is one column's 4 consecutive k (the operand order of sdot/udot
 *  and of VNNI); then P * 16 f32 scales (0 past N). Returns the size in
 *  bytes, P * (16 * K4 + 64); 0 when K <= 0, N <= 0 or K > 32768 (the int32
 *  sums of the kernels stay exact up to there). */
int64_t kiln_uk_packed_q8a8_size(int64_t K, int64_t N);

/** Packs q [K, N] (int8) and scales_f16 [N] into `packed`
 *  (kiln_uk_packed_q8a8_size bytes; nothing is written when it is 0).
 *  Single-threaded; used at compile time. */
void kiln_uk_pack_q8a8(const int8_t *q, const uint16_t *scales_f16, int64_t K, int64_t N,
                       uint8_t *packed);

/** C[M,N] = act(A @ W + bias) + residual with W packed by kiln_uk_pack_q8a8
 *  and each row of A quantized to int8 at run time: amax = max_k |A[m,k]|;
 *  s_a = amax / 127 and inv = 127 / amax (s_a = 1, inv = 0 when
 *  !(amax > 0)); qa[k] = round half away from zero (A[m,k] * inv), clamped
 *  to [-127, 127]; acc = sum_k qa[k] q[k,n] in int32 (exact); then
 *  ((float)acc * s_a) * s_w[n] in f32, in that order, and the epilogue of
 *  kiln_uk_matmul_f32 (bias [N] or NULL, act, residual [M,N] or NULL, which
 *  may alias C). A must be finite. Panels are split across workgroups, each
 *  quantizing the rows itself; a row's result is bitwise the same for any M
 *  and count, and for the _dotprod variant below. K <= 32768. */
void kiln_uk_matmul_q8a8_f32(const float *A, int64_t M, int64_t K, const uint8_t *Bq, int64_t N,
                             const float *bias, const float *residual, int32_t act, float *C,
                             int64_t wg, int64_t count);

/** GLU form: C = act(A @ Wg) * (A @ Wu), both weights w8a8-packed; A's rows
 *  are quantized once for both (same quantization as above). */
void kiln_uk_matmul_glu_q8a8_f32(const float *A, int64_t M, int64_t K, const uint8_t *Bg_q,
                                 const uint8_t *Bu_q, int64_t N, int32_t act, float *C,
                                 int64_t wg, int64_t count);

#if defined(__aarch64__)
/** aarch64 only, for targets with the dot product (+dotprod, Armv8.2+): the
 *  same functions with an sdot inner loop; bitwise the same results.
 *  kiln-compile calls these names where the target has +dotprod. */
void kiln_uk_matmul_q8a8_f32_dotprod(const float *A, int64_t M, int64_t K, const uint8_t *Bq,
                                     int64_t N, const float *bias, const float *residual,
                                     int32_t act, float *C, int64_t wg, int64_t count);
void kiln_uk_matmul_glu_q8a8_f32_dotprod(const float *A, int64_t M, int64_t K,
                                         const uint8_t *Bg_q, const uint8_t *Bu_q, int64_t N,
                                         int32_t act, float *C, int64_t wg, int64_t count);

#endif

#if defined(__x86_64__)
/** x86-64 only, for targets with AVX2 (vpmaddubsw; kiln-compile calls
 *  these names where the target has +avx2,+f16c): the same bits. */
void kiln_uk_matmul_q8a8_f32_avx2(const float *A, int64_t M, int64_t K, const uint8_t *Bq,
                                  int64_t N, const float *bias, const float *residual, int32_t act,
                                  float *C, int64_t wg, int64_t count);
void kiln_uk_matmul_glu_q8a8_f32_avx2(const float *A, int64_t M, int64_t K, const uint8_t *Bg_q,
                                      const uint8_t *Bu_q, int64_t N, int32_t act, float *C,
                                      int64_t wg, int64_t count);
/** The same with vpdpbusd on 512-bit registers (AVX-512 F, BW and VNNI):
 *  kiln-compile calls these names where the target has them. */
void kiln_uk_matmul_q8a8_f32_vnni(const float *A, int64_t M, int64_t K, const uint8_t *Bq,
                                  int64_t N, const float *bias, const float *residual, int32_t act,
                                  float *C, int64_t wg, int64_t count);
void kiln_uk_matmul_glu_q8a8_f32_vnni(const float *A, int64_t M, int64_t K, const uint8_t *Bg_q,
                                      const uint8_t *Bu_q, int64_t N, int32_t act, float *C,
                                      int64_t wg, int64_t count);
#endif

/** kv8: kiln_uk_paged_attention_f32 over int8 pools [num_blocks,
 *  block_size, KVH, hd + 4] bytes: each (slot, kv head) row is hd int8 values
 *  followed by its f32 scale (value = scale * int8). hd <= 256. */
void kiln_uk_paged_attention_q8(const float *q, const int8_t *k_pool, const int8_t *v_pool,
                                const int32_t *block_tables, const int32_t *seq_lens,
                                const int32_t *query_start, int64_t B, int64_t M, int64_t H,
                                int64_t KVH, int64_t N, int64_t hd, int64_t num_blocks,
                                int64_t block_size, float scale, int32_t causal, float *out,
                                int64_t wg, int64_t count);

/** kv8: kiln_uk_kv_cache_write_f32 into an int8 pool (layout above):
 *  per token and kv head, scale = max|x| / 127 and q = round(x / scale). */
void kiln_uk_kv_cache_write_q8(const float *cur, const int32_t *slots, int64_t KVH, int64_t N,
                               int64_t hd, int64_t num_slots, int8_t *pool, int64_t wg,
                               int64_t count);

/** out[r,:] = x[r,:] / sqrt(mean(x[r,:]^2) + eps) * w, rows = product of the
 *  leading dims, w [D]. Rows are split across workgroups. out may alias x. */
void kiln_uk_rms_norm_f32(const float *x, int64_t rows, int64_t D, const float *w, float eps,
                          float *out, int64_t wg, int64_t count);

/** out[r,:] = (x - mean) / sqrt(var + eps) * w + b (biased variance; b may be
 *  NULL). Rows are split across workgroups. out may alias x. */
void kiln_uk_layer_norm_f32(const float *x, int64_t rows, int64_t D, const float *w, const float *b,
                            float eps, float *out, int64_t wg, int64_t count);

/** Rotary embedding ("rotate_half", LLaMA/NeoX style) on x [B, H, S, hd]:
 *  out = x * cos[pos] + rotate_half(x) * sin[pos] with
 *  rotate_half(x) = concat(-x[hd/2:], x[:hd/2]); cos/sin tables [max_pos, hd];
 *  positions int64 [B, S] (NULL: position s), clamped to [0, max_pos-1].
 *  hd should be even; with an odd hd the last element is only scaled by
 *  cos. max_pos <= 0 copies x.
 *  Rows (b, h, s) are split across workgroups. out may alias x. */
void kiln_uk_rotary_f32(const float *x, int64_t B, int64_t H, int64_t S, int64_t hd,
                        const float *cos_table, const float *sin_table, int64_t max_pos,
                        const int64_t *positions, float *out, int64_t wg, int64_t count);

/** Attention: q [B, H, S, hd], k and v [B, KVH, T, hd], out [B, H, S, hd].
 *  GQA: head h uses kv head h / (H/KVH) (clamped to KVH-1).
 *  score = scale * q.k; causal != 0: query s sits at absolute position
 *  T - S + s and sees keys j <= T - S + s; mask int64 [B, T] or NULL: keys
 *  with mask == 0 are excluded. Softmax over the visible keys; a row with no
 *  visible key yields zeros. Streams over blocks of 64 keys with an online
 *  softmax (never an [S, T] score matrix); the query heads that share a kv
 *  head are processed together so K/V are read once per group. Work items
 *  (b, kv head, block of query rows) are dealt round-robin to workgroups.
 *  hd <= 256 is the fast path; larger hd works, more slowly. */
void kiln_uk_attention_f32(const float *q, const float *k, const float *v, const int64_t *mask,
                           int64_t B, int64_t H, int64_t KVH, int64_t S, int64_t T, int64_t hd,
                           float scale, int32_t causal, float *out, int64_t wg, int64_t count);

/** Attention over a paged KV cache for a flattened batch (the runtime's
 *  `forward` ABI). q and out [1, H, N, hd]: sequence b owns token rows
 *  query_start[b] .. query_start[b+1] (S_b rows), its context holds
 *  T_b = seq_lens[b] tokens (cached + these), and its key j lives in pool
 *  block block_tables[b * M + j / block_size] at offset j % block_size;
 *  pools [num_blocks, block_size, KVH, hd]. causal: row s of the sequence
 *  sits at position T_b - S_b + s. Same online softmax, GQA grouping and
 *  fast paths as kiln_uk_attention_f32; keys are read a block at a time.
 *  Block ids outside [0, num_blocks) are skipped, token rows no sequence
 *  covers are zeros. Items (sequence, kv head, 16 rows) go round-robin to
 *  workgroups. Batch invariant: a row's result is bitwise the same whatever
 *  else is in the batch and however its sequence's rows are chunked (every
 *  item takes the per-row path with one accumulation chain per row; keys go
 *  a block at a time). */
void kiln_uk_paged_attention_f32(const float *q, const float *k_pool, const float *v_pool,
                                 const int32_t *block_tables, const int32_t *seq_lens,
                                 const int32_t *query_start, int64_t B, int64_t M, int64_t H,
                                 int64_t KVH, int64_t N, int64_t hd, int64_t num_blocks,
                                 int64_t block_size, float scale, int32_t causal, float *out,
                                 int64_t wg, int64_t count);

/** pool [num_slots, KVH, hd] (a [num_blocks, block_size, KVH, hd] pool):
 *  row slots[t] receives cur [1, KVH, N, hd] token t, for every kv head;
 *  slots outside [0, num_slots) (-1 = none) are skipped. In place: only
 *  those rows change. Tokens are split across workgroups. */
void kiln_uk_kv_cache_write_f32(const float *cur, const int32_t *slots, int64_t KVH, int64_t N,
                                int64_t hd, int64_t num_slots, float *pool, int64_t wg,
                                int64_t count);

/** out [B, KVH, P + S, hd] = concat(past [B, KVH, P, hd], cur [B, KVH, S, hd])
 *  along axis 2 (P may be 0, then past may be NULL). Rows are split across
 *  workgroups. */
void kiln_uk_kv_append_f32(const float *past, const float *cur, int64_t B, int64_t KVH, int64_t P,
                           int64_t S, int64_t hd, float *out, int64_t wg, int64_t count);

/** x [B, S, H*hd] -> out [B, H, S, hd]. Output rows are split across
 *  workgroups. */
void kiln_uk_split_heads_f32(const float *x, int64_t B, int64_t S, int64_t H, int64_t hd, float *out,
                             int64_t wg, int64_t count);

/** x [B, H, S, hd] -> out [B, S, H*hd] (the inverse of split_heads). */
void kiln_uk_merge_heads_f32(const float *x, int64_t B, int64_t H, int64_t S, int64_t hd, float *out,
                             int64_t wg, int64_t count);

/** out [N, D] = table[ids[i]] (+ pos_table[pos[i]] when pos_table != NULL);
 *  table [V, D], pos_table [max_pos, D], ids/pos int64 [N], both clamped into
 *  range. With pos_table != NULL and pos == NULL the position is i. */
void kiln_uk_embedding_f32(const float *table, int64_t V, int64_t D, const int64_t *ids, int64_t N,
                           const float *pos_table, int64_t max_pos, const int64_t *pos, float *out,
                           int64_t wg, int64_t count);

/** 2:4 sparse weights (kiln-llm-prune): W [K, N], K a multiple of 4, keeps
 *  two of each group of 4 consecutive k per column. values [K/2, N] (f32,
 *  or int8 with bits 8: W = q * scales[n], scales f16 [N]) and indices
 *  [K/2, N] (0..3): row 2g + i holds the i-th kept weight of group g and its
 *  position in the group. Layout, per panel of 16 columns (zero padded past
 *  N): (bits 8) 16 f16 column scales; then per group g of 4 k: 16 values of
 *  the first kept weight, 16 of the second (f32: 64 bytes each; int8: 16),
 *  16 bytes a | b << 2 (a < b the kept positions). Returns the size in
 *  bytes; 0 when K % 4 != 0, K or N <= 0 or bits is not 32 or 8. */
int64_t kiln_uk_packed_s24_size(int64_t K, int64_t N, int32_t bits);

/** Packs values (float or int8 [K/2, N] as bits says), indices [K/2, N] and
 *  (bits 8) scales [N] (f16 bits) into `packed` (kiln_uk_packed_s24_size
 *  bytes). Positions are sorted per group; a repeated position is merged.
 *  Single-threaded; used at compile time. */
void kiln_uk_pack_s24(const void *values, const int8_t *indices, const uint16_t *scales,
                      int64_t K, int64_t N, int32_t bits, uint8_t *packed);

/** kiln_uk_matmul_f32 with a packed 2:4 sparse weight Bs (bits 32 or 8): only
 *  the kept half is read and multiplied. Panels are split across
 *  workgroups; a row's result is bitwise the same for any M. */
void kiln_uk_matmul_s24_f32(const float *A, int64_t M, int64_t K, const uint8_t *Bs, int64_t N,
                            int32_t bits, const float *bias, const float *residual, int32_t act,
                            float *C, int64_t wg, int64_t count);

/** kiln_uk_matmul_glu_f32 with both weights packed 2:4 sparse (same bits). */
void kiln_uk_matmul_glu_s24_f32(const float *A, int64_t M, int64_t K, const uint8_t *Bg_s,
                                const uint8_t *Bu_s, int64_t N, int32_t bits, int32_t act,
                                float *C, int64_t wg, int64_t count);

#ifdef __cplusplus
}  /* extern "C" */
#endif

#endif  /* KILN_TARGETS_CPU_UKERNELS_UKERNELS_H_ */
