//===- stop_matcher.h - Cut generated text at the first stop string --------===//
//
// Text arrives piece by piece (from llm::TextStream). A stop string may span
// pieces, so the matcher holds back the longest tail of what it has seen
// that could still grow into a stop string, and releases it once it cannot.
// What it releases, put together, is the text up to (not including) the
// stop string that is complete first, or all of it when none occurs; how
// the text was cut into pieces does not change the result.
//
// Pieces are valid UTF-8 and so are stop strings (they come from JSON), so
// every cut falls on a character boundary.
#ifndef KILN_RUNTIME_SERVE_STOP_MATCHER_H_
#define KILN_RUNTIME_SERVE_STOP_MATCHER_H_

#include <string>
#include <string_view>
#include <vector>

namespace kiln::serve {

class StopMatcher {
 public:
  /// Empty stop strings are ignored.
  explicit StopMatcher(std::vector<std::string> stops);

  struct Result {
    /// Text that is now certain to be output (maybe "").
    std::string text;
    /// A stop string matched: `text` ends just before it, and nothing more
    /// will be output.
    bool stopped = false;
  };
  /// Adds a piece. After a match, further pieces are dropped.
  Result Push(std::string_view piece);
  /// Releases what is held back (generation ended without a match).
  std::string Flush();

  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool stopped_ = false;
};

}  // namespace kiln::serve

#endif  // KILN_RUNTIME_SERVE_STOP_MATCHER_H_
