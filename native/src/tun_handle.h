// One Linux TUN device: the file descriptor, a libuv poll handle that reads packets in batches,
// and a plain write(2) for packets going the other way.
//
// Ownership: the fd and the poll handle live in a TunResources block that the JS object points
// to. Closing hands the block to libuv, which frees it in the uv_close callback, so the JS
// object can be garbage-collected or the environment torn down at any point without leaving
// libuv with a dangling handle.

#ifndef ACVPN_TUN_TUN_HANDLE_H_
#define ACVPN_TUN_TUN_HANDLE_H_

#include <napi.h>
#include <node_api.h>
#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <sys/socket.h>

namespace acvpn {

class TunHandle;

struct TunResources {
  int fd = -1;
  uv_poll_t poll;
  bool pollInitialized = false;
  bool pollClosing = false;
  // Registered for the whole life of the block: at environment teardown (process exit, worker
  // exit) Node calls it and waits until it is removed, which happens in the uv_close callback.
  napi_async_cleanup_hook_handle cleanupHook = nullptr;
  // Null once the JS object has been closed or finalized.
  TunHandle* owner = nullptr;
};

class TunHandle : public Napi::ObjectWrap<TunHandle> {
 public:
  static Napi::Function DefineClass(Napi::Env env);

  // JS: new TunHandle(name, maxPacketSize, maxBatch) opens the TUN device or throws.
  // new TunHandle(fd, maxPacketSize, maxBatch, label) adopts an open non-blocking datagram
  // socket instead (openUdp in addon.cc): a connected UDP socket, like a TUN fd, carries one
  // packet per read(2) and write(2), so the same batch reader serves the DTLS channel.
  explicit TunHandle(const Napi::CallbackInfo& info);
  ~TunHandle() override;

  // Called by the poll handle; public only so that the C callback can reach it.
  void OnPollEvent(int status);
  // Called at environment teardown through the async cleanup hook.
  void ReleaseForTeardown();

 private:
  Napi::Value GetFd(const Napi::CallbackInfo& info);
  Napi::Value GetName(const Napi::CallbackInfo& info);
  Napi::Value GetDroppedOversize(const Napi::CallbackInfo& info);

  Napi::Value Start(const Napi::CallbackInfo& info);
  Napi::Value Pause(const Napi::CallbackInfo& info);
  Napi::Value Resume(const Napi::CallbackInfo& info);
  Napi::Value Write(const Napi::CallbackInfo& info);
  Napi::Value WriteBatch(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  bool ParseLimits(const Napi::CallbackInfo& info);
  void ReadBatch();
  void DeliverBatch(uint32_t count);
  void StopAfterError(int error, const char* syscall, const char* operation);
  void CallJs(const Napi::FunctionReference& callback, size_t argc, const napi_value* argv);
  void CloseNow();
  void AdoptSocket(const Napi::CallbackInfo& info);
  void TakeFd(Napi::Env env, int fd);

  TunResources* resources_ = nullptr;
  std::string name_;
  size_t maxPacketSize_ = 0;
  uint32_t maxBatch_ = 0;
  double droppedOversize_ = 0;

  // True for an adopted socket: writeBatch() then uses one sendmmsg(2) per batch.
  bool socket_ = false;
  bool started_ = false;
  bool paused_ = false;
  bool failed_ = false;

  // Allocated by start(): one JS Buffer of maxBatch * maxPacketSize + 1 bytes and one
  // Uint32Array of maxBatch lengths, both reused for every batch.
  Napi::Reference<Napi::Buffer<uint8_t>> buffer_;
  Napi::Reference<Napi::Uint32Array> lengths_;
  uint8_t* bufferData_ = nullptr;
  uint32_t* lengthsData_ = nullptr;
  Napi::FunctionReference onPackets_;
  Napi::FunctionReference onError_;
  napi_async_context asyncContext_ = nullptr;

  // Reused by writeBatch() on sockets, grown to the largest batch seen (at most kMaxBatch).
  std::vector<struct mmsghdr> messages_;
  std::vector<struct iovec> vectors_;
};

}  // namespace acvpn

#endif  // ACVPN_TUN_TUN_HANDLE_H_
