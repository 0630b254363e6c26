//===- status_test.cc - Status, StatusOr and the propagation macros ---------===//
#include "runtime/base/status.h"

#include <gtest/gtest.h>

#include <memory>

#include "runtime/base/dtype.h"

namespace kiln {
namespace {

Status FailIf(bool fail) { return fail ? InvalidArgumentError("bad") : OkStatus(); }

Status Chain(bool fail, int& reached) {
  KILN_RETURN_IF_ERROR(FailIf(fail));
  reached = 1;
  return OkStatus();
}

StatusOr<int> Half(int v) {
  if (v % 2) return OutOfRangeError(StrCat(v, " is odd"));
  return v / 2;
}

StatusOr<int> Quarter(int v) {
  KILN_ASSIGN_OR_RETURN(int h, Half(v));
  KILN_ASSIGN_OR_RETURN(h, Half(h));
  return h;
}

TEST(StatusTest, OkAndErrors) {
  EXPECT_TRUE(OkStatus().ok());
  Status s = NotFoundError("gone");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "gone");
  EXPECT_EQ(s.ToString(), "NOT_FOUND: gone");
  EXPECT_EQ(s.Annotate("input 'x'").message(), "input 'x': gone");
  EXPECT_TRUE(OkStatus().Annotate("x").ok());
}

TEST(StatusTest, ReturnIfError) {
  int reached = 0;
  EXPECT_EQ(Chain(true, reached).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(reached, 0);
  EXPECT_TRUE(Chain(false, reached).ok());
  EXPECT_EQ(reached, 1);
}

TEST(StatusTest, AssignOrReturn) {
  EXPECT_EQ(*Quarter(8), 2);
  StatusOr<int> odd = Quarter(6);  // 6 -> 3 -> odd
  ASSERT_FALSE(odd.ok());
  EXPECT_EQ(odd.status().code(), StatusCode::kOutOfRange);
  EXPECT_EQ(odd.status().message(), "3 is odd");
}

TEST(StatusTest, StatusOrHoldsMoveOnlyTypes) {
  StatusOr<std::unique_ptr<int>> p = std::make_unique<int>(7);
  ASSERT_TRUE(p.ok());
  std::unique_ptr<int> v = std::move(p).value();
  EXPECT_EQ(*v, 7);
  StatusOr<int> from_ok_status = OkStatus();  // a bug, reported not hidden
  EXPECT_EQ(from_ok_status.status().code(), StatusCode::kInternal);
}

TEST(DTypeTest, SizesAndNames) {
  EXPECT_EQ(DTypeSize(DType::kF32), 4);
  EXPECT_EQ(DTypeSize(DType::kBF16), 2);
  EXPECT_EQ(DTypeSize(DType::kBool), 1);
  EXPECT_EQ(DTypeSize(DType::kU64), 8);
  EXPECT_EQ(DTypeName(DType::kI16), "i16");
  EXPECT_EQ(ParseDTypeName("bf16"), DType::kBF16);
  EXPECT_FALSE(ParseDTypeName("f128").has_value());
  std::vector<int64_t> huge = {int64_t{1} << 40, int64_t{1} << 40};
  EXPECT_FALSE(CheckedElementCount(huge).ok());
  std::vector<int64_t> negative = {2, -1};
  EXPECT_FALSE(CheckedElementCount(negative).ok());
  std::vector<int64_t> shape = {2, 3};
  EXPECT_EQ(*CheckedByteSize(DType::kF64, shape), 48);
  EXPECT_EQ(ShapeToString(std::vector<int64_t>{-1, 3}), "[?,3]");
}

}  // namespace
}  // namespace kiln
