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
#include "loong/store/checkpoints.h"

namespace loong::tokenizer {

using store::load_named_tensors;
using store::named_tensors;

// `float_type`: see store::save_model_folder.
void save_model(const std::string& dir, const VideoTokenizer& model,
                const std::map<std::string, std::string>& metadata = {},
                c10::ScalarType float_type = c10::ScalarType::Float);

// DIR may be a model folder, a checkpoint folder, a training run folder (its
// newest checkpoint) or a model bundle (its tokenizer/). Throws loong::Error naming the file on any mismatch.
VideoTokenizer load_model(const std::string& dir, c10::Device device = c10::Device("cpu"));

using store::resolve_model_dir;

using store::list_checkpoints;
using store::newest_checkpoint;

}  // namespace loong::tokenizer
