// Per-environment state of the addon (Node-API instance data): the constructors that native code uses to hand new
// objects to JS.
#pragma once

#include <napi.h>

namespace facegate_faiss {

struct AddonData {
  Napi::FunctionReference indexConstructor;
  Napi::FunctionReference bytesConstructor;
};

inline AddonData& GetAddonData(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

}  // namespace facegate_faiss
