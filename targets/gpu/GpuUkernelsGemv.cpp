//===- GpuUkernelsGemv.cpp - The decode GEMV of CUDA's workgroups ---------===//
//
// The matmuls of fewer than 16 rows (decode) for workgroups of 128
// invocations (CUDA; on Vulkan, the emulated-mma test profile). The SIMT
// kernel of GpuUkernelsMatmul.cpp gives each invocation one column and
// reads one element per load: 128 invocations cover 2 panels, so a matmul
// of N columns has only N / 32 work items, each reading its weights a byte
// or a word at a time -- far too few bytes in flight to keep a GPU's
// memory busy. Here a work item is (up to 4 rows, one panel): N / 16
// items, and each invocation reads whole 16-byte pieces of the packed
// panel ("chunks", one ld.global.v4 on CUDA), 2 or 4 of them issued
// before any is used, consecutive invocations on consecutive chunks (a
// warp's load covers 512 contiguous bytes). Integers become f32 through
// their bits (2^23 + q) rather than a conversion instruction, and a
// chunk's 8 int4 products are summed before its scale (and zero point, as
// z * sum(x)) is applied once.
//
//===----------------------------------------------------------------------===//
#include "targets/gpu/GpuMatmul.h"
#include "targets/gpu/GpuMatrixTiles.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;

