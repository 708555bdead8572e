// Precompiled header for the library and everything that links it: LibTorch's
// headers dominate compile time on 2 cores.
#pragma once
#include <torch/torch.h>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>
