// Activation checkpointing (Chen et al. 2016, "Training deep nets with
// sublinear memory cost"): run a block without keeping its intermediate
// activations, and run it again during the backward pass to get its
// gradients. Memory falls from every block's activations to their inputs;
// compute rises by about one forward pass. LibTorch's C++ API has no
// torch.utils.checkpoint, so this is PyTorch's reentrant variant written as a
// custom autograd function: forward without grad, backward recomputes with
// grad and runs the engine on the recomputed graph, which accumulates the
// block's parameter gradients as the plain backward would.
//
// The block must compute the same function twice: no dropout or other
// randomness (the language model's and the tokenizer's blocks have none).
// bf16 autocast on CUDA is restored for the recomputation as it was. As in
// PyTorch's reentrant variant, gradients of gradients (create_graph) are not
// supported.
#pragma once
#include <functional>
#include <vector>

#include <ATen/core/Tensor.h>

namespace loong {

using Block = std::function<at::Tensor(const std::vector<at::Tensor>& inputs)>;

// block(inputs), its activations recomputed in backward. When no input
// requires grad or grad mode is off, it just calls the block.
at::Tensor checkpointed(const Block& block, const std::vector<at::Tensor>& inputs);

}  // namespace loong
