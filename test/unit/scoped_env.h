//===- scoped_env.h - An environment variable set for one scope (tests) ---===//
#ifndef KILN_TEST_UNIT_SCOPED_ENV_H_
#define KILN_TEST_UNIT_SCOPED_ENV_H_

#include <stdlib.h>

#include <optional>
#include <string>

namespace kiln::testing {

/// Sets (or, with a null value, unsets) `name` until the end of the scope,
/// then restores what was there.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = getenv(name)) old_ = old;
    if (value)
      setenv(name, value, 1);
    else
      unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_)
      setenv(name_, old_->c_str(), 1);
    else
      unsetenv(name_);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

}  // namespace kiln::testing

#endif  // KILN_TEST_UNIT_SCOPED_ENV_H_
