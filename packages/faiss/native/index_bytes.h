// A serialised index held in native memory (exported as IndexBytes). dispose() frees it at once: the same bytes in a
// JS buffer stay resident until a later garbage collection, which at start-up doubled a large gallery's memory while
// its snapshots loaded.
#pragma once

#include <napi.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include <faiss/impl/io.h>

#include "byte_buffer.h"

namespace facegate_faiss {

class IndexBytes : public Napi::ObjectWrap<IndexBytes> {
 public:
  static Napi::Function DefineClass(Napi::Env env);
  // A new IndexBytes that owns `data`.
  static Napi::Object Adopt(Napi::Env env, ByteBuffer data);
  // The IndexBytes behind `value`, or a JS error when it is something else (checked by type tag, not by prototype)
  // or already disposed.
  static const ByteBuffer& RequireLive(const Napi::Value& value, const char* name);
  // The bytes behind `value`, moved out: the IndexBytes is disposed from then on (for work on another thread, which
  // JS can then neither free nor overwrite under it). Refuses what RequireLive refuses.
  static ByteBuffer Take(const Napi::Value& value, const char* name);

  // Only through allocate() or Adopt(); `new IndexBytes()` from JS is rejected.
  explicit IndexBytes(const Napi::CallbackInfo& info);

 private:
  static Napi::Value Allocate(const Napi::CallbackInfo& info);
  Napi::Value Length(const Napi::CallbackInfo& info);
  Napi::Value IsDisposed(const Napi::CallbackInfo& info);
  Napi::Value Read(const Napi::CallbackInfo& info);
  void Write(const Napi::CallbackInfo& info);
  void Dispose(const Napi::CallbackInfo& info);

  ByteBuffer& Live(Napi::Env env);

  ByteBuffer data_;
  bool disposed_ = false;
};

// faiss::write_index into a ByteBuffer (faiss's VectorIOWriter writes a std::vector of the default allocator); reserve
// the buffer first for one allocation.
struct BufferIOWriter : faiss::IOWriter {
  explicit BufferIOWriter(ByteBuffer& data) : data_(data) {}
  std::size_t operator()(const void* ptr, std::size_t itemSize, std::size_t items) override;

 private:
  ByteBuffer& data_;
};

// faiss::read_index over borrowed bytes, without the copy faiss's VectorIOReader makes.
struct SpanIOReader : faiss::IOReader {
  SpanIOReader(const uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  std::size_t operator()(void* ptr, std::size_t itemSize, std::size_t items) override;

 private:
  const uint8_t* data_;
  std::size_t size_;
  std::size_t position_ = 0;
};

}  // namespace facegate_faiss
