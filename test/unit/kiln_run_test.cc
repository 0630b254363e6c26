//===- kiln_run_test.cc - The kiln-run tool, run as a process ---------------===//
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <unistd.h>
#include <fstream>
#include <sstream>

#include "runtime/io/file.h"
#include "runtime/io/npy.h"
#include "test/unit/artifact_builder.h"
#include "test/unit/test_kernels.h"

namespace kiln {
namespace {

using namespace kiln::testing;  // NOLINT: test shorthands

struct Result {
  int exit_code;
  std::string out;
  std::string err;
};

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class KilnRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // ctest runs each test as its own process, in parallel: one dir each.
    dir_ = ::testing::TempDir() + "/kiln_run_test_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name() +
           "_" + std::to_string(::getpid());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    ModelSpec m = AddModel();
    m.functions[0].outputs[0].name = "out/z:0";
    ASSERT_TRUE(WriteArtifact(dir_ + "/add.kiln", m).ok());
    ASSERT_TRUE(io::WriteNpy(dir_ + "/x.npy", io::Tensor::FromValues<float>(DType::kF32, {3}, {1, 2, 3})).ok());
    ASSERT_TRUE(io::WriteNpy(dir_ + "/y.npy", io::Tensor::FromValues<float>(DType::kF32, {3}, {10, 20, 30})).ok());
    ASSERT_TRUE(io::WriteNpy(dir_ + "/y4.npy", io::Tensor::FromValues<float>(DType::kF32, {4}, {1, 2, 3, 4})).ok());
    ASSERT_TRUE(io::WriteNpy(dir_ + "/yi.npy", io::Tensor::FromValues<int32_t>(DType::kI32, {3}, {1, 2, 3})).ok());
    std::vector<uint8_t> junk(300, 0xab);
    ASSERT_TRUE(io::WriteFileBytes(dir_ + "/junk.kiln", junk).ok());
    ASSERT_TRUE(io::WriteFileBytes(dir_ + "/junk.npy", junk).ok());
  }

  Result Run(const std::string& args) {
    std::string cmd = StrCat(KILN_RUN_PATH, " ", args, " >", dir_, "/stdout 2>", dir_, "/stderr");
    int status = std::system(cmd.c_str());
    Result r{WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), Slurp(dir_ + "/stdout"),
             Slurp(dir_ + "/stderr")};
    return r;
  }

  /// Runs `args`, expects exit 1 and one error line containing `expect`.
  void ExpectError(const std::string& args, const std::string& expect) {
    Result r = Run(args);
    EXPECT_EQ(r.exit_code, 1) << args;
    EXPECT_EQ(r.err.rfind("kiln-run: error: ", 0), 0u) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find(expect), std::string::npos) << "want: " << expect << "\n got: " << r.err;
  }

  std::string dir_;
};

TEST_F(KilnRunTest, RunsAndWritesOutputs) {
  Result r = Run(StrCat(dir_, "/add.kiln --device=cpu --threads 2 --input x=", dir_, "/x.npy --input y=", dir_,
                        "/y.npy --output-dir ", dir_, "/out"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "out/z:0 f32 [3]\n");
  StatusOr<io::Tensor> z = io::ReadNpy(dir_ + "/out/out_z_0.npy");
  ASSERT_TRUE(z.ok()) << z.status().message();
  auto v = z->values<float>();
  EXPECT_EQ(std::vector<float>(v.begin(), v.end()), (std::vector<float>{11, 22, 33}));
}

TEST_F(KilnRunTest, BadInputsAreOneLineErrors) {
  const std::string art = dir_ + "/add.kiln";
  const std::string x = " --input x=" + dir_ + "/x.npy";
  const std::string y = " --input y=" + dir_ + "/y.npy";
  ExpectError(dir_ + "/junk.kiln" + x + y, "artifact: bad magic");
  ExpectError(dir_ + "/missing.kiln" + x + y, "missing.kiln");
  ExpectError(art + x, "missing input 'y'");
  ExpectError(art + x + y + " --input w=" + dir_ + "/x.npy", "has no input 'w'");
  ExpectError(art + x + " --input y=" + dir_ + "/y4.npy", "input 'y': dim 0 ('n') is 4 but input 'x' has 3");
  ExpectError(art + x + " --input y=" + dir_ + "/yi.npy", "input 'y': expected dtype f32 but got i32");
  ExpectError(art + x + " --input y=" + dir_ + "/nope.npy", "input 'y': cannot open");
  ExpectError(art + x + " --input y=" + dir_ + "/junk.npy", "input 'y'");
  ExpectError(art + x + " --input y", "--input expects NAME=FILE");
  ExpectError(art + x + y + " --threads -1", "--threads");
  ExpectError(art + x + y + " --bogus", "bogus");
  ExpectError(art + x + y + " --device=tpu", "unknown device 'tpu'");
  ExpectError(art + x + y + " --function other", "no function 'other'");
  ExpectError("", "artifact is required");
}

}  // namespace
}  // namespace kiln
