// Language-model folders (lm/model.h's Llama on disk):
//
//   MODEL_DIR/model.safetensors   weights (metadata format "loong-lm")
//   MODEL_DIR/config.json         the LmConfig
// Training runs keep them as checkpoints (lm/trainer.h, store/checkpoints.h);
// a bundle keeps one as its lm/ part (gen/bundle.h).
#pragma once
#include <map>
#include <string>

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include "loong/lm/model.h"

namespace loong::lm {

// A trained model folder (model.safetensors + config.json), a checkpoint
// folder or a run folder (its newest checkpoint).
Llama load_lm(const std::string& dir, c10::Device device = c10::Device("cpu"));
// `float_type`: see store::save_model_folder.
void save_lm(const std::string& dir, const Llama& model, const std::map<std::string, std::string>& metadata = {},
             c10::ScalarType float_type = c10::ScalarType::Float);

}  // namespace loong::lm