namespace kiln {
namespace {

/// A chunk of a packed panel: `cols` consecutive columns (of its 16) at
/// `ks` consecutive k. Chunk j lies at byte j * bytes of the panel's
/// storage, the chunks of one k-step (16 columns) next to each other.
struct ChunkShape {
  int64_t cols, ks, bytes;
};

ChunkShape chunkShape(WeightFormat f) {
  switch (f) {
  case WeightFormat::F32:
    return {4, 1, 16}; // a k-row is 64 bytes
  case WeightFormat::Half:
  case WeightFormat::Bf16:
    return {8, 1, 16}; // 32 bytes
  case WeightFormat::Int8:
    return {8, 1, 8}; // 16 bytes; half a row keeps the accumulators few
  case WeightFormat::Int4:
    return {4, 8, 16}; // per 8 k, 16 words of 8 nibbles (one column each)
  }
  return {4, 1, 16};
}

/// The elements of a 1-d vector.
SmallVector<Value> extractAll(UkernelBuilder &e, Value v) {
  SmallVector<Value> out;
  for (int64_t i = 0, n = cast<VectorType>(v.getType()).getNumElements(); i < n; ++i)
    out.push_back(vector::ExtractOp::create(e.rw, e.loc, v, ArrayRef<int64_t>{i}));
  return out;
}

/// buf[at .. at + n - 1]: one load of a vector aligned to its size (the
/// caller guarantees it), or n scalar loads.
Value loadVector(UkernelBuilder &e, Value buf, Value at, int64_t n) {
  Type el = cast<MemRefType>(buf.getType()).getElementType();
  int64_t bytes = n * el.getIntOrFloatBitWidth() / 8;
  return vector::LoadOp::create(e.rw, e.loc, VectorType::get({n}, el), buf, ValueRange{at},
                                /*nontemporal=*/false, llvm::MaybeAlign(bytes));
}

SmallVector<Value> loadRun(UkernelBuilder &e, bool vec, Value buf, Value at, int64_t n) {
  if (vec)
    return extractAll(e, loadVector(e, buf, at, n));
  SmallVector<Value> out;
  for (int64_t i = 0; i < n; ++i)
    out.push_back(e.load(buf, e.add(at, e.idx(i))));
  return out;
}

Value i32c(UkernelBuilder &e, int32_t v) {
  return arith::ConstantIntOp::create(e.rw, e.loc, e.rw.getI32Type(), v);
}

/// `words` little-endian i32 words of an i8 buffer from byte `at`.
SmallVector<Value> loadWords(UkernelBuilder &e, bool vec, Value buf, Value at, int64_t words) {
  auto &rw = e.rw;
  if (vec) {
    Value v = loadVector(e, buf, at, 4 * words);
    return extractAll(e, vector::BitCastOp::create(
                             rw, e.loc, VectorType::get({words}, rw.getI32Type()), v));
  }
  SmallVector<Value> out;
  for (int64_t w = 0; w < words; ++w) {
    Value word = i32c(e, 0);
    for (int64_t b = 0; b < 4; ++b) {
      Value byte = loadByte(e, buf, e.add(at, e.idx(4 * w + b)));
      word = arith::OrIOp::create(rw, e.loc, word,
                                  arith::ShLIOp::create(rw, e.loc, byte, i32c(e, 8 * b)));
    }
    out.push_back(word);
  }
  return out;
}

/// Bits `shift` .. `shift + width - 1` of `word` as f32, exactly: placed
/// under the exponent of 2^23 (a float whose units are its low mantissa
/// bits), less 2^23 -- an integer op and an add, where an SM converts
/// 16 integers per clock against 64 to 128 FMAs. Int8 is signed: its byte
/// with the top bit flipped is q + 128.
Value bitsToFloat(UkernelBuilder &e, Value word, int64_t shift, int64_t width, bool isSigned) {
  auto &rw = e.rw;
  Location loc = e.loc;
  Value v = word;
  if (shift)
    v = arith::ShRUIOp::create(rw, loc, v, i32c(e, static_cast<int32_t>(shift)));
  v = arith::AndIOp::create(rw, loc, v, i32c(e, (1 << width) - 1));
  int32_t magic = 0x4B000000 | (isSigned ? 1 << (width - 1) : 0);
  v = arith::XOrIOp::create(rw, loc, v, i32c(e, magic));
  float bias = 8388608.0f + (isSigned ? static_cast<float>(1 << (width - 1)) : 0.0f);
  return e.fsub(arith::BitcastOp::create(rw, loc, rw.getF32Type(), v), e.f(bias));
}

/// Chunk j of `panel`: v[kk * cols + ci] = weight (k0 + kk, column
/// q * cols + ci) as stored -- f32 weights as they are, integers exactly,
/// before scale and zero point.
SmallVector<Value> chunkValues(UkernelBuilder &e, const WeightReader &r, bool vec, Value buf,
                               Value panel, Value j) {
  ChunkShape ch = chunkShape(r.format);
  SmallVector<Value> out;
  switch (r.format) {
  case WeightFormat::F32:
  case WeightFormat::Half:
  case WeightFormat::Bf16: {
    Value at = e.add(e.mul(e.mul(panel, r.K), e.idx(kLanes)), e.mul(j, e.idx(ch.cols)));
    for (Value v : loadRun(e, vec, buf, at, ch.cols))
      out.push_back(r.format == WeightFormat::F32    ? v
                    : r.format == WeightFormat::Bf16 ? bf16BitsToFloat(e, v)
                                                     : Value(arith::ExtFOp::create(
                                                           e.rw, e.loc, e.rw.getF32Type(), v)));
    return out;
  }
  case WeightFormat::Int8: {
    SmallVector<Value> w = loadWords(e, vec, buf, e.add(e.mul(panel, r.panelBytes),
                                                         e.mul(j, e.idx(ch.bytes))), 2);
    for (int64_t ci = 0; ci < ch.cols; ++ci)
      out.push_back(bitsToFloat(e, w[ci / 4], 8 * (ci % 4), 8, /*isSigned=*/true));
    return out;
  }
  case WeightFormat::Int4: {
    SmallVector<Value> w = loadWords(e, vec, buf, e.add(e.mul(panel, r.panelBytes),
                                                         e.mul(j, e.idx(ch.bytes))), 4);
    for (int64_t kk = 0; kk < ch.ks; ++kk)
      for (int64_t ci = 0; ci < ch.cols; ++ci)
        out.push_back(bitsToFloat(e, w[ci], 4 * kk, 4, /*isSigned=*/false));
    return out;
  }
  }
  return out;
}

/// The scales, then (with zero points) the zero points, of columns q *
/// cols .. of (panel, group g): two small vector loads, or the scalar
/// reader's.
SmallVector<Value> chunkParams(UkernelBuilder &e, const WeightReader &r, bool vec, Value buf,
                               Value panel, Value g, Value q) {
  auto &rw = e.rw;
  Location loc = e.loc;
  int64_t cols = chunkShape(r.format).cols;
  Value first = e.mul(q, e.idx(cols));
  if (!vec) {
    SmallVector<Value> scales, zeros;
    for (int64_t ci = 0; ci < cols; ++ci) {
      SmallVector<Value> p = r.params(buf, panel, g, e.add(first, e.idx(ci)));
      scales.push_back(p[0]);
      if (r.hasZp)
        zeros.push_back(p[1]);
    }
    llvm::append_range(scales, zeros);
    return scales;
  }
  Value at = e.add(r.paramsStart, e.mul(e.add(e.mul(panel, r.groups), g), e.idx(r.paramBytes)));
  Type f32 = rw.getF32Type();
  Value halves = vector::BitCastOp::create(rw, loc, VectorType::get({cols}, rw.getF16Type()),
                                           loadVector(e, buf, e.add(at, e.mul(first, e.idx(2))),
                                                      2 * cols));
  SmallVector<Value> out = extractAll(
      e, arith::ExtFOp::create(rw, loc, VectorType::get({cols}, f32), halves));
  if (r.hasZp) {
    Value z = loadVector(e, buf, e.add(at, e.add(e.idx(32), first)), cols);
    z = arith::ExtSIOp::create(rw, loc, VectorType::get({cols}, rw.getI32Type()), z);
    llvm::append_range(out, extractAll(e, arith::SIToFPOp::create(
                                              rw, loc, VectorType::get({cols}, f32), z)));
  }
  return out;
}

/// Rows row0 .. row0 + rows - 1 of the product on one panel (see above).
/// `scratch`: workgroup memory of at least size() * (Bu ? 2 : 1) * 8
/// floats.
void panelGemv(UkernelBuilder &e, WorkgroupBuilder &wg, const WeightReader &r, Value A,
               Value K, Value Bp, Value Bu, Value N, Value bias, Value residual, int64_t act,
               Value C, Value panel, Value row0, int64_t rows, Value scratch) {
  const GpuKernelConfig &cfg = wg.config();
  ChunkShape ch = chunkShape(r.format);
  int64_t Q = kLanes / ch.cols, G = Bu ? 2 : 1, T = wg.size();
  int64_t perLane = rows * G * ch.cols;
  int64_t U = perLane >= 32 ? 2 : 4;
  bool vec = cfg.vectorLoads;
  bool quantized = r.format == WeightFormat::Int8 || r.format == WeightFormat::Int4;
  Value bufs[2] = {Bp, Bu};
  Value t = wg.tid();
  Value q = e.rem(t, e.idx(Q));
  Value total = e.mul(e.div(K, e.idx(ch.ks)), e.idx(Q));
  // acc[(row * G + g) * cols + ci]
  SmallVector<Value> inits(perLane, e.f(0.0f));
  SmallVector<Value> acc = e.loop(e.idx(0), total, e.idx(T * U), inits, [&](Value base, ValueRange cur) {
    SmallVector<Value> a(cur.begin(), cur.end());
    // Every load of the U chunks first, then their products.
    SmallVector<Value> in(U), k0(U);
    SmallVector<SmallVector<Value>> vals(U * G), params(U * G);
    for (int64_t u = 0; u < U; ++u) {
      Value j = e.add(e.add(base, e.idx(u * T)), t);
      in[u] = e.lt(j, total);
      // Past the end: chunk q (k-step 0, the same columns), its products
      // zeroed below.
      Value jc = e.select(in[u], j, q);
      k0[u] = e.mul(e.div(jc, e.idx(Q)), e.idx(ch.ks));
      for (int64_t g = 0; g < G; ++g) {
        vals[u * G + g] = chunkValues(e, r, vec, bufs[g], panel, jc);
        if (quantized)
          params[u * G + g] = chunkParams(e, r, vec, bufs[g], panel, e.div(k0[u], r.group), q);
      }
    }
    for (int64_t u = 0; u < U; ++u) {
      for (int64_t row = 0; row < rows; ++row) {
        Value at = e.add(e.mul(e.add(row0, e.idx(row)), K), k0[u]);
        SmallVector<Value> x = loadRun(e, vec && ch.ks == 8, A, at, ch.ks);
        for (Value &xi : x)
          xi = e.select(in[u], xi, e.f(0.0f));
        Value xsum;
        if (r.hasZp) {
          xsum = x[0];
          for (int64_t kk = 1; kk < ch.ks; ++kk)
            xsum = e.fadd(xsum, x[kk]);
        }
        for (int64_t g = 0; g < G; ++g) {
          ArrayRef<Value> v = vals[u * G + g], p = params[u * G + g];
          for (int64_t ci = 0; ci < ch.cols; ++ci) {
            Value &slot = a[(row * G + g) * ch.cols + ci];
            if (!quantized) {
              slot = e.fma(x[0], v[ci], slot);
              continue;
            }
            Value inner = e.fmul(x[0], v[ci]);
            for (int64_t kk = 1; kk < ch.ks; ++kk)
              inner = e.fma(x[kk], v[kk * ch.cols + ci], inner);
            if (r.hasZp)
              inner = e.fma(e.fneg(p[ch.cols + ci]), xsum, inner);
            slot = e.fma(p[ci], inner, slot);
          }
        }
      }
    }
    return a;
  });

  // The invocations of one column set (t % Q alike) sum their parts: in
  // registers across `span` lanes where shuffles exist (a warp on CUDA),
  // then through `scratch`, where the first Q lanes of each span write.
  int64_t span = cfg.subgroupShuffle ? std::min(cfg.subgroupSize, MatrixTiles::kWarp) : 1;
  if (span < Q)
    span = 1;
  for (int64_t off = Q; off < span; off *= 2)
    for (Value &v : acc) {
      auto s = gpu::ShuffleOp::create(e.rw, e.loc, v, static_cast<int32_t>(off),
                                      static_cast<int32_t>(cfg.subgroupSize),
                                      gpu::ShuffleMode::XOR);
      v = e.fadd(v, s.getShuffleResult());
    }
  Value writer, slot;
  int64_t slots;
  if (span > 1) {
    Value lane = e.rem(t, e.idx(span));
    writer = e.lt(lane, e.idx(Q));
    slot = e.add(e.mul(e.div(t, e.idx(span)), e.idx(Q)), lane);
    slots = T / span * Q;
  } else {
    writer = e.lt(t, e.idx(T));
    slot = t;
    slots = T;
  }
  int64_t width = G * ch.cols;
  for (int64_t row = 0; row < rows; ++row) {
    wg.barrier();
    e.ifThen(writer, [&] {
      for (int64_t i = 0; i < width; ++i)
        e.store(acc[row * width + i], scratch, e.add(e.mul(slot, e.idx(width)), e.idx(i)));
    });
    wg.barrier();
    e.ifThen(e.lt(t, e.idx(kLanes)), [&] {
      Value qo = e.div(t, e.idx(ch.cols)), ci = e.rem(t, e.idx(ch.cols));
      SmallVector<Value> sums = e.loop(
          e.idx(0), e.idx(slots / Q), e.idx(1), SmallVector<Value>(G, e.f(0.0f)),
          [&](Value m, ValueRange s) {
            Value at = e.mul(e.add(e.mul(m, e.idx(Q)), qo), e.idx(width));
            SmallVector<Value> next;
            for (int64_t g = 0; g < G; ++g)
              next.push_back(e.fadd(
                  s[g], e.load(scratch, e.add(at, e.add(e.idx(g * ch.cols), ci)))));
            return next;
          });
      Value n = e.add(e.mul(panel, e.idx(kLanes)), t);
      e.ifThen(e.lt(n, N), [&] {
        Value out = e.add(e.mul(e.add(row0, e.idx(row)), N), n);
        e.store(matmulEpilogue(e, sums[0], Bu ? sums[1] : Value(), n, out, bias, residual, act),
                C, out);
      });
    });
  }
}

} // namespace

void panelGemvItem(UkernelBuilder &e, WorkgroupBuilder &wg, const WeightReader &r, Value A,
                   Value K, Value Bp, Value Bu, Value N, Value bias, Value residual, int64_t act,
                   Value C, Value panel, Value row0, Value end, Value scratch) {
  e.ifThenElse(
      e.eq(e.sub(end, row0), e.idx(kGemvRows)),
      [&] {
        panelGemv(e, wg, r, A, K, Bp, Bu, N, bias, residual, act, C, panel, row0, kGemvRows, scratch);
      },
      [&] {
        e.loop(row0, end, e.idx(1), {}, [&](Value row, ValueRange) {
          panelGemv(e, wg, r, A, K, Bp, Bu, N, bias, residual, act, C, panel, row, 1, scratch);
          return SmallVector<Value>{};
        });
      });
}

bool usesPanelGemv(const GpuKernelConfig &cfg) {
  return cfg.matrixOps != GpuMatrixOps::None && cfg.workgroupSize == 4 * MatrixTiles::kWarp;
}

Value panelGemvScratch(UkernelBuilder &e, const GpuKernelConfig &cfg) {
  return workgroupBuffer(e.rw, e.loc, cfg.workgroupSize * 2 * 8, e.rw.getF32Type());
}

} // namespace kiln
