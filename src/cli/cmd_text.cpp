// loong text train|encode|decode: the SentencePiece text tokenizer.
#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "loong/core/error.h"
#include "loong/data/manifest.h"
#include "loong/text/text_tokenizer.h"

namespace fs = std::filesystem;

namespace loong::cli {

void add_text_commands(CLI::App& app, Globals& g) {
  CLI::App* text = app.add_subcommand("text", "Text tokenizer (SentencePiece) for captions");
  text->require_subcommand(1);

  struct TrainArgs {
    std::string data, out;
    text::TextTrainOptions o;
    bool force = false;
  };
  auto ta = std::make_shared<TrainArgs>();
  auto* train = text->add_subcommand("train", "Train a SentencePiece model on a manifest's captions");
  train->add_option("--data", ta->data, "Manifest (JSONL or CSV) whose captions to train on")->required();
  train->add_option("--vocab", ta->o.vocab_size, "Vocabulary size (the paper: 32000; tiny models: a few hundred)")
      ->check(CLI::Range(8, 1'000'000));
  train->add_option("--model-type", ta->o.model_type, "unigram or bpe")->check(CLI::IsMember({"unigram", "bpe"}));
  train->add_option("--out", ta->out, "Folder for text.model and text.json")->required();
  train->add_flag("--force", ta->force, "Replace a tokenizer already in --out");
  train->callback(command(g, [ta] {
    const fs::path out = ta->out;
    if (fs::exists(out / "text.model") && !ta->force)
      fail(ta->out, "already holds a text tokenizer (text.model); pass --force to replace it");
    auto m = data::load_manifest(ta->data);
    std::vector<std::string> captions;
    for (const auto& e : m.entries)
      if (!e.caption.empty()) captions.push_back(e.caption);
    if (captions.empty()) fail(ta->data, "no captions to train on");
    ta->o.source = ta->data;
    const int pieces = text::TextTokenizer::train(captions, ta->o, ta->out);
    std::printf("trained a %d-piece %s tokenizer on %zu captions -> %s%s\n", pieces, ta->o.model_type.c_str(),
                captions.size(), (out / "text.model").c_str(),
                pieces < ta->o.vocab_size
                    ? (" (asked for " + std::to_string(ta->o.vocab_size) + ": the captions hold no more pieces)").c_str()
                    : "");
  }));

  auto dir = std::make_shared<std::string>();
  auto words = std::make_shared<std::vector<std::string>>();
  auto* enc = text->add_subcommand("encode", "Print the piece ids of a text");
  enc->add_option("--text", *dir, "Text tokenizer folder (from `loong text train`)")->required();
  enc->add_option("words", *words, "The text")->required();
  enc->callback(command(g, [dir, words] {
    std::string s;
    for (const auto& w : *words) s += (s.empty() ? "" : " ") + w;
    auto t = text::TextTokenizer::load(*dir);
    std::string line;
    for (int32_t id : t.encode(s)) line += (line.empty() ? "" : " ") + std::to_string(id);
    std::printf("%s\n", line.c_str());
  }));

  auto ids = std::make_shared<std::vector<int>>();
  auto* dec = text->add_subcommand("decode", "Print the text of piece ids");
  dec->add_option("--text", *dir, "Text tokenizer folder (from `loong text train`)")->required();
  dec->add_option("ids", *ids, "Piece ids")->required();
  dec->callback(command(g, [dir, ids] {
    auto t = text::TextTokenizer::load(*dir);
    std::printf("%s\n", t.decode(std::vector<int32_t>(ids->begin(), ids->end())).c_str());
  }));
}

}  // namespace loong::cli
