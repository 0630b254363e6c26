//===- Quantize.cpp - llm-quantize: integer weights for llm matmuls ---------===//
//
// Weight quantization on the llm dialect. Each constant f32 weight [K, N] of
// a linear layer becomes
//
//   %w = llm.dequantize %q scales %s [zero_points %z] {group_size = G}
//
// over integer constants, and the matmul reads %w. Schemes:
//   w8     int8, symmetric, one scale per output column (G = K):
//          s = max|W| / 127, q = round(W / s) in [-127, 127];
//   w4gG   int4, asymmetric, one scale and zero point per G rows of K and
//          per column: the range [min(W, 0), max(W, 0)] (zero is always
//          exactly representable) in 15 steps, z = round(-min / s),
//          q = round(W / s) + z in [0, 15]; w4 is w4gK (per output column).
// Scales are rounded to f16 before the integers are chosen, so q is the
// best integer for the scale the kernels actually use.
//
// Methods (how the integers are chosen; the stored form is the same):
//   rtn    round to nearest, as above.
//   awq    activation-aware (Lin et al. 2023). Where every reader of a norm
//          output is a quantized weight (q/k/v, gate/up, fc), the K rows of
//          those weights are scaled by s = mean|x|^a and the norm's weight
//          (and bias) by 1/s, which leaves the f32 function unchanged; a is
//          searched over [0, 1) for the smallest output error
//          tr(D^T X^T X D), D = W - s^-1 Q(s W), over the calibration
//          activations (X^T X's diagonal only when the full product would
//          be slow). A gated MLP's down rows are scaled the same way with
//          1/s folded into the up columns (silu(x g) * (x u / s) feeds
//          s * down). Then every weight's groups get a clipping ratio of
//          their range (1, 0.95, .. 0.55) with the same output error, on
//          the group's block of X^T X.
//   gptq   GPTQ (Frantar et al. 2022): rows of K one at a time, each row
//          rounded and its error spread over the rows not yet rounded
//          through the upper Cholesky factor of (X^T X + damp I)^-1 (damp
//          1 % of the mean diagonal), 128 rows at a time with one product
//          per block for the rest. Rows go by decreasing x^2 energy
//          (act-order), with each group's scales and zero points fixed from
//          the weights first (as rtn chooses them), so groups stay
//          contiguous rows of K; without act-order they are chosen when a
//          group's first row comes up.
//
// The f32 weight is released as soon as it is quantized; lower-llm fuses the
// dequantize into the matmul kernel, so the f32 weight never exists again.
//
//===----------------------------------------------------------------------===//
#include "compiler/transforms/Quantize.h"

#include "compiler/transforms/GraphMatch.h"
#include "compiler/transforms/LinearWeights.h"
#include "compiler/transforms/QuantizeMath.h"
#include "dialects/llm/IR/LlmDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/Parallel.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <numeric>

using namespace mlir;

