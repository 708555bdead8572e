#include "loong/core/torchscript.h"

#include <filesystem>

#include <torch/script.h>

#include "loong/core/error.h"

namespace loong {

std::string first_error_line(const c10::Error& e) {
  const std::string what = e.what_without_backtrace();
  return what.substr(0, what.find('\n'));
}

torch::jit::script::Module load_torchscript(const std::string& path, c10::Device device, const std::string& what) {
  if (!std::filesystem::is_regular_file(path)) fail(path, "no such file (expected " + what + ")");
  torch::jit::script::Module m;
  try {
    m = torch::jit::load(path, device);
  } catch (const c10::Error& e) {
    fail(path, "not a TorchScript model: " + first_error_line(e));
  } catch (const std::exception& e) {  // the archive reader's own errors are not all c10's
    const std::string why = e.what();
    fail(path, "not a TorchScript model: " + why.substr(0, why.find('\n')));
  }
  m.eval();
  return m;
}

}  // namespace loong
