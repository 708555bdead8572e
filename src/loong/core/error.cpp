#include "loong/core/error.h"

namespace loong {

void fail(const std::string& where, const std::string& what) {
  if (where.rfind("--", 0) == 0) throw UsageError(where + ": " + what);
  throw Error(where.empty() ? what : where + ": " + what);
}

void fail_input(const std::string& where, const std::string& what) {
  throw Error(where.empty() ? what : where + ": " + what);
}

std::string squote(const std::string& s) { return "'" + s + "'"; }

}  // namespace loong