namespace kiln {

std::string QuantScheme::name() const {
  std::string s = "w" + std::to_string(bits);
  if (group)
    s += "g" + std::to_string(group);
  if (activationBits)
    s += "a" + std::to_string(activationBits);
  return s;
}

std::optional<QuantScheme> parseWeightScheme(StringRef name) {
  QuantScheme s;
  if (name == "w8" || name == "w4") {
    s.bits = name == "w8" ? 8 : 4;
    return s;
  }
  if (name == "w8a8") {
    s.bits = 8;
    s.activationBits = 8;
    s.activationsGiven = true;
    return s;
  }
  // int4: an optional activation suffix.
  if (name.starts_with("w4")) {
    if (name.consume_back("a8"))
      s.activationBits = 8, s.activationsGiven = true;
    else if (name.consume_back("a32"))
      s.activationsGiven = true;
    if (name == "w4") {
      s.bits = 4;
      return s;
    }
  }
  if (name.consume_front("w4g"))
    s.bits = 4;
  else if (name.consume_front("w8g"))
    s.bits = 8;
  else
    return std::nullopt;
  if (name.getAsInteger(10, s.group) || s.group <= 0 || (s.bits == 4 && s.group % 8))
    return std::nullopt;
  return s;
}

std::optional<QuantMethod> parseQuantMethod(StringRef name) {
  if (name == "rtn")
    return QuantMethod::Rtn;
  if (name == "awq")
    return QuantMethod::Awq;
  if (name == "gptq")
    return QuantMethod::Gptq;
  if (name == "smoothquant")
    return QuantMethod::SmoothQuant;
  return std::nullopt;
}

StringRef quantMethodName(QuantMethod method) {
  switch (method) {
  case QuantMethod::Rtn:
    return "rtn";
  case QuantMethod::Awq:
    return "awq";
  case QuantMethod::Gptq:
    return "gptq";
  case QuantMethod::SmoothQuant:
    return "smoothquant";
  }
  return "rtn";
}

namespace {

struct Quantized {
  std::vector<int8_t> q;        // [K, N]
  std::vector<uint16_t> scales; // [G, N] f16 bits
  std::vector<int8_t> zeros;    // [G, N], empty when symmetric
};

/// The integer grid of a scheme: int4 asymmetric 0..15, int8 symmetric
/// -127..127.
struct Grid {
  explicit Grid(int bits) : asym(bits == 4) {}
  bool asym;
};

/// The f16 scale and zero point of one group column spanning [lo, hi]
/// (asymmetric: lo <= 0 <= hi; symmetric: hi = max|w|). False when the
/// scale is not a finite f16.
bool chooseParams(Grid g, float lo, float hi, uint16_t &half, float &scale, float &zero) {
  float s = g.asym ? (hi - lo) / 15.0f : hi / 127.0f;
  if (!std::isfinite(s))
    return false;
  half = toHalf(s);
  if ((half & 0x7c00) == 0x7c00)
    return false;
  scale = fromHalf(half);
  zero = 0.0f;
  if (g.asym && scale > 0.0f)
    zero = std::clamp(std::nearbyint(-lo / scale), 0.0f, 15.0f);
  return true;
}

/// The integer for v (as a float); 0 when the scale is 0 (an all-zero group
/// column: q = z = 0).
inline float quantizeValue(Grid g, float v, float scale, float zero) {
  if (scale <= 0.0f)
    return 0.0f;
  float r = std::nearbyint(v / scale);
  return g.asym ? std::clamp(r + zero, 0.0f, 15.0f) : std::clamp(r, -127.0f, 127.0f);
}

/// The range round to nearest takes for each column of `rows` rows of w
/// (row stride N).
void columnRanges(Grid g, const float *w, int64_t rows, int64_t N, float *lo, float *hi) {
  std::fill(lo, lo + N, 0.0f);
  std::fill(hi, hi + N, 0.0f);
  for (int64_t k = 0; k < rows; ++k)
    for (int64_t n = 0; n < N; ++n) {
      float v = w[k * N + n];
      if (g.asym) {
        lo[n] = std::min(lo[n], v);
        hi[n] = std::max(hi[n], v);
      } else {
        hi[n] = std::max(hi[n], std::fabs(v));
      }
    }
}

/// Round-to-nearest quantization of w [K, N], each group column's range
/// shrunk by clip[g, N + n] when given; false when a scale does not fit in
/// f16.
bool quantizeRtn(ArrayRef<float> w, int64_t K, int64_t N, int bits, int64_t group,
                 Quantized &out, const float *clip = nullptr) {
  const int64_t G = K / group;
  const Grid grid(bits);
  out.q.assign(K * N, 0);
  out.scales.assign(G * N, 0);
  out.zeros.clear();
  if (grid.asym)
    out.zeros.assign(G * N, 0);
  std::vector<float> lo(N), hi(N), scale(N), zero(N);
  for (int64_t g = 0; g < G; ++g) {
    columnRanges(grid, &w[g * group * N], group, N, lo.data(), hi.data());
    for (int64_t n = 0; n < N; ++n) {
      float r = clip ? clip[g * N + n] : 1.0f;
      uint16_t h;
      if (!chooseParams(grid, lo[n] * r, hi[n] * r, h, scale[n], zero[n]))
        return false;
      out.scales[g * N + n] = h;
      if (grid.asym)
        out.zeros[g * N + n] = (int8_t)zero[n];
    }
    for (int64_t k = g * group; k < (g + 1) * group; ++k)
      for (int64_t n = 0; n < N; ++n)
        out.q[k * N + n] = (int8_t)quantizeValue(grid, w[k * N + n], scale[n], zero[n]);
  }
  return true;
}

/// The f32 values the kernels read for `qz`.
void dequantize(const Quantized &qz, int64_t K, int64_t N, int64_t group, float *out) {
  std::vector<float> scale(N), zero(N, 0.0f);
  for (int64_t k = 0; k < K; ++k) {
    if (k % group == 0)
      for (int64_t n = 0; n < N; ++n) {
        scale[n] = fromHalf(qz.scales[(k / group) * N + n]);
        if (!qz.zeros.empty())
          zero[n] = qz.zeros[(k / group) * N + n];
      }
    for (int64_t n = 0; n < N; ++n)
      out[k * N + n] = (qz.q[k * N + n] - zero[n]) * scale[n];
  }
}

/// sum over columns n of d_n^T H d_n for D [K, N], H symmetric [K, K] with
/// row stride ldh; only H's diagonal when !full.
double outputError(const float *D, int64_t K, int64_t N, const float *H, int64_t ldh, bool full,
                   std::vector<float> &scratch) {
  double e = 0.0;
  if (!full) {
    for (int64_t k = 0; k < K; ++k) {
      double row = 0.0;
      for (int64_t n = 0; n < N; ++n)
        row += double(D[k * N + n]) * D[k * N + n];
      e += H[k * ldh + k] * row;
    }
    return e;
  }
  scratch.assign(K * N, 0.0f);
  qmath::gemmTN(K, K, N, 1.0f, H, ldh, D, N, scratch.data(), N);
  for (int64_t i = 0; i < K * N; ++i)
    e += double(D[i]) * scratch[i];
  return e;
}

/// AWQ's clipping search: for each group column, the ratio of its range
/// (1, 0.95, .. 0.55) whose rounding gives the smallest d^T H_gg d, H_gg
/// the group's diagonal block of H (its diagonal alone past 128 rows).
/// Returns the ratios [G, N].
std::vector<float> searchClip(ArrayRef<float> w, int64_t K, int64_t N, int bits, int64_t group,
                              const float *H) {
  const Grid grid(bits);
  const int64_t G = K / group;
  const bool full = group <= 128;
  std::vector<float> best(G * N, 1.0f);
  llvm::parallelFor(0, G, [&](size_t g) {
    const float *wg = &w[g * group * N];
    const float *hg = H + g * group * K + g * group;
    std::vector<float> lo(N), hi(N), D(group * N), E, bestErr(N, std::numeric_limits<float>::max());
    std::vector<float> scale(N), zero(N);
    std::vector<char> valid(N);
    columnRanges(grid, wg, group, N, lo.data(), hi.data());
    for (int i = 0; i < 10; ++i) {
      const float r = 1.0f - 0.05f * i;
      for (int64_t n = 0; n < N; ++n) {
        uint16_t h;
        valid[n] = chooseParams(grid, lo[n] * r, hi[n] * r, h, scale[n], zero[n]);
      }
      for (int64_t k = 0; k < group; ++k)
        for (int64_t n = 0; n < N; ++n) {
          float v = wg[k * N + n];
          float q = quantizeValue(grid, v, scale[n], zero[n]);
          D[k * N + n] = valid[n] ? v - (q - zero[n]) * scale[n] : 0.0f;
        }
      std::vector<double> err(N, 0.0);
      if (full) {
        E.assign(group * N, 0.0f);
        qmath::gemmTN(group, group, N, 1.0f, hg, K, D.data(), N, E.data(), N);
        for (int64_t k = 0; k < group; ++k)
          for (int64_t n = 0; n < N; ++n)
            err[n] += double(D[k * N + n]) * E[k * N + n];
      } else {
        for (int64_t k = 0; k < group; ++k)
          for (int64_t n = 0; n < N; ++n)
            err[n] += double(hg[k * K + k]) * D[k * N + n] * D[k * N + n];
      }
      for (int64_t n = 0; n < N; ++n)
        if (valid[n] && err[n] < bestErr[n]) {
          bestErr[n] = (float)err[n];
          best[g * N + n] = r;
        }
    }
  });
  return best;
}

/// The upper factor U of (H + damp I)^-1 = U^T U that GPTQ propagates
/// errors with, H = X^T X in the order `perm` (identity when empty); rows
/// whose channel never saw a nonzero activation are `dead`.
struct GptqFactor {
  std::vector<float> u;
  std::vector<char> dead;
};

bool factorGptq(const ActivationStats &st, double dampening, ArrayRef<int64_t> perm,
                GptqFactor &f) {
  const int64_t K = st.channels;
  std::vector<float> h(K * K);
  auto at = [&](int64_t i, int64_t j) {
    return perm.empty() ? st.xtx[i * K + j] : st.xtx[perm[i] * K + perm[j]];
  };
  f.dead.assign(K, 0);
  double mean = 0.0;
  for (int64_t i = 0; i < K; ++i) {
    int64_t c = perm.empty() ? i : perm[i];
    f.dead[c] = st.xtx[c * K + c] <= 0.0f;
    mean += f.dead[c] ? 1.0 : st.xtx[c * K + c];
  }
  mean /= K;
  // In reversed order: the upper Cholesky factor of the reversed matrix,
  // inverted and reversed back, is the upper factor of the inverse.
  for (double damp = dampening * mean; damp <= mean; damp *= 10.0) {
    for (int64_t i = 0; i < K; ++i)
      for (int64_t j = i; j < K; ++j) {
        float v = at(K - 1 - i, K - 1 - j);
        if (i == j)
          v = (v <= 0.0f ? 1.0f : v) + (float)damp;
        else if (f.dead[perm.empty() ? K - 1 - i : perm[K - 1 - i]] ||
                 f.dead[perm.empty() ? K - 1 - j : perm[K - 1 - j]])
          v = 0.0f;
        h[i * K + j] = v;
      }
    if (!qmath::choleskyUpper(h.data(), K))
      continue;
    std::vector<float> y(K * K);
    qmath::invertUpperTransposed(h.data(), y.data(), K);
    f.u.assign(K * K, 0.0f);
    for (int64_t i = 0; i < K; ++i)
      for (int64_t j = i; j < K; ++j)
        f.u[i * K + j] = y[(K - 1 - i) * K + (K - 1 - j)];
    return true;
  }
  return false;
}

/// GPTQ of w [K, N] with the factor of its input's Hessian (rows in the
/// order `perm` when given: act-order, with group scales fixed from the
/// weights first); false when a scale does not fit in f16.
bool quantizeGptq(ArrayRef<float> w0, int64_t K, int64_t N, int bits, int64_t group,
                  const GptqFactor &f, ArrayRef<int64_t> perm, int64_t blockSize, Quantized &out) {
  const Grid grid(bits);
  const int64_t G = K / group;
  auto row = [&](int64_t i) { return perm.empty() ? i : perm[i]; };
  // The working copy, in quantization order; dead channels' rows are 0.
  std::vector<float> w(K * N);
  for (int64_t i = 0; i < K; ++i)
    if (!f.dead[row(i)])
      std::memcpy(&w[i * N], &w0[row(i) * N], N * sizeof(float));
  out.q.assign(K * N, 0);
  out.scales.assign(G * N, 0);
  out.zeros.clear();
  if (grid.asym)
    out.zeros.assign(G * N, 0);
  std::vector<float> scale(G * N), zero(G * N), lo(N), hi(N);
  auto setParams = [&](int64_t g, const float *rows, int64_t stride) {
    if (stride == N) {
      columnRanges(grid, rows, group, N, lo.data(), hi.data());
    } else { // rows of group g in the original order, some dead
      std::vector<float> tmp(group * N, 0.0f);
      for (int64_t k = 0; k < group; ++k)
        if (!f.dead[g * group + k])
          std::memcpy(&tmp[k * N], &w0[(g * group + k) * N], N * sizeof(float));
      columnRanges(grid, tmp.data(), group, N, lo.data(), hi.data());
    }
    for (int64_t n = 0; n < N; ++n) {
      uint16_t h;
      if (!chooseParams(grid, lo[n], hi[n], h, scale[g * N + n], zero[g * N + n]))
        return false;
      out.scales[g * N + n] = h;
      if (grid.asym)
        out.zeros[g * N + n] = (int8_t)zero[g * N + n];
    }
    return true;
  };
  if (!perm.empty())
    for (int64_t g = 0; g < G; ++g)
      if (!setParams(g, nullptr, 0))
        return false;
  std::vector<float> err(blockSize * N);
  for (int64_t i1 = 0; i1 < K; i1 += blockSize) {
    const int64_t i2 = std::min(K, i1 + blockSize);
    for (int64_t i = i1; i < i2; ++i) {
      const int64_t g = row(i) / group;
      if (perm.empty() && i % group == 0 && !setParams(g, &w[i * N], N))
        return false;
      const float d = f.u[i * K + i];
      float *e = &err[(i - i1) * N];
      const float *s = &scale[g * N], *z = &zero[g * N];
      for (int64_t n = 0; n < N; ++n) {
        float q = quantizeValue(grid, w[i * N + n], s[n], z[n]);
        out.q[row(i) * N + n] = (int8_t)q;
        e[n] = (w[i * N + n] - (q - z[n]) * s[n]) / d;
      }
      for (int64_t j = i + 1; j < i2; ++j) {
        const float u = f.u[i * K + j];
        if (u == 0.0f)
          continue;
        float *wj = &w[j * N];
        for (int64_t n = 0; n < N; ++n)
          wj[n] -= u * e[n];
      }
    }
    if (i2 < K)
      qmath::gemmTN(i2 - i1, K - i2, N, -1.0f, &f.u[i1 * K + i2], K, err.data(), N, &w[i2 * N], N);
  }
  return true;
}

/// AWQ's scale search for weights that all read x: s = mean|x|^a
/// (normalized to a geometric middle of 1) for a = 0, 1/grid, ..; the a
/// whose round-to-nearest of diag(s) W, scaled back, has the smallest
/// output error. a = 0 is plain round to nearest.
struct AwqScales {
  std::vector<float> s;
  double alpha = 0.0;
};

AwqScales searchScales(ArrayRef<ArrayRef<float>> weights, ArrayRef<int64_t> widths,
                       const ActivationStats &st, int bits, int64_t group, int gridSize) {
  const int64_t K = st.channels;
  int64_t width = std::accumulate(widths.begin(), widths.end(), int64_t(0));
  // The full error costs K^2 N per candidate; past that budget the diagonal
  // of X^T X stands in for it.
  const bool full = double(K) * K * width * gridSize <= 3e10;
  AwqScales best;
  best.s.assign(K, 1.0f);
  double bestErr = std::numeric_limits<double>::infinity();
  std::vector<float> s(K), ws, back, scratch;
  for (int i = 0; i < gridSize; ++i) {
    const double alpha = double(i) / gridSize;
    double lo = std::numeric_limits<double>::max(), hi = 0.0;
    for (int64_t k = 0; k < K; ++k) {
      s[k] = (float)std::max(std::pow(st.meanAbs(k), alpha), 1e-4);
      lo = std::min<double>(lo, s[k]);
      hi = std::max<double>(hi, s[k]);
    }
    const float norm = (float)std::sqrt(lo * hi);
    for (float &v : s)
      v /= norm;
    double err = 0.0;
    for (size_t m = 0; m < weights.size() && err < bestErr; ++m) {
      const int64_t N = widths[m];
      ArrayRef<float> w = weights[m];
      ws.resize(K * N);
      for (int64_t k = 0; k < K; ++k)
        for (int64_t n = 0; n < N; ++n)
          ws[k * N + n] = w[k * N + n] * s[k];
      Quantized qz;
      if (!quantizeRtn(ws, K, N, bits, group, qz)) {
        err = std::numeric_limits<double>::infinity();
        break;
      }
      back.resize(K * N);
      dequantize(qz, K, N, group, back.data());
      for (int64_t k = 0; k < K; ++k)
        for (int64_t n = 0; n < N; ++n)
          back[k * N + n] = w[k * N + n] - back[k * N + n] / s[k];
      err += outputError(back.data(), K, N, st.xtx.data(), K, full, scratch);
    }
    if (err < bestErr) {
      bestErr = err;
      best.s = s;
      best.alpha = alpha;
    }
  }
  return best;
}

/// SmoothQuant's migration scales for weights that all read x (Xiao et al.
/// 2023): s_k = max|x_k|^a / max|W_k,:|^(1-a), the weight maximum over every
/// reader's row k, so that x / s and diag(s) W share channel k's range.
/// Channels that never fire, or weight rows of zeros, keep s = 1.
AwqScales smoothScales(ArrayRef<ArrayRef<float>> weights, ArrayRef<int64_t> widths,
                       const ActivationStats &st, double alpha) {
  const int64_t K = st.channels;
  std::vector<float> wmax(K, 0.0f);
  for (size_t m = 0; m < weights.size(); ++m)
    for (int64_t k = 0; k < K; ++k)
      for (int64_t n = 0; n < widths[m]; ++n)
        wmax[k] = std::max(wmax[k], std::fabs(weights[m][k * widths[m] + n]));
  AwqScales out;
  out.alpha = alpha;
  out.s.assign(K, 1.0f);
  for (int64_t k = 0; k < K; ++k)
    if (st.maxAbs[k] > 0.0f && wmax[k] > 0.0f)
      out.s[k] = (float)std::clamp(std::pow(double(st.maxAbs[k]), alpha) /
                                       std::pow(double(wmax[k]), 1.0 - alpha),
                                   1e-4, 1e4);
  return out;
}

/// How AWQ or SmoothQuant transforms one weight operand:
/// W' = diag(rows) W diag(cols).
struct Scaling {
  std::vector<float> rows, cols;
  std::string method;
};

class Quantizer {
public:
  Quantizer(func::FuncOp fn, const QuantScheme &scheme, std::vector<QuantizedWeight> &report,
            QuantCache *cache, const QuantizeOptions *options)
      : fn(fn), scheme(scheme), report(report), cache(cache), b(fn.getContext()) {
    if (options)
      opts = *options;
    if (!opts.stats)
      opts.method = QuantMethod::Rtn;
    calibrated = options && options->method != QuantMethod::Rtn;
  }

