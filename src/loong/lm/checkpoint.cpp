#include "loong/lm/checkpoint.h"

#include <filesystem>

#include <torch/torch.h>

#include "loong/store/checkpoints.h"

namespace fs = std::filesystem;

namespace loong::lm {

void save_lm(const std::string& dir, const Llama& model, const std::map<std::string, std::string>& meta,
             c10::ScalarType float_type) {
  store::save_model_folder(dir, *model, "loong-lm", model->config.to_json(), meta, float_type);
}

Llama load_lm(const std::string& dir_in, c10::Device device) {
  const std::string dir = store::model_folder(dir_in, "loong-lm", "a language model");
  Llama model(LmConfig::load((fs::path(dir) / "config.json").string()));
  store::load_model_folder(dir, *model, device);
  return model;
}

}  // namespace loong::lm
