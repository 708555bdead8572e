#include "loong/tokenizer/checkpoint.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include <torch/torch.h>

#include "loong/core/error.h"
#include "loong/core/json_util.h"
#include "loong/io/safetensors.h"

namespace fs = std::filesystem;

namespace loong::tokenizer {

void save_model(const std::string& dir, const VideoTokenizer& model, const std::map<std::string, std::string>& meta,
                c10::ScalarType float_type) {
  store::save_model_folder(dir, *model, "loong-video-tokenizer", model->config.to_json(), meta, float_type);
}

VideoTokenizer load_model(const std::string& dir_arg, c10::Device device) {
  // A model bundle (gen/bundle.h) holds its tokenizer in tokenizer/.
  const std::string dir_in = store::bundle_part_or_self(dir_arg, "tokenizer");
  const std::string dir = store::model_folder(dir_in, "loong-video-tokenizer", "a video tokenizer");
  VideoTokenizer model(TokenizerConfig::load((fs::path(dir) / "config.json").string()));
  store::load_model_folder(dir, *model, device);
  return model;
}

}  // namespace loong::tokenizer