  LogicalResult run() {
    vocab = vocabularySize(fn);
    for (const EmbeddingTables &e : embeddingTables(fn))
      report.push_back({"embed", e.what, "f32 (kept: embeddings stay f32)", e.bytes, e.bytes});
    if ((opts.method == QuantMethod::Awq || opts.method == QuantMethod::SmoothQuant) &&
        failed(planScaling()))
      return failure();
    for (const LinearWeight &w : linearWeights(fn))
      if (failed(quantizeOperand(w.op, w.operand, w.layer, w.what)))
        return failure();
    return success();
  }

private:
  /// Why operand i of op stays f32 ("" when it is quantized).
  std::string keptReason(Operation *op, unsigned i) {
    Value w = op->getOperand(i);
    auto type = dyn_cast<RankedTensorType>(w.getType());
    if (!type || type.getRank() != 2 || !type.getElementType().isF32() || !match::constant(w))
      return "not a constant f32 weight";
    int64_t K = type.getDimSize(0), N = type.getDimSize(1);
    if (isa<llm::MatmulOp>(op) && vocab > 0 && N == vocab && !scheme.head)
      return "LM head; --quantize-head";
    int64_t group = scheme.group ? scheme.group : K;
    if (K % group != 0)
      return "group " + std::to_string(group) + " does not divide K = " + std::to_string(K);
    return "";
  }

