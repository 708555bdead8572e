// Models on disk, for training and inference alike: module tensors by name,
// model folders (config.json + model.safetensors), optimiser state as bytes,
// and run folders whose checkpoints are written whole or not at all.
//
//   RUN/checkpoints/step-NNNNNNNN/       a complete checkpoint (model.safetensors inside)
//   RUN/checkpoints/step-NNNNNNNN.partial one being written: never read, removed on the next start
// A checkpoint is filled under its ".partial" name and renamed when complete,
// so a crash (even kill -9) during the write leaves the previous one intact.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>
#include <nlohmann/json.hpp>
#include <torch/nn/module.h>

namespace torch::optim {
class Optimizer;
}

namespace loong::store {

// Parameters then buffers, by their dotted names.
std::vector<std::pair<std::string, torch::Tensor>> named_tensors(const torch::nn::Module& m);

// Copies tensors into the module's parameters and buffers by name. Every
// name must be present with the same shape, and no extra names (with
// `prefix` stripped) may remain; errors name `where` and the tensor.
void load_named_tensors(torch::nn::Module& m, const std::map<std::string, torch::Tensor>& tensors,
                        const std::string& where, const std::string& prefix = "");

// "step-00001234"
std::string step_name(int64_t step);
// The step a checkpoint's trainer.json records (key "step"), checked: a
// non-negative integer, and the one its folder's name says (step-N).
int64_t checkpoint_step(const nlohmann::json& trainer_json, const std::string& json_path,
                        const std::string& checkpoint_dir);

// Sets the learning rate of every AdamW parameter group.
void set_lr(torch::optim::Optimizer& opt, double lr);

// Optimiser state (AdamW's moments and step counts) in DIR/STEM.safetensors
// (metadata "format": "loong-adamw"), and back, checked tensor by tensor
// (ops/adamw.h). Checkpoints of loong before 2026-12 held a LibTorch archive,
// STEM.pt, instead: it is not read (a damaged one could corrupt memory in
// LibTorch's reader), and the error says how to go on from its weights.
void save_optimizer(const std::string& dir, const std::string& stem, const torch::optim::Optimizer& opt);
void load_optimizer(torch::optim::Optimizer& opt, const std::string& dir, const std::string& stem);
// Whether DIR holds STEM's optimizer state (in either form).
bool has_optimizer(const std::string& dir, const std::string& stem);

// Complete checkpoint folders of a run, oldest first, with their steps.
std::vector<std::pair<int64_t, std::string>> list_checkpoints(const std::string& run_dir);
// Newest complete checkpoint folder of a run ("" when there is none).
std::string newest_checkpoint(const std::string& run_dir);
// For messages after a failure: "the last good checkpoint is RUN/checkpoints/step-N
// (--resume continues from it)", or that none was written yet.
std::string last_good_checkpoint(const std::string& run_dir);

// The model folder `dir` refers to: itself when it holds model.safetensors,
// else a run folder's newest checkpoint. Throws loong::Error otherwise.
std::string resolve_model_dir(const std::string& dir);

// A model folder holds config.json (the module's config) and
// model.safetensors (its tensors, metadata "format" naming the kind).
// `float_type` stores the floating-point tensors in another type (kHalf,
// kBFloat16: half the size); loading widens them back to the module's.
void save_model_folder(const std::string& dir, const torch::nn::Module& m, const std::string& format,
                       const nlohmann::json& config, const std::map<std::string, std::string>& metadata = {},
                       c10::ScalarType float_type = c10::ScalarType::Float);
// Resolves `dir` (resolve_model_dir) and returns the folder; throws when
// config.json is missing, or when model.safetensors records a format other
// than `format`, naming `what` ("a language model"). The format is checked
// before the config is read, so a model of another kind is named as such,
// not by its config's first unknown key.
std::string model_folder(const std::string& dir, const std::string& format, const std::string& what);
// Fills `m` from model_dir/model.safetensors, a folder model_folder returned
// (and so whose format it checked). Moves the module to `device` and sets
// eval mode.
void load_model_folder(const std::string& model_dir, torch::nn::Module& m, c10::Device device);

// `dir`'s `part` folder ("tokenizer", "lm") when `dir` is a model bundle (a
// loong.json beside that part; gen/bundle.h), else `dir` itself: lets a
// command that takes one model (`train --init`, `tokenizer train --init`)
// take a bundle too.
std::string bundle_part_or_self(const std::string& dir, const std::string& part);

// Copies every parameter and buffer of `src` into `dst`, a module of the same
// architecture, converting the type (f16/bf16 weights are widened).
void copy_weights(torch::nn::Module& dst, const torch::nn::Module& src);

// For --init: throws loong::Error naming `init_path` and the first key of
// `want` (the run's model config) that `got` (the loaded model's) lacks or
// differs in; "name" is ignored (a preset's name says nothing about the
// weights). `hint` ends the message.
void check_init_architecture(nlohmann::json want, nlohmann::json got, const std::string& init_path,
                             const std::string& hint);

// Cuts RUN/log.jsonl (one JSON record per step) back to the records of steps
// before `step`, rewriting it atomically, and returns them: the steps after a
// checkpoint are trained again on resume, and a run killed before its first
// checkpoint starts again from step 0. A torn last line is dropped.
std::vector<nlohmann::json> cut_training_log(const std::string& run_dir, int64_t step);

// Creates RUN/checkpoints and removes checkpoints left half-written by a crash.
void prepare_checkpoint_dir(const std::string& run_dir);

// Writes RUN/checkpoints/step-N: `fill` writes the files into the folder it
// is given (a ".partial" one), which is then renamed into place; all but
// the newest `keep` checkpoints are removed afterwards.
// With `fresh` false, files already in the ".partial" folder (written there
// by other ranks: partial_checkpoint_dir) are kept and renamed with it.
void write_checkpoint(const std::string& run_dir, int64_t step, int keep,
                      const std::function<void(const std::string& dir)>& fill, bool fresh = true);
// RUN/checkpoints/step-N.partial: where write_checkpoint fills step N.
std::string partial_checkpoint_dir(const std::string& run_dir, int64_t step);

}  // namespace loong::store
