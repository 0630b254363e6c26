// llm_test_kernels.c - the kernels of a fake LLM with the kiln cpu ABI (see
// Kernel in kiln.fbs), built as a shared object at test-build time and
// embedded into test artifacts (llm_fake_model.h). The fake model keeps a
// real KV cache, so a test can tell whether the engine carries it over.
#include <stdint.h>

typedef struct {
  void* allocated;
  void* aligned;
  int64_t offset;
  int64_t sizes[2];
  int64_t strides[2];
} Memref2D;

typedef struct {
  void* allocated;
  void* aligned;
  int64_t offset;
  int64_t sizes[3];
  int64_t strides[3];
} Memref3D;

typedef struct {
  void* allocated;
  void* aligned;
  int64_t offset;
  int64_t sizes[4];
  int64_t strides[4];
} Memref4D;

#define AT2(m, T, i, j) (((T*)(m)->aligned)[(m)->offset + (i) * (m)->strides[0] + (j) * (m)->strides[1]])
#define AT3(m, T, i, j, k) \
  (((T*)(m)->aligned)[(m)->offset + (i) * (m)->strides[0] + (j) * (m)->strides[1] + (k) * (m)->strides[2]])
#define AT4(m, T, i, j, k, l)                                                                          \
  (((T*)(m)->aligned)[(m)->offset + (i) * (m)->strides[0] + (j) * (m)->strides[1] + (k) * (m)->strides[2] + \
                      (l) * (m)->strides[3]])

/// present[b,h,t,d] = past[b,h,t,d] for t < P, then src[b,t-P] for the S
/// new tokens: the cache is Concat(past, new) as in the HF exports.
void kiln_llm_test_append(void** args, int64_t workgroup_id, int64_t workgroup_count) {
  (void)workgroup_id;
  (void)workgroup_count;
  const Memref2D* src = (const Memref2D*)args[0];
  const Memref4D* past = (const Memref4D*)args[1];
  const Memref4D* present = (const Memref4D*)args[2];
  int64_t P = past->sizes[2];
  for (int64_t b = 0; b < present->sizes[0]; ++b)
    for (int64_t h = 0; h < present->sizes[1]; ++h)
      for (int64_t t = 0; t < present->sizes[2]; ++t)
        for (int64_t d = 0; d < present->sizes[3]; ++d)
          AT4(present, float, b, h, t, d) =
              t < P ? AT4(past, float, b, h, t, d) : (float)AT2(src, int64_t, b, t - P);
}

/// logits[b,s,v] = -0.5 * |v - target| with target = (31 * sum(key) + 7 *
/// sum(value) + 3) mod V over the cache rows 0 .. P+s (causal).
void kiln_llm_test_logits(void** args, int64_t workgroup_id, int64_t workgroup_count) {
  (void)workgroup_id;
  (void)workgroup_count;
  const Memref4D* key = (const Memref4D*)args[0];
  const Memref4D* value = (const Memref4D*)args[1];
  const Memref3D* logits = (const Memref3D*)args[2];
  int64_t S = logits->sizes[1], V = logits->sizes[2];
  int64_t P = key->sizes[2] - S;
  for (int64_t b = 0; b < logits->sizes[0]; ++b)
    for (int64_t s = 0; s < S; ++s) {
      int64_t a = 0, c = 0;
      for (int64_t t = 0; t <= P + s; ++t) {
        a += (int64_t)AT4(key, float, b, 0, t, 0);
        c += (int64_t)AT4(value, float, b, 0, t, 0);
      }
      int64_t target = (31 * a + 7 * c + 3) % V;
      for (int64_t v = 0; v < V; ++v) AT3(logits, float, b, s, v) = -0.5f * (float)(v > target ? v - target : target - v);
    }
}
