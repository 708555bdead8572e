// Loading user-given TorchScript networks (I3D, CLIP, upscalers): one place
// for the checks and for turning LibTorch's errors into one clear line.
#pragma once
#include <string>

#include <c10/core/Device.h>
#include <c10/util/Exception.h>
#include <torch/csrc/jit/api/module.h>

namespace loong {

// Loads `path` onto `device` in eval mode. A missing file gives "PATH: no such
// file (expected <what>)", anything else unloadable "PATH: not a TorchScript
// model: ...".
torch::jit::script::Module load_torchscript(const std::string& path, c10::Device device, const std::string& what);

// The first line of a LibTorch error, without its backtrace.
std::string first_error_line(const c10::Error& e);

}  // namespace loong
