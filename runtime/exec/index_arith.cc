//===- index_arith.cc - The Arith instruction's int64 semantics ------------===//
#include "runtime/exec/index_arith.h"

#include <algorithm>
#include <limits>

namespace kiln::exec {
namespace {

Status Overflow(fb::ArithKind kind, int64_t a, int64_t b) {
  return OutOfRangeError(StrCat(fb::EnumNameArithKind(kind), "(", a, ", ", b, ") overflows int64"));
}

}  // namespace

StatusOr<int64_t> EvalArith(fb::ArithKind kind, int64_t a, int64_t b, int64_t c) {
  using K = fb::ArithKind;
  int64_t r = 0;
  switch (kind) {
    case K::Add:
      if (__builtin_add_overflow(a, b, &r)) return Overflow(kind, a, b);
      return r;
    case K::Sub:
      if (__builtin_sub_overflow(a, b, &r)) return Overflow(kind, a, b);
      return r;
    case K::Mul:
      if (__builtin_mul_overflow(a, b, &r)) return Overflow(kind, a, b);
      return r;
    case K::DivS:
    case K::CeilDivS:
    case K::FloorDivS:
    case K::RemS: {
      if (b == 0)
        return InvalidArgumentError(StrCat("division by zero in ", fb::EnumNameArithKind(kind), "(", a, ", 0)"));
      if (a == std::numeric_limits<int64_t>::min() && b == -1) {
        if (kind == K::RemS) return int64_t{0};
        return Overflow(kind, a, b);
      }
      const int64_t q = a / b, rem = a % b;
      if (kind == K::DivS) return q;
      if (kind == K::RemS) return rem;
      const bool same_sign = (a < 0) == (b < 0);
      if (kind == K::CeilDivS) return rem != 0 && same_sign ? q + 1 : q;
      return rem != 0 && !same_sign ? q - 1 : q;
    }
    case K::MaxS: return std::max(a, b);
    case K::MinS: return std::min(a, b);
    case K::CmpEq: return int64_t{a == b};
    case K::CmpNe: return int64_t{a != b};
    case K::CmpLt: return int64_t{a < b};
    case K::CmpLe: return int64_t{a <= b};
    case K::CmpGt: return int64_t{a > b};
    case K::CmpGe: return int64_t{a >= b};
    case K::Select: return a != 0 ? b : c;
  }
  return InvalidArgumentError(StrCat("unknown arith kind ", static_cast<int>(kind)));
}

}  // namespace kiln::exec
