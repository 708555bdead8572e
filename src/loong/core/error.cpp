#include "loong/core/error.h"

namespace loong {

void fail(const std::string& where, const std::string& what) {
  throw Error(where.empty() ? what : where + ": " + what);
}

std::string squote(const std::string& s) { return "'" + s + "'"; }

}  // namespace loong
