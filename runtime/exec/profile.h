//===- profile.h - Where the time of Executor runs goes ---------------------===//
//
// A Profile given to the Executor (ExecutorOptions::profile) accumulates
// wall time per kernel and per kind of host work (allocation, copies,
// binding inputs, reading outputs) over every run, so that `--profile` on
// the tools can say which dispatch dominates without an external profiler
// (the kernels live in a memfd-loaded ELF that perf cannot symbolize).
#ifndef KILN_RUNTIME_EXEC_PROFILE_H_
#define KILN_RUNTIME_EXEC_PROFILE_H_

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace kiln::exec {

class Profile {
 public:
  /// Adds one event of `nanos` to the entry `what`.
  void Add(std::string_view what, int64_t nanos);
  /// A table, most expensive entry first, at most `top` rows (0 = all),
  /// with calls, total ms, share of the profiled total and us per call.
  std::string Report(size_t top = 0) const;
  int64_t total_nanos() const { return total_; }
  void Clear() { entries_.clear(), total_ = 0; }

 private:
  struct Entry {
    int64_t calls = 0;
    int64_t nanos = 0;
  };
  std::map<std::string, Entry, std::less<>> entries_;
  int64_t total_ = 0;
};

/// Times a scope into a Profile (nothing when the profile is null).
class ProfileScope {
 public:
  ProfileScope(Profile* profile, std::string_view what)
      : profile_(profile), what_(what), start_(profile ? Clock::now() : Clock::time_point()) {}
  ~ProfileScope() {
    if (profile_)
      profile_->Add(what_, std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start_).count());
  }
  ProfileScope(const ProfileScope&) = delete;
  ProfileScope& operator=(const ProfileScope&) = delete;

 private:
  using Clock = std::chrono::steady_clock;
  Profile* profile_;
  std::string_view what_;
  Clock::time_point start_;
};

}  // namespace kiln::exec

#endif  // KILN_RUNTIME_EXEC_PROFILE_H_
