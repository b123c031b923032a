// Entry point of the acvpn_tun addon. It exports:
//   open(name, maxPacketSize, maxBatch) -> TunHandle   opens /dev/net/tun and attaches a TUN
//                                                       interface, or throws a system error
//   TunHandle                                           the class, for instanceof checks
//   maxNameLength                                       15: IFNAMSIZ minus the NUL byte
// Policy (error mapping, retries, what a dropped packet means) lives in TypeScript.

#include <linux/if.h>
#include <napi.h>

#include "tun_handle.h"

namespace acvpn {
namespace {

Napi::Value Open(const Napi::CallbackInfo& info) {
  Napi::FunctionReference* constructor = info.Env().GetInstanceData<Napi::FunctionReference>();
  return constructor->New({info[0], info[1], info[2]});
}

}  // namespace
}  // namespace acvpn

// At global scope because NODE_API_MODULE pastes the function name into an identifier.
static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  using acvpn::Open;
  using acvpn::TunHandle;
  Napi::Function tunHandle = TunHandle::DefineClass(env);
  // Instance data, not a static: each worker thread loads its own copy of the class, and Node
  // deletes this reference when that environment is torn down.
  env.SetInstanceData(new Napi::FunctionReference(Napi::Persistent(tunHandle)));

  exports.Set("open", Napi::Function::New(env, Open, "open"));
  exports.Set("TunHandle", tunHandle);
  exports.Set("maxNameLength", Napi::Number::New(env, IFNAMSIZ - 1));
  return exports;
}

NODE_API_MODULE(acvpn_tun, Init)
