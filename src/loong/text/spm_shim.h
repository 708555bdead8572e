// C interface of libloong_spm.so (spm_shim.cpp), resolved with dlsym by
// text_tokenizer.cpp. Return codes: 0 / a count on success; 1 / -1 / null on
// failure, with a message in err.
#pragma once
#include <cstddef>

extern "C" {
// Trains on `count` sentences; the serialized model comes back in a buffer
// that the caller frees with loong_spm_free_buffer.
int loong_spm_train(const char* const* sentences, size_t count, int vocab_size, const char* model_type,
                    char** model_out, size_t* model_len, char* err, size_t err_len);
void loong_spm_free_buffer(char* p);
void* loong_spm_load(const char* model, size_t len, char* err, size_t err_len);
void loong_spm_close(void* handle);
int loong_spm_vocab_size(void* handle);
// Returns the number of ids (writing at most `capacity`), -1 on error.
long loong_spm_encode(void* handle, const char* text, int* ids, long capacity, char* err, size_t err_len);
// Returns the text length (writing at most capacity - 1 bytes and a NUL), -1 on error.
long loong_spm_decode(void* handle, const int* ids, long count, char* text, long capacity, char* err,
                      size_t err_len);
}
