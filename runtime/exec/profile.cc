//===- profile.cc - Where the time of Executor runs goes --------------------===//
#include "runtime/exec/profile.h"

#include <algorithm>
#include <cstdio>
#include <vector>

namespace kiln::exec {

void Profile::Add(std::string_view what, int64_t nanos) {
  auto it = entries_.find(what);
  if (it == entries_.end()) it = entries_.emplace(std::string(what), Entry{}).first;
  it->second.calls += 1;
  it->second.nanos += nanos;
  total_ += nanos;
}

std::string Profile::Report(size_t top) const {
  std::vector<const std::pair<const std::string, Entry>*> rows;
  for (const auto& e : entries_) rows.push_back(&e);
  std::sort(rows.begin(), rows.end(), [](auto* a, auto* b) { return a->second.nanos > b->second.nanos; });
  if (top && rows.size() > top) rows.resize(top);
  std::string out = "      calls   total ms  share   us/call  what\n";
  char line[512];
  for (const auto* row : rows) {
    const Entry& e = row->second;
    std::snprintf(line, sizeof(line), "%11lld %10.3f %5.1f%% %9.2f  %s\n", static_cast<long long>(e.calls),
                  e.nanos / 1e6, total_ ? 100.0 * e.nanos / total_ : 0.0, e.calls ? e.nanos / 1e3 / e.calls : 0.0,
                  row->first.c_str());
    out += line;
  }
  std::snprintf(line, sizeof(line), "%11s %10.3f  (all %zu entries)\n", "total", total_ / 1e6, entries_.size());
  return out + line;
}

}  // namespace kiln::exec