  const ActivationStats *statsOf(Value w) {
    ElementsAttr attr = match::constant(w);
    return attr && opts.stats ? opts.stats->lookup(attr) : nullptr;
  }

  /// AWQ or SmoothQuant: chooses the scales of every group of weights whose
  /// input can absorb them, and folds 1/s into what produces that input.
  LogicalResult planScaling() {
    const bool smooth = opts.method == QuantMethod::SmoothQuant;
    using Use = std::pair<Operation *, unsigned>;
    auto weightData = [&](Use u, SmallVectorImpl<float> &storage) {
      return match::floatData(match::constant(u.first->getOperand(u.second)), storage);
    };
    auto search = [&](ArrayRef<Use> uses, const ActivationStats &st,
                      std::optional<AwqScales> &out) -> LogicalResult {
      SmallVector<SmallVector<float>> storage(uses.size());
      SmallVector<ArrayRef<float>> data;
      SmallVector<int64_t> widths;
      for (auto [u, store] : llvm::zip(uses, storage)) {
        std::optional<ArrayRef<float>> d = weightData(u, store);
        auto t = cast<RankedTensorType>(u.first->getOperand(u.second).getType());
        if (!d || (int64_t)d->size() != t.getNumElements())
          return u.first->emitOpError("weight data is missing");
        data.push_back(*d);
        widths.push_back(t.getDimSize(1));
      }
      int64_t K = st.channels;
      out = smooth ? smoothScales(data, widths, st, opts.smoothAlpha)
                   : searchScales(data, widths, st, scheme.bits, scheme.group ? scheme.group : K,
                                  opts.awqGrid);
      return success();
    };
    auto note = [&](double alpha) {
      std::string s;
      llvm::raw_string_ostream os(s);
      os << llvm::format(smooth ? "smoothquant(a=%.2f)" : "awq(a=%.2f)", alpha);
      return s;
    };
    Block &body = fn.getBody().front();
    for (Operation &op : llvm::make_early_inc_range(body.without_terminator())) {
      // A norm whose every reader is a quantized weight's input.
      Value normWeight, normBias;
      if (auto n = dyn_cast<llm::RmsNormOp>(op)) {
        normWeight = n.getWeight();
      } else if (auto n = dyn_cast<llm::LayerNormOp>(op)) {
        normWeight = n.getWeight();
        normBias = n.getBias();
      } else {
        continue;
      }
      SmallVector<float> wStore, bStore;
      std::optional<ArrayRef<float>> nw = match::floatData(match::constant(normWeight), wStore);
      std::optional<ArrayRef<float>> nb;
      if (normBias)
        nb = match::floatData(match::constant(normBias), bStore);
      if (!nw || (normBias && !nb) || op.getResult(0).use_empty())
        continue;
      SmallVector<Use> uses;
      bool ok = true;
      for (OpOperand &use : op.getResult(0).getUses()) {
        Operation *u = use.getOwner();
        if (use.getOperandNumber() != 0) {
          ok = false;
        } else if (isa<llm::MatmulOp, llm::GeluMlpOp>(u)) {
          uses.push_back({u, 1});
        } else if (isa<llm::GatedMlpOp>(u)) {
          uses.push_back({u, 1});
          uses.push_back({u, 2});
        } else {
          ok = false;
        }
      }
      const ActivationStats *st = ok ? statsOf(uses[0].first->getOperand(uses[0].second)) : nullptr;
      for (Use u : uses)
        ok &= keptReason(u.first, u.second).empty() && st &&
              statsOf(u.first->getOperand(u.second)) == st;
      if (!ok || st->channels != (int64_t)nw->size())
        continue;
      std::optional<AwqScales> found;
      if (failed(search(uses, *st, found)))
        return failure();
      for (Use u : uses) {
        Scaling &sc = scaling[u];
        sc.rows = found->s;
        sc.method = note(found->alpha);
      }
      // x / s out of the norm: its weight and bias divided by s.
      auto fold = [&](Value v, ArrayRef<float> values, unsigned operand) {
        SmallVector<float> scaled(values);
        for (size_t k = 0; k < scaled.size(); ++k)
          scaled[k] /= found->s[k];
        OpBuilder::InsertionGuard guard(b);
        b.setInsertionPoint(&op);
        auto t = RankedTensorType::get({(int64_t)scaled.size()}, b.getF32Type());
        Value c = arith::ConstantOp::create(b, v.getLoc(), t,
                                            DenseElementsAttr::get(t, ArrayRef<float>(scaled)));
        op.setOperand(operand, c);
        if (v.use_empty())
          release(v);
      };
      if (found->alpha > 0.0) {
        fold(normWeight, *nw, 1);
        if (normBias)
          fold(normBias, *nb, 2);
      }
    }
    // Gated MLPs: down's input is act(x gate) * (x up); scaling up's
    // columns by 1/s scales it.
    for (Operation &op : body.without_terminator()) {
      auto g = dyn_cast<llm::GatedMlpOp>(op);
      if (!g || !keptReason(g, 2).empty() || !keptReason(g, 3).empty())
        continue;
      const ActivationStats *st = statsOf(g.getDown());
      if (!st)
        continue;
      std::optional<AwqScales> found;
      if (failed(search({Use{g, 3}}, *st, found)))
        return failure();
      if (found->alpha == 0.0) {
        scaling[{g, 3}].method = note(0.0);
        continue;
      }
      Scaling &down = scaling[{g, 3}];
      down.rows = found->s;
      down.method = note(found->alpha);
      Scaling &up = scaling[{g, 2}];
      up.cols.resize(found->s.size());
      for (size_t n = 0; n < found->s.size(); ++n)
        up.cols[n] = 1.0f / found->s[n];
      if (up.method.empty())
        up.method = smooth ? note(found->alpha) : "awq(clip)";
    }
    return success();
  }

