// Entry point of the acvpn_tun addon. It exports:
//   open(name, maxPacketSize, maxBatch) -> TunHandle   opens /dev/net/tun and attaches a TUN
//                                                       interface, or throws a system error
//   openUdp(address, port, maxPacketSize, maxBatch, socketBufferBytes) -> TunHandle
//                                                       a non-blocking UDP socket connected to
//                                                       address:port (an IPv4 or IPv6 literal),
//                                                       read and written like a TUN device
//   Aead                                                AEAD cipher context (aead.h)
//   TunHandle                                           the class, for instanceof checks
//   maxNameLength                                       15: IFNAMSIZ minus the NUL byte
// Policy (error mapping, retries, what a dropped packet means) lives in TypeScript.

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if.h>
#include <napi.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "aead.h"
#include "system_error.h"
#include "tun_handle.h"

namespace acvpn {
namespace {

Napi::Value Open(const Napi::CallbackInfo& info) {
  Napi::FunctionReference* constructor = info.Env().GetInstanceData<Napi::FunctionReference>();
  return constructor->New({info[0], info[1], info[2]});
}

Napi::Value OpenUdp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 5 || !info[0].IsString() || !info[1].IsNumber() || !info[4].IsNumber()) {
    Napi::TypeError::New(env, "openUdp(address, port, maxPacketSize, maxBatch, socketBufferBytes): address must be "
                              "a string, port and socketBufferBytes numbers")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string address = info[0].As<Napi::String>().Utf8Value();
  double port = info[1].As<Napi::Number>().DoubleValue();
  int bufferBytes = info[4].As<Napi::Number>().Int32Value();
  std::string label = "udp " + address + " port " + std::to_string(static_cast<int>(port));

  struct sockaddr_storage peer;
  std::memset(&peer, 0, sizeof(peer));
  socklen_t peerLength = 0;
  auto* peer4 = reinterpret_cast<struct sockaddr_in*>(&peer);
  auto* peer6 = reinterpret_cast<struct sockaddr_in6*>(&peer);
  if (!(port >= 1 && port <= 65535 && static_cast<int>(port) == port)) {
    Napi::RangeError::New(env, "openUdp: port must be an integer from 1 to 65535").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (inet_pton(AF_INET, address.c_str(), &peer4->sin_addr) == 1) {
    peer4->sin_family = AF_INET;
    peer4->sin_port = htons(static_cast<uint16_t>(port));
    peerLength = sizeof(*peer4);
  } else if (inet_pton(AF_INET6, address.c_str(), &peer6->sin6_addr) == 1) {
    peer6->sin6_family = AF_INET6;
    peer6->sin6_port = htons(static_cast<uint16_t>(port));
    peerLength = sizeof(*peer6);
  } else {
    Napi::RangeError::New(env, "openUdp: \"" + address + "\" is not an IPv4 or IPv6 address")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }

  int fd = socket(peer.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    MakeSystemError(env, errno, "socket", "create UDP socket", label).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (bufferBytes > 0) {
    // Best effort, as in node:dgram: the kernel caps both at net.core.[rw]mem_max.
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufferBytes, sizeof(bufferBytes));
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufferBytes, sizeof(bufferBytes));
  }
  if (connect(fd, reinterpret_cast<struct sockaddr*>(&peer), peerLength) < 0) {
    int error = errno;
    close(fd);
    MakeSystemError(env, error, "connect", "connect UDP socket", label).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::FunctionReference* constructor = env.GetInstanceData<Napi::FunctionReference>();
  // The handle owns the fd from here on, also when its constructor throws.
  return constructor->New({Napi::Number::New(env, fd), info[2], info[3], Napi::String::New(env, label)});
}

}  // namespace
}  // namespace acvpn

// At global scope because NODE_API_MODULE pastes the function name into an identifier.
static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  using acvpn::Aead;
  using acvpn::Open;
  using acvpn::OpenUdp;
  using acvpn::TunHandle;
  Napi::Function tunHandle = TunHandle::DefineClass(env);
  // Instance data, not a static: each worker thread loads its own copy of the class, and Node
  // deletes this reference when that environment is torn down.
  env.SetInstanceData(new Napi::FunctionReference(Napi::Persistent(tunHandle)));

  exports.Set("open", Napi::Function::New(env, Open, "open"));
  exports.Set("openUdp", Napi::Function::New(env, OpenUdp, "openUdp"));
  exports.Set("TunHandle", tunHandle);
  exports.Set("Aead", Aead::DefineClass(env));
  exports.Set("maxNameLength", Napi::Number::New(env, IFNAMSIZ - 1));
  return exports;
}

NODE_API_MODULE(acvpn_tun, Init)
