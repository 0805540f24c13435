#include "index_bytes.h"

#include <algorithm>
#include <cstring>
#include <new>
#include <string>
#include <utility>

#include "addon_data.h"
#include "arguments.h"
#include "errors.h"

namespace facegate_faiss {

namespace {

// Marks objects made by this class, so that an object merely given IndexBytes' prototype is refused before it is
// unwrapped as one.
constexpr napi_type_tag kIndexBytesTag = {0x6661636567617465ULL, 0x696e646578627974ULL};

}  // namespace

std::size_t SpanIOReader::operator()(void* ptr, std::size_t itemSize, std::size_t items) {
  if (itemSize == 0 || position_ >= size_) return 0;
  const std::size_t count = std::min(items, (size_ - position_) / itemSize);
  if (count > 0) std::memcpy(ptr, data_ + position_, count * itemSize);
  position_ += count * itemSize;
  return count;
}

std::size_t BufferIOWriter::operator()(const void* ptr, std::size_t itemSize, std::size_t items) {
  const std::size_t bytes = itemSize * items;
  if (bytes > 0) {
    const std::size_t at = data_.size();
    data_.resize(at + bytes);
    std::memcpy(data_.data() + at, ptr, bytes);
  }
  return items;
}

Napi::Function IndexBytes::DefineClass(Napi::Env env) {
  Napi::Function constructor = ObjectWrap<IndexBytes>::DefineClass(
      env, "IndexBytes",
      {
          StaticMethod<&IndexBytes::Allocate>("allocate"),
          InstanceAccessor<&IndexBytes::Length>("length"),
          InstanceAccessor<&IndexBytes::IsDisposed>("isDisposed"),
          InstanceMethod<&IndexBytes::Read>("read"),
          InstanceMethod<&IndexBytes::Write>("write"),
          InstanceMethod<&IndexBytes::Dispose>("dispose"),
      });
  GetAddonData(env).bytesConstructor = Napi::Persistent(constructor);
  return constructor;
}

IndexBytes::IndexBytes(const Napi::CallbackInfo& info) : ObjectWrap<IndexBytes>(info) {
  if (info.Length() != 1 || !info[0].IsExternal()) {
    kInvalidArgument.ThrowTypeError(info.Env(), "IndexBytes cannot be constructed directly; use allocate()");
  }
  data_ = std::move(*info[0].As<Napi::External<ByteBuffer>>().Data());
  info.This().As<Napi::Object>().TypeTag(&kIndexBytesTag);
}

Napi::Object IndexBytes::Adopt(Napi::Env env, ByteBuffer data) {
  // The constructor moves out of `data`; if construction fails first, `data` still owns the bytes and frees them.
  return GetAddonData(env).bytesConstructor.New({Napi::External<ByteBuffer>::New(env, &data)});
}

const ByteBuffer& IndexBytes::RequireLive(const Napi::Value& value, const char* name) {
  Napi::Env env = value.Env();
  if (!value.IsObject() || !value.As<Napi::Object>().CheckTypeTag(&kIndexBytesTag)) {
    kInvalidArgument.ThrowTypeError(env, std::string(name) + " must be an IndexBytes");
  }
  return Unwrap(value.As<Napi::Object>())->Live(env);
}

ByteBuffer IndexBytes::Take(const Napi::Value& value, const char* name) {
  RequireLive(value, name);
  IndexBytes* bytes = Unwrap(value.As<Napi::Object>());
  bytes->disposed_ = true;
  return std::move(bytes->data_);
}

Napi::Value IndexBytes::Allocate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::size_t length = RequireCount(info[0], "length");
  ByteBuffer data;
  try {
    data.resize(length);
  } catch (const std::bad_alloc&) {
    kFaissFailure.ThrowError(env, "allocate failed: no memory for " + std::to_string(length) + " bytes");
  }
  return Adopt(env, std::move(data));
}

ByteBuffer& IndexBytes::Live(Napi::Env env) {
  if (disposed_) kDisposed.ThrowError(env, "the index bytes have been disposed");
  return data_;
}

Napi::Value IndexBytes::Length(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(Live(info.Env()).size()));
}

Napi::Value IndexBytes::IsDisposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), disposed_); }

// read(offset, target): copies the bytes from `offset` into `target`, as many as both hold; returns how many.
Napi::Value IndexBytes::Read(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const ByteBuffer& data = Live(env);
  const std::size_t offset = RequireCount(info[0], "offset");
  Napi::Uint8Array target = kInvalidArgument.RequireUint8Array(info[1], "target");
  if (offset > data.size()) kInvalidArgument.ThrowRangeError(env, "offset is past the end of the bytes");
  const std::size_t count = std::min(target.ElementLength(), data.size() - offset);
  if (count > 0) std::memcpy(target.Data(), data.data() + offset, count);
  return Napi::Number::New(env, static_cast<double>(count));
}

// write(offset, source): copies all of `source` to `offset`; refuses a write past the end.
void IndexBytes::Write(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ByteBuffer& data = Live(env);
  const std::size_t offset = RequireCount(info[0], "offset");
  const Napi::Uint8Array source = kInvalidArgument.RequireUint8Array(info[1], "source");
  if (offset > data.size() || source.ElementLength() > data.size() - offset) {
    kInvalidArgument.ThrowRangeError(env, "write past the end of the bytes");
  }
  if (source.ElementLength() > 0) std::memcpy(data.data() + offset, source.Data(), source.ElementLength());
}

void IndexBytes::Dispose(const Napi::CallbackInfo&) {
  // Idempotent, like closing a file handle twice.
  disposed_ = true;
  ByteBuffer().swap(data_);
}

}  // namespace facegate_faiss