  LogicalResult quantizeOperand(Operation *op, unsigned i, StringRef layer, StringRef what) {
    Value w = op->getOperand(i);
    std::string kept = keptReason(op, i);
    auto type = dyn_cast<RankedTensorType>(w.getType());
    int64_t bytes = type && type.hasStaticShape() ? type.getNumElements() * 4 : 0;
    if (!kept.empty()) {
      // Already quantized (imported) weights are not reported again; other
      // non-constants count no bytes.
      bool constant = !StringRef(kept).starts_with("not a constant");
      if (!w.getDefiningOp<llm::DequantizeOp>())
        report.push_back({layer.str(), what.str(), "f32 (kept: " + kept + ")", constant ? bytes : 0,
                          constant ? bytes : 0});
      return success();
    }
    ElementsAttr attr = match::constant(w);
    int64_t K = type.getDimSize(0), N = type.getDimSize(1);
    int64_t group = scheme.group ? scheme.group : K;
    auto sc = scaling.find({op, i});
    const Scaling *scale = sc == scaling.end() ? nullptr : &sc->second;
    // One dequantize per weight value unless AWQ scaled this use of it.
    Value dq = scale ? Value() : dequantOf.lookup(w);
    std::string method = dq ? methodOf.lookup(dq) : "";
    if (!dq) {
      FailureOr<std::pair<Value, std::string>> made =
          makeDequantize(w, attr, K, N, group, op, scale);
      if (failed(made))
        return failure();
      dq = made->first;
      method = made->second;
      if (!dq) {
        report.push_back({layer.str(), what.str(), "f32 (kept: a scale does not fit in f16)", bytes,
                          bytes});
        return success();
      }
      if (!scale)
        dequantOf[w] = dq;
      methodOf[dq] = method;
    }
    op->setOperand(i, dq);
    if (!dq.getDefiningOp<llm::DequantizeOp>()) {
      // AWQ-scaled but not quantizable: the scaled f32 weight.
      report.push_back({layer.str(), what.str(), "f32 (kept: a scale does not fit in f16)", bytes,
                        bytes, method});
    } else {
      int64_t G = K / group;
      int64_t after = K * N * scheme.bits / 8 + G * N * 2 + (scheme.bits == 4 ? G * N : 0);
      report.push_back({layer.str(), what.str(), scheme.name(), bytes, after, method});
    }
    if (w.use_empty())
      release(w);
    return success();
  }

