//===- stop_matcher.cc - Cut generated text at the first stop string -------===//
#include "runtime/serve/stop_matcher.h"

#include <algorithm>

namespace kiln::serve {

StopMatcher::StopMatcher(std::vector<std::string> stops) {
  for (std::string& s : stops)
    if (!s.empty()) stops_.push_back(std::move(s));
}

StopMatcher::Result StopMatcher::Push(std::string_view piece) {
  Result result;
  if (stopped_) {
    result.stopped = true;
    return result;
  }
  held_.append(piece);
  // The stop string that is complete first (its end earliest, as if the text
  // came one byte at a time; on a tie the longer one): the result does not
  // depend on how the text was cut into pieces. The held text never contains
  // a whole stop string, so a match ends in the new piece.
  size_t best_start = std::string::npos, best_end = std::string::npos;
  for (const std::string& stop : stops_) {
    size_t start = held_.find(stop);
    if (start == std::string::npos) continue;
    size_t end = start + stop.size();
    if (end < best_end || (end == best_end && start < best_start)) best_start = start, best_end = end;
  }
  if (best_start != std::string::npos) {
    result.text = held_.substr(0, best_start);
    result.stopped = stopped_ = true;
    held_.clear();
    return result;
  }
  // Hold back the longest tail that is a proper prefix of some stop string.
  size_t keep = 0;
  for (const std::string& stop : stops_) {
    for (size_t len = std::min(stop.size() - 1, held_.size()); len > keep; --len) {
      if (std::string_view(held_).substr(held_.size() - len) == std::string_view(stop).substr(0, len)) {
        keep = len;
        break;
      }
    }
  }
  result.text = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return result;
}

std::string StopMatcher::Flush() {
  std::string out;
  if (!stopped_) out.swap(held_);
  held_.clear();
  return out;
}

}  // namespace kiln::serve
