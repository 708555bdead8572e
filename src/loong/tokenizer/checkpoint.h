// Tokenizer model folders and training checkpoints.
//
//   MODEL_DIR/model.safetensors   weights (the EMA weights for trained runs)
//   MODEL_DIR/config.json         the TokenizerConfig
// A training run folder holds checkpoints/step-NNNNNNNN/ (each a model folder
// plus trainer state); a checkpoint folder is written under a ".partial" name
// and renamed when complete, so the newest step-* folder is always whole.
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <c10/core/Device.h>
#include <torch/nn/module.h>

#include "loong/tokenizer/model.h"

namespace loong::tokenizer {

// Parameters then buffers, by their dotted names.
std::vector<std::pair<std::string, torch::Tensor>> named_tensors(const torch::nn::Module& m);

// Copies tensors into the module's parameters and buffers by name. Every
// name must be present with the same shape, and no extra names (with
// `prefix` stripped) may remain; errors name `where` and the tensor.
void load_named_tensors(torch::nn::Module& m, const std::map<std::string, torch::Tensor>& tensors,
                        const std::string& where, const std::string& prefix = "");

void save_model(const std::string& dir, const VideoTokenizer& model,
                const std::map<std::string, std::string>& metadata = {});

// DIR may be a model folder, a checkpoint folder or a training run folder (its
// newest checkpoint). Throws loong::Error naming the file on any mismatch.
VideoTokenizer load_model(const std::string& dir, c10::Device device = c10::Device("cpu"));

// The model folder `dir` refers to (see load_model).
std::string resolve_model_dir(const std::string& dir);

// Newest complete checkpoint folder of a run ("" when there is none).
std::string newest_checkpoint(const std::string& run_dir);
// Complete checkpoint folders of a run, oldest first, with their steps.
std::vector<std::pair<int64_t, std::string>> list_checkpoints(const std::string& run_dir);

}  // namespace loong::tokenizer