  /// w quantized by the method: data, scales, zero points; false when a
  /// scale does not fit in f16. `method` says what was done.
  bool quantizeData(ArrayRef<float> data, int64_t K, int64_t N, int64_t group,
                    const ActivationStats *st, const Scaling *scale, Quantized &qz,
                    std::string &method) {
    if (opts.method == QuantMethod::Rtn || !st) {
      method = calibrated ? "rtn (no calibration data)" : "";
      return quantizeRtn(data, K, N, scheme.bits, group, qz);
    }
    if (opts.method == QuantMethod::SmoothQuant) {
      // The scales are folded in already; the integers are round to nearest.
      method = scale && !scale->method.empty() ? scale->method : "rtn (no smoothing: input not foldable)";
      return quantizeRtn(data, K, N, scheme.bits, group, qz);
    }
    if (opts.method == QuantMethod::Awq) {
      method = scale && !scale->method.empty() ? scale->method : "awq(clip)";
      // The activations the scaled rows see are x / s.
      std::vector<float> h;
      const float *H = st->xtx.data();
      if (scale && !scale->rows.empty()) {
        h.assign(st->xtx.begin(), st->xtx.end());
        for (int64_t a = 0; a < K; ++a)
          for (int64_t c = 0; c < K; ++c)
            h[a * K + c] /= scale->rows[a] * scale->rows[c];
        H = h.data();
      }
      std::vector<float> clip = searchClip(data, K, N, scheme.bits, group, H);
      return quantizeRtn(data, K, N, scheme.bits, group, qz, clip.data());
    }
    // GPTQ; the factor is shared by the weights reading the same input
    // (q, k and v; gate and up), which come one after the other.
    std::vector<int64_t> perm;
    if (opts.actOrder) {
      perm.resize(K);
      std::iota(perm.begin(), perm.end(), 0);
      std::stable_sort(perm.begin(), perm.end(), [&](int64_t a, int64_t c) {
        return st->xtx[a * K + a] > st->xtx[c * K + c];
      });
    }
    if (factorFor != st) {
      factorFor = nullptr;
      if (!factorGptq(*st, opts.dampening, perm, factor)) {
        method = "rtn (GPTQ: X^T X is not positive definite)";
        return quantizeRtn(data, K, N, scheme.bits, group, qz);
      }
      factorFor = st;
    }
    method = "gptq";
    return quantizeGptq(data, K, N, scheme.bits, group, factor, perm, opts.blockSize, qz);
  }

  /// The llm.dequantize of w's quantized form and how it was made; a null
  /// Value when w cannot be quantized with this scheme (or, when AWQ
  /// scaled it, the scaled f32 weight).
  FailureOr<std::pair<Value, std::string>> makeDequantize(Value w, ElementsAttr attr, int64_t K,
                                                          int64_t N, int64_t group,
                                                          Operation *user, const Scaling *scale) {
    MLIRContext *ctx = fn.getContext();
    Type dataElt = IntegerType::get(ctx, scheme.bits);
    auto dataType = RankedTensorType::get({K, N}, dataElt);
    auto scaleType = RankedTensorType::get({K / group, N}, Float16Type::get(ctx));
    auto zeroType = RankedTensorType::get({K / group, N}, IntegerType::get(ctx, 8));
    auto f32Type = RankedTensorType::get({K, N}, b.getF32Type());
    SmallVector<Attribute> keyParts{attr, b.getStringAttr(scheme.name()),
                                    b.getStringAttr(quantMethodName(opts.method))};
    if (scale) {
      keyParts.push_back(b.getDenseF32ArrayAttr(scale->rows));
      keyParts.push_back(b.getDenseF32ArrayAttr(scale->cols));
    }
    Attribute key = ArrayAttr::get(ctx, keyParts);
    // parts: the method (a string), then q, scales[, zero points] or the
    // scaled f32 weight.
    SmallVector<Attribute, 4> parts;
    if (cache)
      if (auto shared = dyn_cast_or_null<ArrayAttr>(cache->lookup(key)))
        parts.assign(shared.begin(), shared.end());
    if (parts.empty()) {
      SmallVector<float> storage;
      std::optional<ArrayRef<float>> data = match::floatData(attr, storage);
      if (!data || (int64_t)data->size() != K * N)
        return user->emitOpError("weight data is missing");
      std::vector<float> scaled;
      if (scale && (!scale->rows.empty() || !scale->cols.empty())) {
        scaled.assign(data->begin(), data->end());
        for (int64_t k = 0; k < K; ++k)
          for (int64_t n = 0; n < N; ++n)
            scaled[k * N + n] *= (scale->rows.empty() ? 1.0f : scale->rows[k]) *
                                 (scale->cols.empty() ? 1.0f : scale->cols[n]);
        data = ArrayRef<float>(scaled);
      }
      std::string base = "w" + std::to_string(counter++);
      if (auto res = dyn_cast<DenseResourceElementsAttr>(attr))
        base = res.getRawHandle().getKey().str();
      base += "." + scheme.name();
      auto blob = [&](RankedTensorType t, StringRef suffix, const void *p, size_t n) {
        return blobAttr(t, base + suffix.str(), p, n);
      };
      Quantized qz;
      std::string method;
      if (!quantizeData(*data, K, N, group, opts.stats ? opts.stats->lookup(attr) : nullptr, scale,
                        qz, method)) {
        if (scaled.empty())
          return std::make_pair(Value(), std::string());
        parts.push_back(b.getStringAttr(method));
        parts.push_back(blob(f32Type, ".scaled", scaled.data(), scaled.size() * 4));
      } else {
        parts.push_back(b.getStringAttr(method));
        parts.push_back(blob(dataType, ".q", qz.q.data(), qz.q.size()));
        parts.push_back(blob(scaleType, ".scales", qz.scales.data(), qz.scales.size() * 2));
        if (!qz.zeros.empty())
          parts.push_back(blob(zeroType, ".zero_points", qz.zeros.data(), qz.zeros.size()));
      }
      if (cache)
        (*cache)[key] = ArrayAttr::get(ctx, parts);
    }
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointAfterValue(w);
    Location loc = w.getLoc();
    auto cst = [&](Attribute a) {
      auto t = cast<TypedAttr>(a);
      return arith::ConstantOp::create(b, loc, t.getType(), t).getResult();
    };
    std::string method = cast<StringAttr>(parts[0]).str();
    if (parts.size() == 2) // the scaled f32 weight
      return std::make_pair(cst(parts[1]), method);
    Value q = cst(parts[1]), s = cst(parts[2]);
    Value z = parts.size() > 3 ? cst(parts[3]) : Value();
    IntegerAttr actBits =
        scheme.activationBits ? b.getI64IntegerAttr(scheme.activationBits) : IntegerAttr();
    Value dq = llm::DequantizeOp::create(b, loc, f32Type, q, s, z, b.getI64IntegerAttr(group),
                                         actBits);
    return std::make_pair(dq, method);
  }

  /// Erases the unread f32 constant w and frees its blob.
  void release(Value w) {
    if (Operation *op = w.getDefiningOp())
      eraseConstant(op);
  }

  func::FuncOp fn;
  const QuantScheme &scheme;
  std::vector<QuantizedWeight> &report;
  QuantCache *cache;
  QuantizeOptions opts;
  bool calibrated = false;
  OpBuilder b;
  int64_t vocab = -1;
  int counter = 0;
  llvm::DenseMap<Value, Value> dequantOf;
  llvm::DenseMap<Value, std::string> methodOf;
  std::map<std::pair<Operation *, unsigned>, Scaling> scaling;
  const ActivationStats *factorFor = nullptr;
  GptqFactor factor;
};

} // namespace

LogicalResult quantizeWeights(func::FuncOp fn, const QuantScheme &scheme,
                              std::vector<QuantizedWeight> &report, QuantCache *cache,
                              const QuantizeOptions *options) {
  return Quantizer(fn, scheme, report, cache, options).run();
}

std::string formatQuantReport(StringRef function, const std::vector<QuantizedWeight> &report) {
  SmallVector<WeightLine> lines;
  for (const QuantizedWeight &w : report)
    lines.push_back({w.layer, w.what + " " + w.scheme + (w.method.empty() ? "" : " " + w.method),
                     w.bytesBefore, w.bytesAfter});
  return formatWeightTable("quantized weights", function, lines);
}

} // namespace kiln
